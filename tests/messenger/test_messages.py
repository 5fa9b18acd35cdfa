"""Tests for messenger.messages: the allowlist, and the envelope codec's round trips and refusals."""

import dataclasses
import datetime
import struct

import pytest

from messenger.errors import LocalProtocolError, RemoteProtocolError
from messenger.messages import (
    ERROR_CODES,
    MESSAGE_TYPES,
    UNKNOWN_RUNNER,
    Kind,
    decode_envelope,
    encode_envelope,
    error_body,
)


def test_allowlist_order_is_part_of_v1():
    assert MESSAGE_TYPES == (
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


def test_kind_values():
    assert [(k.name, k.value) for k in Kind] == [
        ("REQUEST", 1),
        ("REPLY", 2),
        ("ERROR", 3),
        ("STREAM", 4),
        ("CANCEL", 5),
        ("KEEPALIVE", 6),
        ("KEEPALIVE_ACK", 7),
    ]


@pytest.mark.parametrize("code, type", list(enumerate(MESSAGE_TYPES, start=1)))
def test_request_round_trip_for_every_type(code, type):
    data = encode_envelope(Kind.REQUEST, 7, type, {"feed": "pypi", "n": [1, 2.5, None, "é"]})
    assert data[:6] == struct.pack(">BIB", 1, 7, code)
    assert decode_envelope(data) == (Kind.REQUEST, 7, type, {"feed": "pypi", "n": [1, 2.5, None, "é"]})


@pytest.mark.parametrize(
    "kind, id, body",
    [
        (Kind.REPLY, 1, {"ok": True}),
        (Kind.REPLY, 2**32 - 1, {}),
        (Kind.ERROR, 3, {"error": "no such runner", "code": "unknown_runner"}),
        (Kind.ERROR, 3, {"error": "no such runner"}),  # from a peer that sends no code (older nodes)
        (Kind.ERROR, 3, {"error": "later", "code": "a_code_of_a_newer_peer_9"}),
        (Kind.STREAM, 4, {"runner": "x", "progress": 50}),
        (Kind.CANCEL, 5, None),
        (Kind.KEEPALIVE, 0, None),
        (Kind.KEEPALIVE_ACK, 0, None),
    ],
)
def test_round_trip_other_kinds(kind, id, body):
    assert decode_envelope(encode_envelope(kind, id, None, body)) == (kind, id, None, body)


def test_error_codes_are_short_snake_case_and_distinct():
    assert len(set(ERROR_CODES)) == len(ERROR_CODES)
    for code in ERROR_CODES:
        assert decode_envelope(encode_envelope(Kind.ERROR, 1, None, error_body("x", code=code)))[3]["code"] == code


def test_error_body_refuses_a_malformed_code_before_it_reaches_the_wire():
    assert error_body("no such runner", code=UNKNOWN_RUNNER) == {"error": "no such runner", "code": "unknown_runner"}
    for code in ("", "Bad", "x" * 33, None):
        with pytest.raises(LocalProtocolError):
            error_body("x", code=code)  # type: ignore[arg-type]


def test_body_is_compact_json():
    assert encode_envelope(Kind.REPLY, 1, None, {"a": 1, "b": [1, 2]})[6:] == b'{"a":1,"b":[1,2]}'


def test_bodiless_kinds_are_header_only():
    assert encode_envelope(Kind.KEEPALIVE, 0, None, None) == bytes([6, 0, 0, 0, 0, 0])


@pytest.mark.parametrize(
    "kind, id, type, body",
    [
        (Kind.REQUEST, 1, "rm -rf", {}),  # not in the allowlist
        (Kind.REQUEST, 1, None, {}),
        (Kind.REPLY, 1, "ping", {}),  # only requests carry a type
        (Kind.REQUEST, 1, "ping", None),  # requests need a body
        (Kind.REQUEST, 1, "ping", ["not", "a", "dict"]),
        (Kind.CANCEL, 1, None, {}),  # cancel has no body
        (Kind.KEEPALIVE, 1, None, None),  # keepalive id is 0
        (Kind.REPLY, -1, None, {}),
        (Kind.REPLY, 2**32, None, {}),
        (Kind.REPLY, 1, None, {"x": object()}),  # not JSON
        (Kind.REPLY, 1, None, {"x": float("nan")}),  # not JSON either
    ],
)
def test_encode_misuse_is_local_error(kind, id, type, body):
    with pytest.raises(LocalProtocolError):
        encode_envelope(kind, id, type, body)


@dataclasses.dataclass
class Point:
    x: int
    y: int


def _header(kind: int, id: int = 1, code: int = 0) -> bytes:
    return struct.pack(">BIB", kind, id, code)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        _header(2)[:5],  # truncated header
        _header(0) + b"{}",  # unknown kind
        _header(8) + b"{}",
        _header(255) + b"{}",
        _header(1, code=0) + b"{}",  # unknown type code
        _header(1, code=len(MESSAGE_TYPES) + 1) + b"{}",
        _header(2, code=1) + b"{}",  # code on a non-request
        _header(2) + b"[]",  # not an object
        _header(2) + b'"text"',
        _header(2) + b"1",
        _header(2) + b"null",
        _header(2),  # missing body
        _header(2) + b"{",  # broken JSON
        _header(2) + b"{}{}",  # trailing data
        _header(2) + b"{} ",
        _header(2) + b'{"a":"\xff"}',  # bad UTF-8
        _header(2) + b'{"a":"\xed\xa0\x80"}',  # UTF-8-encoded surrogate
        _header(2) + '{"a":1}'.encode("utf-16"),  # not UTF-8
        _header(2) + b'{"a":NaN}',  # not JSON
        _header(2) + b'{"a":' * 100_000 + b"1" + b"}" * 100_000,  # nesting deeper than the parser's recursion limit
        _header(3) + b"{}",  # error without "error"
        _header(3) + b'{"error":1}',
        _header(3) + b'{"error":"x","code":1}',  # a code is a short snake_case string
        _header(3) + b'{"error":"x","code":null}',
        _header(3) + b'{"error":"x","code":""}',
        _header(3) + b'{"error":"x","code":"Unknown Runner"}',
        _header(3) + b'{"error":"x","code":"' + b"x" * 33 + b'"}',
        _header(5) + b"{}",  # cancel with a body
        _header(6, id=1),  # keepalive with an id
    ],
)
def test_malformed_envelopes_are_bad_message(data):
    with pytest.raises(RemoteProtocolError) as info:
        decode_envelope(data)
    assert info.value.reason == "bad-message"


