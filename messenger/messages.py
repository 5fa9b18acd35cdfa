"""The message-type allowlist, the envelope codec (the plaintext inside a frame) and v2's batch records.

Guarantees: only the allowlisted kinds and message types are encoded or decoded; bodies are compact
UTF-8 JSON objects; an ERROR body holds a string "error" and, but for older peers, a well-formed "code"; a batch
holds 1 to MAX_BATCH_ENVELOPES whole envelopes, never another batch; anything malformed from the peer is
RemoteProtocolError("bad-message").
"""

import enum
import json
import re
import struct
from collections.abc import Sequence

import orjson

from messenger.errors import LocalProtocolError, RemoteProtocolError
from messenger.limits import BATCH_ITEM_PREFIX_BYTES, ENVELOPE_HEADER_BYTES, MAX_BATCH_ENVELOPES

# The message types, one constant each for callers and handlers.
PING = "ping"
STATUS_SNAPSHOT = "status.snapshot"
STATUS_SUBSCRIBE = "status.subscribe"
TRIGGER_NUDGE = "trigger.nudge"
RUNNER_RUN = "runner.run"
RUNNER_PAUSE = "runner.pause"
RUNNER_RESUME = "runner.resume"
SERVICE_RESTART = "service.restart"
CONFIG_CHANGED = "config.changed"

# The allowlist; a type's wire code is its position starting at 1. The order is part of v1.
MESSAGE_TYPES: tuple[str, ...] = (
    PING,
    STATUS_SNAPSHOT,
    STATUS_SUBSCRIBE,
    TRIGGER_NUDGE,
    RUNNER_RUN,
    RUNNER_PAUSE,
    RUNNER_RESUME,
    SERVICE_RESTART,
    CONFIG_CHANGED,
)


# The codes an ERROR reply carries (body {"error": text, "code": code}): callers branch on the code, never on the
# text, which is for people and may change. A code is snake_case, at most MAX_ERROR_CODE_CHARS characters.
UNKNOWN_TYPE = "unknown_type"  # no handler for this message type
BAD_REQUEST = "bad_request"  # the body is not what the type expects, or a stream id already in use
UNKNOWN_RUNNER = "unknown_runner"  # no task runner of that name
UNKNOWN_FEED = "unknown_feed"  # no feed of that name (the trigger core's refusal; no request names a feed yet)
TOO_MANY_STREAMS = "too_many_streams"  # the connection holds its MAX_STREAMS_PER_CONNECTION streams already
INTERNAL = "internal"  # the handler failed
UNSPECIFIED = "unspecified"  # an ERROR without a code, from a peer that sends none (older nodes)
ERROR_CODES: tuple[str, ...] = (
    UNKNOWN_TYPE, BAD_REQUEST, UNKNOWN_RUNNER, UNKNOWN_FEED, TOO_MANY_STREAMS, INTERNAL, UNSPECIFIED,
)
MAX_ERROR_CODE_CHARS = 32
# A received code may be one this node does not know (a newer peer's): well-formed is all it must be.
_ERROR_CODE = re.compile(rf"[a-z][a-z0-9_]{{0,{MAX_ERROR_CODE_CHARS - 1}}}")


def error_code_valid(code: object) -> bool:
    """True for a well-formed ERROR code: a snake_case string of 1 to MAX_ERROR_CODE_CHARS characters."""
    return isinstance(code, str) and _ERROR_CODE.fullmatch(code) is not None


def error_body(message: str, *, code: str) -> dict:
    """The body of an ERROR reply; a malformed code is LocalProtocolError (the peer would refuse it)."""
    if not error_code_valid(code):
        raise LocalProtocolError(f"{code!r} is not an ERROR code")
    return {"error": message, "code": code}


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
_WITH_BODY = frozenset({Kind.REQUEST, Kind.REPLY, Kind.ERROR, Kind.STREAM})
_ZERO_ID = frozenset({Kind.KEEPALIVE, Kind.KEEPALIVE_ACK})


