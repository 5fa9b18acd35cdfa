"""Tests for protocol v2 in messenger.protocol: version negotiation and batch records, without sockets.

v2 peers seal several envelopes as one record; a v1 peer (either side) is still served with one frame per
envelope; every hostile batch (empty, oversized, bad count, truncated, nested, sent to a v1 peer) closes the
connection with "bad-message" before any of its events is handed out.
"""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from messenger import crypto
from messenger.errors import LocalProtocolError, RemoteProtocolError
from messenger.limits import MAGIC, MAX_BATCH_ENVELOPES, MAX_FRAME_BYTES
from messenger.messages import BATCH_KIND, Kind, encode_batch, encode_envelope
from messenger.protocol import (
    REJECT,
    Cancel,
    Connection,
    ErrorReply,
    HandshakeComplete,
    Keepalive,
    Reply,
    Request,
    Role,
    State,
    StreamItem,
)
from tests.messenger.test_protocol import FEW, KEY, client_nonce, counting_random, raises_reason

ITEM = {"p": "x" * 480}
SERVER_EVENTS = [Reply(id=1, body={"ok": True}), StreamItem(id=2, body=ITEM), StreamItem(id=2, body={"i": 1}),
                 ErrorReply(id=3, message="no", code="unknown_runner"), Cancel(id=2), Keepalive()]


def pair(*, client_version: int = 2, server_version: int = 2) -> tuple[Connection, Connection]:
    client = Connection(role=Role.CLIENT, key=KEY, random=counting_random(1), version=client_version)
    server = Connection(role=Role.SERVER, key=KEY, random=counting_random(2), version=server_version)
    assert server.receive_data(client.initiate()) == []
    version = min(client_version, server_version)
    assert client.receive_data(server.data_to_send()) == [HandshakeComplete(version=version)]
    assert server.receive_data(client.data_to_send()) == [HandshakeComplete(version=version)]
    return client, server


def frame_count(data: bytes) -> int:
    count = pos = 0
    while pos < len(data):
        pos += 4 + int.from_bytes(data[pos : pos + 4], "big")
        count += 1
    assert pos == len(data)
    return count


def s2c_frame(plaintext: bytes) -> bytes:
    """An authentic first server->client frame of `pair()` carrying any plaintext."""
    keys = crypto.derive_session_keys(KEY, client_nonce(1), b"\x02" * 32)
    header = (len(plaintext) + 16).to_bytes(4, "big")
    return header + crypto.Sealer(keys.s2c).seal(header, plaintext)


def envelope(i: int) -> bytes:
    return encode_envelope(Kind.STREAM, 2, None, {"i": i})


# --- negotiation ---


def test_v2_peers_agree_on_v2():
    client, server = pair()
    assert client.version == server.version == 2


def test_v2_server_serves_a_v1_client_in_v1():
    client = Connection(role=Role.CLIENT, key=KEY, version=1)
    hello = client.initiate()
    assert hello[:5] == MAGIC + b"\x01"
    client, server = pair(client_version=1)
    assert client.version == server.version == 1
    assert frame_count(server.send_batch(SERVER_EVENTS)) == len(SERVER_EVENTS)  # no batch record for a v1 peer


def test_v1_only_server_refuses_a_v2_hello_as_v1_code_does():
    server = Connection(role=Role.SERVER, key=KEY, version=1)
    client = Connection(role=Role.CLIENT, key=KEY)
    with raises_reason("unknown-version"):
        server.receive_data(client.initiate())
    assert server.state is State.CLOSED
    with raises_reason("rejected"):  # what the client sees: REJECT, and it may retry offering v1
        client.receive_data(REJECT)


def test_v2_client_serves_v1_against_a_v1_server():
    client, server = pair(client_version=1, server_version=1)
    data = server.send_batch(SERVER_EVENTS)
    assert frame_count(data) == len(SERVER_EVENTS)
    assert client.receive_data(data) == SERVER_EVENTS


def test_unknown_version_is_refused_locally():
    with pytest.raises(LocalProtocolError):
        Connection(role=Role.CLIENT, key=KEY, version=3)


# --- batches ---


def test_batch_is_one_record_and_arrives_whole():
    client, server = pair()
    data = server.send_batch(SERVER_EVENTS)
    assert frame_count(data) == 1
    assert client.receive_data(data) == SERVER_EVENTS


def test_batch_from_the_client():
    client, server = pair()
    requests = [Request(id=i, type="ping", body={"n": i}) for i in range(1, 40)]
    data = client.send_batch(requests)
    assert frame_count(data) == 1
    assert server.receive_data(data) == requests


def test_batch_byte_by_byte_and_with_trailing_bytes():
    client, server = pair()
    data = server.send_batch(SERVER_EVENTS)
    events = []
    for i in range(len(data)):
        events += client.receive_data(data[i : i + 1])
    assert events == SERVER_EVENTS
    batch = server.send_batch(SERVER_EVENTS)
    single = server.send_reply(id=9, body={})
    assert client.receive_data(batch + single[:5]) == SERVER_EVENTS
    assert client.receive_data(single[5:]) == [Reply(id=9, body={})]