# --- the orjson codec keeps the stdlib codec's contract ---


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_encode_refuses_non_finite_floats_even_beside_nulls(value):
    # orjson writes NaN/Infinity as null; the codec must still refuse them (also next to real nulls).
    with pytest.raises(LocalProtocolError):
        encode_envelope(Kind.REPLY, 1, None, {"a": None, "b": [value]})


def test_nulls_and_the_string_null_still_encode():
    body = {"a": None, "b": "null", "c": [None]}
    assert decode_envelope(encode_envelope(Kind.REPLY, 1, None, body))[3] == body


@pytest.mark.parametrize("value", [2**64, 2**64 - 1, -(2**63) - 1, -(2**63), 10**40, -(10**40)])
def test_integers_beyond_64_bits_round_trip_exactly(value):
    data = encode_envelope(Kind.REPLY, 1, None, {"n": value, "m": [value]})
    body = decode_envelope(data)[3]
    assert body == {"n": value, "m": [value]} and type(body["n"]) is int


def test_non_string_keys_are_written_as_strings_like_the_stdlib():
    assert encode_envelope(Kind.REPLY, 1, None, {1: "a"})[6:] == b'{"1":"a"}'


def test_non_ascii_is_raw_utf8_and_decodes_either_way():
    assert encode_envelope(Kind.REPLY, 1, None, {"a": "é"})[6:] == '{"a":"é"}'.encode()
    assert decode_envelope(_header(2) + b'{"a":"\\u00e9"}')[3] == {"a": "é"}  # what the stdlib codec wrote


@pytest.mark.parametrize("value", [datetime.datetime(2024, 1, 1), Point(1, 2), b"bytes", {1, 2}])
def test_encode_still_refuses_what_is_not_json(value):
    with pytest.raises(LocalProtocolError):
        encode_envelope(Kind.REPLY, 1, None, {"x": value})


@pytest.mark.parametrize(
    "data",
    [
        _header(2) + b'{"a":1e400}',  # Infinity spelled as a number
        _header(2) + b'{"a":Infinity}',
        _header(2) + b'{"a":-Infinity}',
        _header(2) + b'{"a":1}\n',  # trailing whitespace is trailing data
        _header(2) + b' {"a":1}',
        _header(2) + b"[1]",
        _header(2) + b'"{}"',
        _header(2) + b'{"a":' + b"[" * 2000 + b"]" * 2000 + b"}",  # deep nesting
        _header(2) + b'{"a":1' + b"1" * 30 + b",}",  # broken JSON with a long digit run
    ],
)
def test_decode_refuses_more_non_json(data):
    with pytest.raises(RemoteProtocolError) as failed:
        decode_envelope(data)
    assert failed.value.reason == "bad-message"


@pytest.mark.parametrize("padding", [10, 5000])  # below and above the size where digits are no longer counted
def test_integers_beyond_64_bits_round_trip_in_small_and_big_bodies(padding):
    body = {"pad": "x" * padding, "big": 2**70, "small": 12, "neg": -(2**65)}
    _, _, _, decoded = decode_envelope(encode_envelope(Kind.REPLY, 1, None, body))
    assert decoded == body and type(decoded["big"]) is int and type(decoded["neg"]) is int