# The codec is orjson (compact UTF-8 JSON, ~7x faster than the stdlib on a 512-byte body). The stdlib
# encoder is kept only to reproduce its refusals where orjson is more lenient: orjson writes NaN/Infinity
# as `null` (so a body whose output contains "null" is re-checked by it) and it raises TypeError for
# non-string keys and integers beyond 64 bits (the stdlib turns keys into strings and refuses the ints
# below, as it refuses everything else that is not JSON). Datetimes and dataclasses are passed through
# to `default` (none given: TypeError), as the stdlib refuses them.
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
_dumps = orjson.dumps
_loads = orjson.loads
_CLOSE_BRACE = ord("}")
_DIGITS = b"0123456789"
# orjson decodes an integer beyond 64 bits as a float; JSON of one has a run of at least 19 digits.
_LONGEST_EXACT_DIGITS = 18
_DIGIT_RUN_TABLE = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x20 for byte in range(256))
_LONG_DIGIT_RUN = b"0" * (_LONGEST_EXACT_DIGITS + 1)
# Counting the digits first spares small bodies the run search; a body this big (a status batch: several numbers per
# event) nearly always holds that many digits in all, so counting would only add a pass over it.
_COUNT_DIGITS_BELOW = 4096
_EXACT_DECODER = json.JSONDecoder()


def _encode_body(body: dict) -> bytes:
    """Compact UTF-8 JSON of `body`; TypeError/ValueError for anything that is not JSON (NaN, Infinity, ...)."""
    try:
        data = _dumps(body, option=_ORJSON_OPTIONS)
    except orjson.JSONEncodeError:
        # Integers beyond 64 bits, non-string keys (the stdlib writes them as strings), or a type
        # neither codec accepts (the stdlib raises as before).
        return _ENCODER.encode(body).encode("utf-8")
    if b"null" in data:  # maybe a NaN/Infinity that orjson wrote as null: the stdlib refuses those
        _ENCODER.encode(body)
    return data


def encode_envelope(kind: Kind, id: int, type: str | None, body: dict | None) -> bytes:
    """Encode one envelope; misuse (a type not in the allowlist, a misplaced body, ...) is LocalProtocolError."""
    code = _CODES.get((kind, type))
    if code is None:
        raise LocalProtocolError(f"{kind.name} with message type {type!r}: not in the allowlist")
    if body is None:
        if kind in _WITH_BODY:
            raise LocalProtocolError(f"{kind.name} needs a body")
        if not 0 <= id <= _MAX_ID or (id and kind in _ZERO_ID):
            raise LocalProtocolError(f"bad id {id!r} for {kind.name}")
        return _pack_header(kind, id, code)
    if kind not in _WITH_BODY:
        raise LocalProtocolError(f"{kind.name} cannot carry a body of type {body.__class__.__name__}")
    return encode_with_body(kind, id, code, body)


def encode_with_body(kind: Kind, id: int, code: int, body: dict) -> bytes:
    """The hot path of encode_envelope for a kind with a body and its (already checked) code."""
    if not 0 <= id <= _MAX_ID:
        raise LocalProtocolError(f"bad id {id!r} for {kind.name}")
    if not isinstance(body, dict):
        raise LocalProtocolError(f"{kind.name} cannot carry a body of type {body.__class__.__name__}")
    try:
        return _pack_header(kind, id, code) + _encode_body(body)
    except (TypeError, ValueError, RecursionError) as exc:
        raise LocalProtocolError(f"body is not JSON-serialisable: {exc}") from None


# Request type -> wire code, for the hot path.
REQUEST_CODES: dict[str, int] = {name: code for code, name in enumerate(MESSAGE_TYPES, start=1)}
_pack_header = _HEADER.pack
_unpack_header = _HEADER.unpack_from
_OPEN_BRACE = ord("{")
_ERROR = Kind.ERROR
# The same table read backwards, keyed by the raw header values: one lookup validates kind and code.
# (kind value, code) -> (kind, type, has a body, must have id 0)
_DECODE: dict[tuple[int, int], tuple[Kind, str | None, bool, bool]] = {
    (kind.value, code): (kind, type, kind in _WITH_BODY, kind in _ZERO_ID) for (kind, type), code in _CODES.items()
}