@FEW
@given(st.lists(st.integers(1, 300), max_size=10))
def test_batches_in_random_chunks(cuts):
    client, server = pair()
    data = server.send_batch(SERVER_EVENTS) + server.send_stream(id=2, body={}) + server.send_batch(SERVER_EVENTS)
    expected = [*SERVER_EVENTS, StreamItem(id=2, body={}), *SERVER_EVENTS]
    points = sorted({min(cut * 7, len(data)) for cut in cuts})
    events = []
    for start, end in zip([0, *points], [*points, len(data)], strict=True):
        events += client.receive_data(data[start:end])
    assert events == expected


def test_seal_splits_at_the_envelope_cap():
    client, server = pair()
    events = [StreamItem(id=2, body={"i": i}) for i in range(MAX_BATCH_ENVELOPES + 1)]
    data = server.send_batch(events)
    assert frame_count(data) == 2
    assert client.receive_data(data) == events


def test_seal_splits_at_the_frame_cap():
    client, server = pair()
    big = {"p": "x" * (MAX_FRAME_BYTES // 3)}
    events = [StreamItem(id=2, body=big) for _ in range(4)]
    data = server.send_batch(events)
    assert frame_count(data) == 2  # two fit a record, the next two another
    assert int.from_bytes(data[:4], "big") <= MAX_FRAME_BYTES
    assert client.receive_data(data) == events


def test_send_batch_checks_every_event_before_sealing_any():
    client, server = pair()
    with pytest.raises(LocalProtocolError):
        server.send_batch([StreamItem(id=2, body={}), Request(id=1, type="ping", body={})])  # a server sends no request
    with pytest.raises(LocalProtocolError):
        server.send_batch([StreamItem(id=2, body={}), StreamItem(id=2, body={"x": float("nan")})])
    # Nothing was sealed: the next frame still opens (counter nonces did not move).
    assert client.receive_data(server.send_batch(SERVER_EVENTS)) == SERVER_EVENTS


def test_send_batch_before_the_handshake_is_local_misuse():
    server = Connection(role=Role.SERVER, key=KEY)
    with pytest.raises(LocalProtocolError):
        server.send_batch([StreamItem(id=1, body={})])
    assert server.send_batch([]) == b""


# --- hostile batches (an authentic record from a peer that holds the key but breaks the format) ---


@pytest.mark.parametrize(
    "plaintext",
    [
        pytest.param(bytes([BATCH_KIND, 0, 0, 0, 0, 0]), id="empty"),
        pytest.param(bytes([BATCH_KIND]) + (MAX_BATCH_ENVELOPES + 1).to_bytes(4, "big") + b"\x00"
                     + b"".join(len(envelope(i)).to_bytes(4, "big") + envelope(i)
                                for i in range(MAX_BATCH_ENVELOPES + 1)), id="oversized"),
        pytest.param(bytes([BATCH_KIND, 0, 0, 0, 3, 0]) + encode_batch([envelope(1), envelope(2)])[6:],
                     id="count-above-items"),
        pytest.param(bytes([BATCH_KIND, 0, 0, 0, 1, 0]) + encode_batch([envelope(1), envelope(2)])[6:],
                     id="count-below-items"),
        pytest.param(encode_batch([envelope(1), envelope(2)])[:-3], id="truncated-item"),
        pytest.param(encode_batch([envelope(1), envelope(2)])[:-len(envelope(2)) - 2], id="truncated-prefix"),
        pytest.param(bytes([BATCH_KIND, 0, 0, 0, 2, 1]) + encode_batch([envelope(1), envelope(2)])[6:],
                     id="nonzero-code"),
        pytest.param(encode_batch([envelope(1), encode_batch([envelope(2), envelope(3)])]), id="nested"),
        pytest.param(encode_batch([envelope(1), bytes([1, 0, 0, 0, 1, 1]) + b"{}"]), id="wrong-direction-item"),
        pytest.param(encode_batch([envelope(1), b"\x04\x00"]), id="short-item"),
    ],
)
def test_hostile_batch_is_bad_message_and_closes(plaintext):
    client, _ = pair()
    with raises_reason("bad-message"):
        client.receive_data(s2c_frame(plaintext))
    assert client.state is State.CLOSED
    with pytest.raises(RemoteProtocolError):
        client.receive_data(b"")


def test_batch_record_to_a_v1_peer_is_bad_message():
    client, _ = pair(client_version=1)
    with raises_reason("bad-message"):
        client.receive_data(s2c_frame(encode_batch([envelope(1), envelope(2)])))
    assert client.state is State.CLOSED


def test_a_valid_hand_built_batch_opens():
    client, _ = pair()
    assert client.receive_data(s2c_frame(encode_batch([envelope(1), envelope(2)]))) == [
        StreamItem(id=2, body={"i": 1}), StreamItem(id=2, body={"i": 2})]
