"""The message-type allowlist and the envelope codec (the plaintext inside a frame).

Guarantees: only the kinds and message types of protocol v1 are encoded or decoded; bodies are
compact UTF-8 JSON objects; anything malformed from the peer is RemoteProtocolError("bad-message").
"""

import enum
import json
import struct

from messenger.errors import LocalProtocolError, RemoteProtocolError
from messenger.limits import ENVELOPE_HEADER_BYTES

# The allowlist; a type's wire code is its position starting at 1. The order is part of v1.
MESSAGE_TYPES: tuple[str, ...] = (
    "ping",
    "status.snapshot",
    "status.subscribe",
    "trigger.nudge",
    "runner.run",
    "runner.pause",
    "runner.resume",
    "service.restart",
    "config.changed",
)


class Kind(enum.IntEnum):
    REQUEST = 1
    REPLY = 2
    ERROR = 3
    STREAM = 4
    CANCEL = 5
    KEEPALIVE = 6
    KEEPALIVE_ACK = 7


_HEADER = struct.Struct(">BIB")  # kind | id | code
_MAX_ID = 2**32 - 1
# The valid (kind, type) pairs and their codes: REQUEST with an allowlisted type, any other kind with none.
_CODES: dict[tuple[Kind, str | None], int] = {
    **{(Kind.REQUEST, name): code for code, name in enumerate(MESSAGE_TYPES, start=1)},
    **{(kind, None): 0 for kind in Kind if kind is not Kind.REQUEST},
}
# The same table read backwards, keyed by the raw header bytes: one lookup validates kind and code.
_HEADERS = {(kind.value, code): (kind, type) for (kind, type), code in _CODES.items()}
_WITH_BODY = frozenset({Kind.REQUEST, Kind.REPLY, Kind.ERROR, Kind.STREAM})
_ZERO_ID = frozenset({Kind.KEEPALIVE, Kind.KEEPALIVE_ACK})


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


# Built once: json.dumps/loads with non-default arguments would build a new coder per call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def encode_envelope(kind: Kind, id: int, type: str | None, body: dict | None) -> bytes:
    """Encode one envelope; misuse (a type not in the allowlist, a misplaced body, ...) is LocalProtocolError."""
    code = _CODES.get((kind, type))
    if code is None:
        raise LocalProtocolError(f"{kind.name} with message type {type!r}: not in the allowlist")
    if not 0 <= id <= _MAX_ID or (id and kind in _ZERO_ID):
        raise LocalProtocolError(f"bad id {id!r} for {kind.name}")
    header = _HEADER.pack(kind, id, code)
    if body is None:
        if kind in _WITH_BODY:
            raise LocalProtocolError(f"{kind.name} needs a body")
        return header
    if kind not in _WITH_BODY or not isinstance(body, dict):
        raise LocalProtocolError(f"{kind.name} cannot carry a body of type {body.__class__.__name__}")
    try:
        text = _ENCODER.encode(body)
    except (TypeError, ValueError) as exc:
        raise LocalProtocolError(f"body is not JSON-serialisable: {exc}") from None
    return header + text.encode("utf-8")


def decode_envelope(data: bytes) -> tuple[Kind, int, str | None, dict | None]:
    """Decode one envelope into (kind, id, type, body); anything malformed is RemoteProtocolError("bad-message")."""
    if len(data) < ENVELOPE_HEADER_BYTES:
        raise RemoteProtocolError("bad-message")
    kind_value, id, code = _HEADER.unpack_from(data)
    kind_and_type = _HEADERS.get((kind_value, code))
    if kind_and_type is None:
        raise RemoteProtocolError("bad-message")
    kind, type = kind_and_type
    if kind not in _WITH_BODY:
        if len(data) != ENVELOPE_HEADER_BYTES or (id and kind in _ZERO_ID):
            raise RemoteProtocolError("bad-message")
        return kind, id, type, None
    # Starting with "{" and parsing to the very end means the body is exactly one JSON object.
    if data[ENVELOPE_HEADER_BYTES : ENVELOPE_HEADER_BYTES + 1] != b"{":
        raise RemoteProtocolError("bad-message")
    try:
        text = data[ENVELOPE_HEADER_BYTES:].decode("utf-8")
        body, end = _DECODER.raw_decode(text)
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise RemoteProtocolError("bad-message") from None
    if end != len(text) or (kind is Kind.ERROR and not isinstance(body.get("error"), str)):
        raise RemoteProtocolError("bad-message")
    return kind, id, type, body
