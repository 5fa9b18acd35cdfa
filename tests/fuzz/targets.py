"""The fuzz targets: plain functions of bytes shared by the hypothesis tests and tests/fuzz/atheris_targets.py.

Each target feeds hostile bytes to one parser and checks its contract: it returns (events / metadata) or raises
the documented error type — RemoteProtocolError for the messenger's frame and handshake decoder, MetadataError
for feeds.metadata — and never anything else. Anything else propagates: that is the finding.
"""
from __future__ import annotations

import io
import json
from collections.abc import Iterable

from feeds.metadata import MetadataError, PackageMetadata, metadata_read
from messenger import crypto
from messenger.errors import RemoteProtocolError
from messenger.limits import MAX_FRAME_BYTES, PROTOCOL_VERSION, PROTOCOL_VERSIONS, TAG_BYTES
from messenger.messages import (
    BATCH_KIND,
    MESSAGE_TYPES,
    Kind,
    decode_envelope,
    encode_envelope,
    error_code_valid,
    split_batch,
)
from messenger.protocol import (
    SERVER_HELLO_BYTES,
    Cancel,
    Connection,
    ErrorReply,
    Event,
    HandshakeComplete,
    Keepalive,
    KeepaliveAck,
    Reply,
    Request,
    Role,
    State,
    StreamItem,
)
from tests.fuzz.support import (
    CLIENT_NONCE_BYTE,
    KEY,
    PACKAGE_FILENAMES,
    fixed_random,
    new_server,
    open_pair,
    session_keys,
)

_MAX_ID = 2**32 - 1
# What each role may receive (the kinds its peer sends; docs/messenger.md "Who may send what").
_RECEIVES = {
    Role.SERVER: (Request, Cancel, Keepalive, KeepaliveAck),
    Role.CLIENT: (Reply, ErrorReply, StreamItem, Cancel, Keepalive, KeepaliveAck),
}


# --- helpers ---


def chunked(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    """`data` split at the given offsets (out-of-range and repeated offsets ignored); at least one piece."""
    points = sorted({cut for cut in cuts if 0 < cut < len(data)})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in zip(edges, edges[1:], strict=False)] or [data]


def typed(value: object) -> object:
    """A type-aware canonical form of a JSON value: 1, 1.0 and True compare different (plain == says equal)."""
    if isinstance(value, dict):
        return ("dict", tuple(sorted((key, typed(item)) for key, item in value.items())))
    if isinstance(value, list):
        return ("list", tuple(typed(item) for item in value))
    return (type(value).__name__, value)


def check_event(event: object, receiver: Role) -> None:
    """An event a `receiver` returned is one its peer may send, with well-formed fields."""
    assert isinstance(event, _RECEIVES[receiver]), f"{receiver.value} dispatched {event!r}"
    if isinstance(event, Keepalive | KeepaliveAck):
        return
    assert isinstance(event.id, int) and 0 <= event.id <= _MAX_ID, event
    if isinstance(event, Request):
        assert event.type in MESSAGE_TYPES, event
    if isinstance(event, Request | Reply | StreamItem):
        assert isinstance(event.body, dict), event
    if isinstance(event, ErrorReply):
        assert isinstance(event.message, str) and error_code_valid(event.code), event


def _feed(conn: Connection, pieces: list[bytes]) -> tuple[list[Event], RemoteProtocolError | None]:
    events: list[Event] = []
    for piece in pieces:
        try:
            events += conn.receive_data(piece)
        except RemoteProtocolError as exc:
            return events, exc
    return events, None


def _check_closed_for_good(conn: Connection, error: RemoteProtocolError) -> None:
    """After a RemoteProtocolError the connection is CLOSED and every later receive raises again."""
    assert conn.state is State.CLOSED, conn.state
    assert not conn.has_partial_data
    try:
        conn.receive_data(b"\x00" * 64)
    except RemoteProtocolError as again:
        assert type(again) is type(error) and again.reason == error.reason
    else:
        raise AssertionError("a closed connection accepted more data")


# --- frame and handshake decoder targets ---


Outcome = tuple[list[Event], RemoteProtocolError | None]  # events returned, then the error that closed (if any)


def frames_open(data: bytes, *, receiver: Role, cuts: Iterable[int] = ()) -> Outcome:
    """Arbitrary bytes into an OPEN connection (fixed session keys): events it may receive, or RemoteProtocolError."""
    client, server = open_pair()
    conn = server if receiver is Role.SERVER else client
    events, error = _feed(conn, chunked(data, cuts))
    for event in events:
        check_event(event, receiver)
    if error is not None:
        _check_closed_for_good(conn, error)
    else:
        assert conn.state is State.OPEN
    return events, error