def decode_envelope(data: bytes) -> tuple[Kind, int, str | None, dict | None]:
    """Decode one envelope into (kind, id, type, body); anything malformed is RemoteProtocolError("bad-message").

    A body is exactly one JSON object: it starts with "{", ends with "}" and parses as one document
    (orjson refuses trailing data, bad UTF-8, NaN/Infinity and nesting deeper than 1024 levels).
    """
    size = len(data)
    if size < ENVELOPE_HEADER_BYTES:
        raise RemoteProtocolError("bad-message")
    kind_value, id, code = _unpack_header(data)
    entry = _DECODE.get((kind_value, code))
    if entry is None:
        raise RemoteProtocolError("bad-message")
    kind, type, has_body, zero_id = entry
    if not has_body:
        if size != ENVELOPE_HEADER_BYTES or (id and zero_id):
            raise RemoteProtocolError("bad-message")
        return kind, id, type, None
    if size == ENVELOPE_HEADER_BYTES or data[ENVELOPE_HEADER_BYTES] != _OPEN_BRACE or data[-1] != _CLOSE_BRACE:
        raise RemoteProtocolError("bad-message")
    try:
        body = _loads(data[ENVELOPE_HEADER_BYTES:])
        if (size >= _COUNT_DIGITS_BELOW or size - len(data.translate(None, _DIGITS)) > _LONGEST_EXACT_DIGITS) \
                and _has_long_digit_run(data):
            # Maybe an integer orjson made a float: decode the (already validated) text exactly.
            body = _EXACT_DECODER.decode(data[ENVELOPE_HEADER_BYTES:].decode("utf-8"))
    except (ValueError, RecursionError):  # orjson.JSONDecodeError is a ValueError
        raise RemoteProtocolError("bad-message") from None
    if kind is _ERROR and (not isinstance(body.get("error"), str) or
                           ("code" in body and not error_code_valid(body["code"]))):
        raise RemoteProtocolError("bad-message")
    return kind, id, type, body


def _has_long_digit_run(data: bytes) -> bool:
    return _LONG_DIGIT_RUN in data.translate(_DIGIT_RUN_TABLE)


# A v2 batch record's plaintext: the header kind=BATCH_KIND | id=count of envelopes | code 0, then each envelope
# after its 4-byte length. Not a Kind: it carries envelopes rather than a message, and v1's decoder (which knows
# only the kinds above) refuses it as "bad-message", so a v1 peer never acts on one.
BATCH_KIND = 8


def encode_batch(envelopes: Sequence[bytes]) -> bytes:
    """The plaintext of one batch record holding `envelopes` (encoded, checked; 1 to MAX_BATCH_ENVELOPES)."""
    if not 1 <= len(envelopes) <= MAX_BATCH_ENVELOPES:
        raise LocalProtocolError(f"a batch holds 1 to {MAX_BATCH_ENVELOPES} envelopes, not {len(envelopes)}")
    parts = [_pack_header(BATCH_KIND, len(envelopes), 0)]
    for envelope in envelopes:
        parts.append(len(envelope).to_bytes(BATCH_ITEM_PREFIX_BYTES, "big"))
        parts.append(envelope)
    return b"".join(parts)


def split_batch(data: bytes) -> list[bytes]:
    """The envelopes of a batch record's plaintext (`data` starts with BATCH_KIND), still to be decoded.

    RemoteProtocolError("bad-message") for an empty batch, a count above MAX_BATCH_ENVELOPES or other than the
    envelopes present, or a truncated envelope.
    """
    size = len(data)
    if size < ENVELOPE_HEADER_BYTES:
        raise RemoteProtocolError("bad-message")
    _kind, count, code = _unpack_header(data)
    if code or not 1 <= count <= MAX_BATCH_ENVELOPES:
        raise RemoteProtocolError("bad-message")
    envelopes = []
    pos = ENVELOPE_HEADER_BYTES
    for _ in range(count):
        start = pos + BATCH_ITEM_PREFIX_BYTES
        end = start + int.from_bytes(data[pos:start], "big")
        if start > size or end > size:
            raise RemoteProtocolError("bad-message")
        envelopes.append(data[start:end])
        pos = end
    if pos != size:
        raise RemoteProtocolError("bad-message")
    return envelopes
