"""Tests for messenger.crypto: strict key parsing, fingerprints, session keys and seal/open."""

import base64
import hashlib

import pytest

from messenger import crypto
from messenger.errors import InvalidKey, LocalProtocolError, RemoteProtocolError

KEY = bytes(range(32))
KEY_TEXT = base64.b64encode(KEY).decode()


def test_parse_key_accepts_standard_base64_of_32_bytes():
    assert crypto.parse_key(KEY_TEXT) == KEY


def test_parse_key_strips_surrounding_whitespace():
    assert crypto.parse_key(f"  {KEY_TEXT}\n") == KEY


@pytest.mark.parametrize(
    "text",
    [
        "not base64!",
        KEY_TEXT.rstrip("="),  # padding is required
        KEY_TEXT[:20] + " " + KEY_TEXT[20:],  # inner whitespace
        "é" * 44,
    ],
)
def test_parse_key_rejects_invalid_base64(text):
    with pytest.raises(InvalidKey, match="must be base64 of 32 bytes: it is not valid base64"):
        crypto.parse_key(text)


def test_parse_key_rejects_urlsafe_alphabet():
    key = bytes([0xFB, 0xFF] * 16)  # encodes with "+" and "/" in standard base64
    urlsafe = base64.urlsafe_b64encode(key).decode()
    assert "-" in urlsafe or "_" in urlsafe
    with pytest.raises(InvalidKey):
        crypto.parse_key(urlsafe)
    assert crypto.parse_key(base64.b64encode(key).decode()) == key


@pytest.mark.parametrize("size", [31, 33, 16, 64])
def test_parse_key_rejects_wrong_length(size):
    with pytest.raises(InvalidKey, match=f"decodes to {size} bytes"):
        crypto.parse_key(base64.b64encode(bytes(size)).decode())


@pytest.mark.parametrize("text", ["", "   ", "\n"])
def test_parse_key_rejects_empty(text):
    with pytest.raises(InvalidKey, match="it is empty"):
        crypto.parse_key(text)


def test_invalid_key_message_never_echoes_the_key():
    text = KEY_TEXT[:-2] + "!="
    with pytest.raises(InvalidKey) as info:
        crypto.parse_key(text)
    assert KEY_TEXT[:10] not in str(info.value)


def test_generate_key_is_parseable_and_unique():
    keys = {crypto.generate_key() for _ in range(50)}
    assert len(keys) == 50
    for text in keys:
        assert len(crypto.parse_key(text)) == crypto.KEY_BYTES == 32


def test_fingerprint_format_and_stability():
    fingerprint = crypto.key_fingerprint(KEY)
    assert fingerprint == crypto.key_fingerprint(KEY)
    groups = fingerprint.split("-")
    assert [len(g) for g in groups] == [4, 4, 4, 4]
    assert all(c in "0123456789abcdef" for c in "".join(groups))
    assert crypto.key_fingerprint(bytes(32)) != fingerprint


def test_fingerprint_matches_spec():
    digest = hashlib.sha256(b"proget-messenger-fingerprint-v1" + KEY).hexdigest()
    assert crypto.key_fingerprint(KEY).replace("-", "") == digest[:16]


def test_session_keys_are_distinct_and_depend_on_both_nonces():
    keys = crypto.derive_session_keys(KEY, b"c" * 32, b"s" * 32)
    parts = [keys.c2s, keys.s2c, keys.client_proof, keys.server_proof]
    assert all(len(p) == 32 for p in parts)
    assert len(set(parts)) == 4
    assert crypto.derive_session_keys(KEY, b"C" * 32, b"s" * 32).c2s != keys.c2s
    assert crypto.derive_session_keys(KEY, b"c" * 32, b"S" * 32).c2s != keys.c2s
    assert crypto.derive_session_keys(bytes(32), b"c" * 32, b"s" * 32).c2s != keys.c2s


def test_proofs():
    a = crypto.proof(KEY, b"server", b"transcript")
    assert len(a) == 32
    assert crypto.proofs_equal(a, crypto.proof(KEY, b"server", b"transcript"))
    assert not crypto.proofs_equal(a, crypto.proof(KEY, b"client", b"transcript"))
    assert not crypto.proofs_equal(a, crypto.proof(KEY, b"server", b"transcripT"))


def test_seal_open_round_trip_in_sequence():
    sealer, opener = crypto.Sealer(KEY), crypto.Opener(KEY)
    for i in range(5):
        sealed = sealer.seal(b"hdr", b"message %d" % i)
        assert len(sealed) == len(b"message %d" % i) + 16
        assert opener.open(b"hdr", sealed) == b"message %d" % i


def test_same_plaintext_seals_differently_each_time():
    sealer = crypto.Sealer(KEY)
    assert sealer.seal(b"", b"same") != sealer.seal(b"", b"same")


def test_tampering_with_any_bit_fails():
    sealed = crypto.Sealer(KEY).seal(b"aad!", b"hello")
    for bit in range(len(sealed) * 8):
        tampered = bytearray(sealed)
        tampered[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(RemoteProtocolError) as info:
            crypto.Opener(KEY).open(b"aad!", bytes(tampered))
        assert info.value.reason == "bad-frame"


def test_tampered_aad_fails():
    sealed = crypto.Sealer(KEY).seal(b"aad!", b"hello")
    with pytest.raises(RemoteProtocolError, match="bad-frame"):
        crypto.Opener(KEY).open(b"aad?", sealed)


def test_wrong_counter_fails():
    sealer = crypto.Sealer(KEY)
    sealer.seal(b"", b"first")
    second = sealer.seal(b"", b"second")
    with pytest.raises(RemoteProtocolError, match="bad-frame"):
        crypto.Opener(KEY).open(b"", second)  # the opener expects counter 0


def test_replayed_frame_fails():
    first = crypto.Sealer(KEY).seal(b"", b"first")
    opener = crypto.Opener(KEY)
    assert opener.open(b"", first) == b"first"
    with pytest.raises(RemoteProtocolError, match="bad-frame"):
        opener.open(b"", first)


def test_reflected_frame_fails():
    keys = crypto.derive_session_keys(KEY, b"c" * 32, b"s" * 32)
    sent_by_client = crypto.Sealer(keys.c2s).seal(b"", b"hello")
    with pytest.raises(RemoteProtocolError, match="bad-frame"):
        crypto.Opener(keys.s2c).open(b"", sent_by_client)  # the client's own receive direction


def test_counter_exhaustion_raises(monkeypatch):
    monkeypatch.setattr(crypto.limits, "NONCE_COUNTER_LIMIT", 2)
    sealer, opener = crypto.Sealer(KEY), crypto.Opener(KEY)
    for _ in range(2):
        opener.open(b"", sealer.seal(b"", b"x"))
    with pytest.raises(LocalProtocolError, match="exhausted"):
        sealer.seal(b"", b"x")
    with pytest.raises(RemoteProtocolError):
        opener.open(b"", b"\0" * 17)