def server_handshaking(data: bytes, *, cuts: Iterable[int] = ()) -> Outcome:
    """Arbitrary bytes into a HANDSHAKING server (fixed nonce): the handshake, then frames, or RemoteProtocolError."""
    server = new_server()
    events: list[Event] = []
    error = None
    sent = b""
    for piece in chunked(data, cuts):
        try:
            events += server.receive_data(piece)
        except RemoteProtocolError as exc:
            error = exc
            break
        finally:
            sent += server.data_to_send()
    assert sent == b"" or len(sent) == SERVER_HELLO_BYTES, len(sent)  # at most one ServerHello, never partial
    if events:
        assert type(events[0]) is HandshakeComplete and events[0].version in PROTOCOL_VERSIONS, events[0]
        for event in events[1:]:
            check_event(event, Role.SERVER)
    if error is not None:
        _check_closed_for_good(server, error)
        assert server.reject()[:4] == b"PGMS"
    else:
        assert (server.state is State.OPEN) == bool(events), (server.state, events)
    return events, error


def client_handshaking(data: bytes, *, cuts: Iterable[int] = ()) -> Outcome:
    """Arbitrary bytes into a client that sent its ClientHello: a ServerHello (then frames), or RemoteProtocolError."""
    client = Connection(role=Role.CLIENT, key=KEY, random=fixed_random(CLIENT_NONCE_BYTE))
    client.initiate()
    events, error = _feed(client, chunked(data, cuts))
    if events:
        assert events[0] == HandshakeComplete(version=PROTOCOL_VERSION), events[0]
        for event in events[1:]:
            check_event(event, Role.CLIENT)
    if error is not None:
        _check_closed_for_good(client, error)
    return events, error


def sealed_envelope(plaintext: bytes, *, receiver: Role) -> Event | None:
    """An arbitrary envelope sealed with the right key and counter: the envelope decoder behind a valid GCM tag.

    Only RemoteProtocolError("bad-message") may refuse it. What it accepts must be what the stdlib JSON parser
    reads from the same body (our decoder accepts a subset), and must re-encode to the same value.
    """
    if len(plaintext) + TAG_BYTES > MAX_FRAME_BYTES:
        return None
    keys = session_keys()
    frame = crypto.Sealer(keys.c2s if receiver is Role.SERVER else keys.s2c).seal_frame(plaintext)
    client, server = open_pair()
    conn = server if receiver is Role.SERVER else client
    events, error = _feed(conn, [frame])
    if error is not None:
        assert error.reason in {"bad-message", "frame-size"}, error.reason
        _check_closed_for_good(conn, error)
        return None
    for event in events:
        check_event(event, receiver)
    if plaintext[0] == BATCH_KIND:  # a v2 batch record: its envelopes, in order
        assert len(events) == len(split_batch(plaintext)), (plaintext, events)
        return events[0]
    [event] = events
    kind, id, type, body = decode_envelope(plaintext)
    if body is not None:
        try:
            reference = json.loads(plaintext[6:].decode("utf-8"))
        except RecursionError:  # the stdlib's C scanner stops a little below orjson's 1,024 levels
            reference = body
        assert typed(reference) == typed(body), (plaintext, body, reference)
    again = decode_envelope(encode_envelope(kind, id, type, body))
    assert again[:3] == (kind, id, type) and typed(again[3]) == typed(body), (plaintext, again)
    return event


# --- package metadata target ---


def package_metadata(data: bytes, *, kind: str) -> PackageMetadata | None:
    """Arbitrary bytes as a .whl / .tar.gz / .zip (named for the seed package): metadata or MetadataError only."""
    assert kind in PACKAGE_FILENAMES, kind
    try:
        result = metadata_read(stream=io.BytesIO(data), filename=PACKAGE_FILENAMES[kind])
    except MetadataError as exc:
        assert str(exc) and "\n" not in str(exc), repr(exc)  # one line, says why
        return None
    assert isinstance(result, PackageMetadata)
    return result


__all__ = [
    "Kind",
    "chunked",
    "client_handshaking",
    "frames_open",
    "package_metadata",
    "sealed_envelope",
    "server_handshaking",
    "typed",
]
