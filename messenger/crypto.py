"""Key handling and frame sealing for the messenger; the only module that touches AESGCM and HKDF.

Guarantees: keys are parsed strictly (standard base64 of exactly 32 bytes); session keys are fresh
per connection (HKDF over both sides' nonces); each direction has its own key and an implicit,
strictly increasing counter nonce, so a frame opens only once, in order, in its own direction.
"""

import base64
import binascii
import hashlib
import hmac
import os
import struct
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from messenger import limits
from messenger.errors import InvalidKey, LocalProtocolError, RemoteProtocolError
from messenger.limits import KEY_BYTES  # re-exported: part of this module's API

_FINGERPRINT_PREFIX = b"proget-messenger-fingerprint-v1"
_HKDF_INFO = b"proget-messenger v1 keys"
_KEY_HINT_LABEL = b"proget-messenger v1 key hint"
# 12-byte GCM nonce: 4 zero bytes then the 8-byte big-endian counter.
_NONCE = struct.Struct(">4xQ")


def generate_key() -> str:
    """Return a new key: standard base64 of 32 random bytes."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode("ascii")


def parse_key(text: str) -> bytes:
    """Decode a configured key; raise InvalidKey (never echoing the key) unless it is 32 bytes of base64."""
    stripped = text.strip()
    if not stripped:
        raise InvalidKey(f"Service.MessengerKey must be base64 of {KEY_BYTES} bytes: it is empty")
    try:
        key = base64.b64decode(stripped, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidKey(f"Service.MessengerKey must be base64 of {KEY_BYTES} bytes: it is not valid base64") from None
    if len(key) != KEY_BYTES:
        raise InvalidKey(f"Service.MessengerKey must be base64 of {KEY_BYTES} bytes: it decodes to {len(key)} bytes")
    return key


def key_fingerprint(key: bytes) -> str:
    """Identify a key without revealing it: "xxxx-xxxx-xxxx-xxxx" (16 hex digits of a SHA-256)."""
    digest = hashlib.sha256(_FINGERPRINT_PREFIX + key).hexdigest()[:16]
    return "-".join(digest[i : i + 4] for i in range(0, 16, 4))


@dataclass(frozen=True)
class RetiredKey:
    """A replaced key that servers still accept until `until` (a time.time() timestamp): the rotation's grace."""

    key: bytes = field(repr=False)  # never in a repr, a log line or an error report
    until: float


def key_hint(key: bytes, random_part: bytes) -> bytes:
    """HMAC-SHA256(key, label ‖ random_part) cut to KEY_HINT_BYTES: which key a client holds, to its holders only.

    A fresh random part per connection makes hints unlinkable; the HMAC reveals nothing about the key.
    """
    return hmac.new(key, _KEY_HINT_LABEL + random_part, hashlib.sha256).digest()[: limits.KEY_HINT_BYTES]


@dataclass(frozen=True)
class SessionKeys:
    """The per-connection keys derived from the shared key and both handshake nonces."""

    c2s: bytes
    s2c: bytes
    client_proof: bytes
    server_proof: bytes


def derive_session_keys(key: bytes, client_nonce: bytes, server_nonce: bytes) -> SessionKeys:
    """HKDF-SHA256(key, salt=client_nonce‖server_nonce) split into the four session keys."""
    okm = HKDF(
        algorithm=hashes.SHA256(), length=4 * KEY_BYTES, salt=client_nonce + server_nonce, info=_HKDF_INFO
    ).derive(key)
    c2s, s2c, client_proof, server_proof = (okm[i : i + KEY_BYTES] for i in range(0, 4 * KEY_BYTES, KEY_BYTES))
    return SessionKeys(c2s=c2s, s2c=s2c, client_proof=client_proof, server_proof=server_proof)


def proof(proof_key: bytes, label: bytes, transcript: bytes) -> bytes:
    """HMAC-SHA256(proof_key, label ‖ transcript): proves the key without revealing it."""
    return hmac.new(proof_key, label + transcript, hashlib.sha256).digest()


def proofs_equal(a: bytes, b: bytes) -> bool:
    """Compare two proofs in constant time."""
    return hmac.compare_digest(a, b)


class Sealer:
    """Seals the frames of one direction, with the implicit counter nonce 0, 1, 2, ..."""

    __slots__ = ("_aead", "_counter", "_encrypt")

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)  # built once per direction: the per-frame path only encrypts
        self._encrypt = self._aead.encrypt
        self._counter = 0

    def seal_frame(self, plaintext: bytes) -> bytes:
        """The whole frame: length(4) ‖ seal(aad=length(4), plaintext); the caller checks the size limit."""
        counter = self._counter
        if counter >= limits.NONCE_COUNTER_LIMIT:
            raise LocalProtocolError("nonce counter exhausted: this connection must be closed")
        header = (len(plaintext) + limits.TAG_BYTES).to_bytes(limits.LENGTH_PREFIX_BYTES, "big")
        sealed = self._encrypt(_NONCE.pack(counter), plaintext, header)
        self._counter = counter + 1
        return header + sealed

    def seal(self, aad: bytes, plaintext: bytes) -> bytes:
        """Encrypt and authenticate plaintext (and aad); return ciphertext ‖ tag."""
        counter = self._counter
        if counter >= limits.NONCE_COUNTER_LIMIT:
            raise LocalProtocolError("nonce counter exhausted: this connection must be closed")
        sealed = self._aead.encrypt(_NONCE.pack(counter), plaintext, aad)
        self._counter = counter + 1
        return sealed


class Opener:
    """Opens the frames of one direction; only the next frame in sequence opens."""

    __slots__ = ("_aead", "_counter", "_decrypt")

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)
        self._decrypt = self._aead.decrypt
        self._counter = 0

    def open(self, aad: bytes, sealed: bytes) -> bytes:
        """Return the plaintext, or raise RemoteProtocolError("bad-frame") if anything was altered."""
        counter = self._counter
        if counter >= limits.NONCE_COUNTER_LIMIT:
            raise RemoteProtocolError("bad-frame")
        try:
            plaintext = self._decrypt(_NONCE.pack(counter), sealed, aad)
        except InvalidTag:
            raise RemoteProtocolError("bad-frame") from None
        self._counter = counter + 1
        return plaintext
