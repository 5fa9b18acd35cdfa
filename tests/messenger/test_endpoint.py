"""Tests for messenger.endpoint: every accepted Service.MessengerEndpoint form, every refused one, the message."""

from pathlib import Path

import pytest

from messenger.endpoint import Endpoint, parse_endpoint, socket_path
from messenger.errors import InvalidEndpoint

MESSAGE = "Service.MessengerEndpoint must be empty, pipe://NAME, tcp://HOST:PORT or tcp://*:PORT (got {!r})"


@pytest.mark.parametrize(
    "text, expected, canonical",
    [
        ("", Endpoint(kind="pipe", name="messenger"), "pipe://messenger"),
        ("   \t\n", Endpoint(kind="pipe", name="messenger"), "pipe://messenger"),
        ("pipe://messenger", Endpoint(kind="pipe", name="messenger"), "pipe://messenger"),
        ("  pipe://svc-1.a_b  ", Endpoint(kind="pipe", name="svc-1.a_b"), "pipe://svc-1.a_b"),
        ("pipe://" + "n" * 64, Endpoint(kind="pipe", name="n" * 64), "pipe://" + "n" * 64),
        ("tcp://127.0.0.1:7070", Endpoint(kind="tcp", host="127.0.0.1", port=7070), "tcp://127.0.0.1:7070"),
        ("tcp://indexer:1", Endpoint(kind="tcp", host="indexer", port=1), "tcp://indexer:1"),
        ("tcp://svc.example.com:65535", Endpoint(kind="tcp", host="svc.example.com", port=65535), None),
        ("tcp://my_service:8080", Endpoint(kind="tcp", host="my_service", port=8080), None),
        ("tcp://[::1]:7070", Endpoint(kind="tcp", host="::1", port=7070), "tcp://[::1]:7070"),
        ("tcp://[2001:DB8:0::1]:80", Endpoint(kind="tcp", host="2001:db8::1", port=80), "tcp://[2001:db8::1]:80"),
        ("tcp://*:7070", Endpoint(kind="tcp", host=None, port=7070), "tcp://*:7070"),
        ("tcp://host:0080", Endpoint(kind="tcp", host="host", port=80), "tcp://host:80"),
        (" tcp://host:80\n", Endpoint(kind="tcp", host="host", port=80), "tcp://host:80"),
    ],
)
def test_accepted_forms(text, expected, canonical):
    endpoint = parse_endpoint(text)
    assert endpoint == expected
    assert str(endpoint) == endpoint.display == (canonical or text.strip())
    assert parse_endpoint(str(endpoint)) == endpoint


def test_is_any_host():
    assert parse_endpoint("tcp://*:1").is_any_host
    assert not parse_endpoint("tcp://h:1").is_any_host
    assert not parse_endpoint("").is_any_host


def test_port_zero_only_when_asked():
    with pytest.raises(InvalidEndpoint):
        parse_endpoint("tcp://127.0.0.1:0")
    assert parse_endpoint("tcp://127.0.0.1:0", allow_port_zero=True) == Endpoint(kind="tcp", host="127.0.0.1", port=0)
    assert parse_endpoint("tcp://*:0", allow_port_zero=True).is_any_host


@pytest.mark.parametrize(
    "text",
    [
        "pipe://",
        "pipe://../x",
        "pipe://..",
        "pipe://.hidden",
        "pipe://a/b",
        "pipe://a\\b",
        "pipe://a b",
        "pipe://a\x00b",
        "pipe://" + "n" * 65,
        "pipe://é",
        "pipe:/x",
        "PIPE://x",
        "messenger",
        "/run/messenger.sock",
        "tcp://host",
        "tcp://host:",
        "tcp://:80",
        "tcp://host:0",
        "tcp://host:65536",
        "tcp://host:99999",
        "tcp://host:-1",
        "tcp://host:+80",
        "tcp://host:８０",  # full-width digits
        "tcp://ho st:80",
        "tcp://host :80",
        "tcp://host:8\x000",
        "tcp://host\t:80",
        "tcp://u@host:1",
        "tcp://u:p@host:1",
        "tcp://host:1/x",
        "tcp://host:1/",
        "tcp://host:1?x=1",
        "tcp://host:1#x",
        "tcp://::1:80",
        "tcp://[::1]",
        "tcp://[::1]80",
        "tcp://[::1:80",
        "tcp://[nothex]:80",
        "tcp://[127.0.0.1]:80",
        "tcp://[fe80::1%eth0]:80",
        "tcp://[*]:80",
        "tcp://**:80",
        "tcp://*.example:80",
        "tcp://999.1.1.1:80",
        "tcp://1.2.3:80",
        "tcp://-host:80",
        "tcp://host-:80",
        "tcp://a..b:80",
        "tcp://" + "a" * 64 + ":80",
        "tcp://" + ".".join(["a" * 60] * 5) + ":80",
        "tcp://hôst:80",
        "tcp:/host:80",
        "tcp//host:80",
        "udp://host:80",
        "http://host:80",
        "https://host:443",
        "host:80",
    ],
)
def test_refused_forms(text):
    with pytest.raises(InvalidEndpoint) as info:
        parse_endpoint(text)
    shown = text if len(text) <= 80 else text[:80] + "..."  # long values are cut
    assert str(info.value) == MESSAGE.format(shown)


def test_error_message_is_exact():
    with pytest.raises(InvalidEndpoint) as info:
        parse_endpoint("http://x")
    assert str(info.value) == (
        "Service.MessengerEndpoint must be empty, pipe://NAME, tcp://HOST:PORT or tcp://*:PORT (got 'http://x')"
    )


def test_error_message_is_repr_safe_and_truncated():
    with pytest.raises(InvalidEndpoint) as info:
        parse_endpoint("tcp://h:1\n" + "x" * 10_000)
    message = str(info.value)
    assert "\n" not in message
    assert len(message) < 200
    assert message.endswith("...')")


def test_invalid_endpoint_is_a_value_error():
    with pytest.raises(ValueError):
        parse_endpoint("nope")


def test_socket_path():
    assert socket_path(parse_endpoint(""), Path("/data/run")) == Path("/data/run/messenger.sock")
    assert socket_path(parse_endpoint("pipe://web-2"), Path("/d/run")) == Path("/d/run/web-2.sock")
    with pytest.raises(ValueError):
        socket_path(parse_endpoint("tcp://h:1"), Path("/d/run"))
