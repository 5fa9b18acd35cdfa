"""Tests for messenger.endpoint: every accepted Service.MessengerEndpoint form, every refused one, the message."""

from pathlib import Path

import pytest

from messenger.endpoint import Endpoint, host_port, parse_endpoint, socket_path
from messenger.errors import InvalidEndpoint

MESSAGE = "Service.MessengerEndpoint must be empty, pipe://NAME, tcp://HOST:PORT or tcp://*:PORT (got {!r}: {})"


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


PIPE_NAME = "the pipe name must be 1 to 64 letters, digits, '.', '_' or '-', not starting with '.'"
SCHEME = "it must start with pipe:// or tcp://"
NO_HOST = "the host is missing"
NO_PORT = "the port is missing"
PORT = "the port must be a number from 1 to 65535"
BRACKETS = "an IPv6 address is written [ADDRESS]:PORT"


def not_host(host: str) -> str:
    return f"{host!r} is not a host name, IPv4 address, [IPv6 address] or *"


def not_ipv6(address: str) -> str:
    return f"{address!r} is not an IPv6 address"


@pytest.mark.parametrize(
    "text, reason",
    [
        ("pipe://", PIPE_NAME),
        ("pipe://../x", PIPE_NAME),
        ("pipe://..", PIPE_NAME),
        ("pipe://.hidden", PIPE_NAME),
        ("pipe://a/b", PIPE_NAME),
        ("pipe://a\\b", PIPE_NAME),
        ("pipe://a b", PIPE_NAME),
        ("pipe://a\x00b", PIPE_NAME),
        ("pipe://" + "n" * 65, PIPE_NAME),
        ("pipe://é", PIPE_NAME),
        ("pipe:/x", SCHEME),
        ("PIPE://x", SCHEME),
        ("messenger", SCHEME),
        ("/run/messenger.sock", SCHEME),
        ("tcp://host", NO_PORT),
        ("tcp://host:", PORT),
        ("tcp://:80", NO_HOST),
        ("tcp://host:0", PORT),
        ("tcp://host:65536", PORT),
        ("tcp://host:99999", PORT),
        ("tcp://host:-1", PORT),
        ("tcp://host:+80", PORT),
        ("tcp://host:８０", PORT),  # full-width digits
        ("tcp://ho st:80", not_host("ho st")),
        ("tcp://host :80", not_host("host ")),
        ("tcp://host:8\x000", PORT),
        ("tcp://host\t:80", not_host("host\t")),
        ("tcp://u@host:1", not_host("u@host")),
        ("tcp://u:p@host:1", not_host("u:p@host")),
        ("tcp://host:1/x", PORT),
        ("tcp://host:1/", PORT),
        ("tcp://host:1?x=1", PORT),
        ("tcp://host:1#x", PORT),
        ("tcp://::1:80", BRACKETS),
        ("tcp://[::1]", BRACKETS),
        ("tcp://[::1]80", BRACKETS),
        ("tcp://[::1:80", BRACKETS),
        ("tcp://[nothex]:80", not_ipv6("nothex")),
        ("tcp://[127.0.0.1]:80", not_ipv6("127.0.0.1")),
        ("tcp://[fe80::1%eth0]:80", not_ipv6("fe80::1%eth0")),
        ("tcp://[*]:80", not_ipv6("*")),
        ("tcp://**:80", not_host("**")),
        ("tcp://*.example:80", not_host("*.example")),
        ("tcp://999.1.1.1:80", not_host("999.1.1.1")),
        ("tcp://1.2.3:80", not_host("1.2.3")),
        ("tcp://-host:80", not_host("-host")),
        ("tcp://host-:80", not_host("host-")),
        ("tcp://a..b:80", not_host("a..b")),
        ("tcp://" + "a" * 64 + ":80", not_host("a" * 64)),
        ("tcp://" + ".".join(["a" * 60] * 5) + ":80", not_host("a" * 60 + "." + "a" * 19 + "...")),  # cut
        ("tcp://hôst:80", not_host("hôst")),
        ("tcp:/host:80", SCHEME),
        ("tcp//host:80", SCHEME),
        ("udp://host:80", SCHEME),
        ("http://host:80", SCHEME),
        ("https://host:443", SCHEME),
        ("host:80", SCHEME),
    ],
)
def test_refused_forms_say_which_part_is_wrong(text, reason):
    with pytest.raises(InvalidEndpoint) as info:
        parse_endpoint(text)
    shown = text if len(text) <= 80 else text[:80] + "..."  # long values are cut
    assert str(info.value) == MESSAGE.format(shown, reason)


def test_error_message_is_exact():
    with pytest.raises(InvalidEndpoint) as info:
        parse_endpoint("http://x")
    assert str(info.value) == (
        "Service.MessengerEndpoint must be empty, pipe://NAME, tcp://HOST:PORT or tcp://*:PORT "
        "(got 'http://x': it must start with pipe:// or tcp://)"
    )


def test_error_message_is_repr_safe_and_truncated():
    with pytest.raises(InvalidEndpoint) as info:
        parse_endpoint("tcp://h:1\n" + "x" * 10_000)
    message = str(info.value)
    assert "\n" not in message
    assert len(message) < 250
    assert message.endswith("...': the port must be a number from 1 to 65535)")


def test_invalid_endpoint_is_a_value_error():
    with pytest.raises(ValueError):
        parse_endpoint("nope")


def test_socket_path():
    assert socket_path(parse_endpoint(""), Path("/data/run")) == Path("/data/run/messenger.sock")
    assert socket_path(parse_endpoint("pipe://web-2"), Path("/d/run")) == Path("/d/run/web-2.sock")
    with pytest.raises(ValueError):
        socket_path(parse_endpoint("tcp://h:1"), Path("/d/run"))


@pytest.mark.parametrize(("host", "port", "text"), [
    ("127.0.0.1", 7400, "127.0.0.1:7400"), ("::1", 7400, "[::1]:7400"), ("svc.example", 1, "svc.example:1"),
])
def test_host_port_brackets_an_ipv6_address(host: str, port: int, text: str) -> None:
    assert host_port(host, port) == text
