"""Parsing `Service.MessengerEndpoint`: where the service listens and the web connects.

Pure and strict: a value is one of empty, pipe://NAME, tcp://HOST:PORT or tcp://*:PORT, or it is
refused with InvalidEndpoint naming the accepted forms and the part that is wrong; `str(endpoint)` gives
the canonical text.
"""

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from messenger.errors import InvalidEndpoint

DEFAULT_PIPE_NAME = "messenger"
_PIPE = "pipe://"
_TCP = "tcp://"
_ANY_HOST = "*"
# How much of a bad value the error message echoes: enough to recognise it, not a pasted file.
_MAX_SHOWN_CHARS = 80
_MAX_PORT = 65535
# DNS limit on a whole host name.
_MAX_HOSTNAME_CHARS = 253

_PIPE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}")
# DNS labels; "_" is allowed because container runtimes hand out such names (my_service).
_HOST_LABEL = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
_PORT = re.compile(r"[0-9]{1,5}")


@dataclass(frozen=True, kw_only=True)
class Endpoint:
    kind: Literal["pipe", "tcp"]
    name: str | None = None  # pipe name (pipe only)
    host: str | None = None  # tcp only; None for `*`; IPv6 without brackets
    port: int | None = None  # tcp only

    @property
    def is_any_host(self) -> bool:
        """True for tcp://*:PORT: listen on PROGET_NODE_IP or everywhere; connect to the primary."""
        return self.kind == "tcp" and self.host is None

    @property
    def display(self) -> str:
        """The canonical text of this endpoint (what parse_endpoint accepts back)."""
        if self.kind == "pipe":
            return f"{_PIPE}{self.name}"
        if self.host is None:
            return f"{_TCP}{_ANY_HOST}:{self.port}"
        return f"{_TCP}{host_port(self.host, self.port)}"

    def __str__(self) -> str:
        return self.display


def parse_endpoint(text: str, *, allow_port_zero: bool = False) -> Endpoint:
    """Parse a configured endpoint; empty means pipe://messenger. Raises InvalidEndpoint naming the wrong part.

    allow_port_zero lets tests ask for tcp://HOST:0 (bind a free port); configuration never does.
    """
    value = text.strip()
    if not value:
        return Endpoint(kind="pipe", name=DEFAULT_PIPE_NAME)
    try:
        if value.startswith(_PIPE):
            return _parse_pipe(value[len(_PIPE) :])
        if value.startswith(_TCP):
            return _parse_tcp(value[len(_TCP) :], allow_port_zero=allow_port_zero)
        raise _Refused("it must start with pipe:// or tcp://")
    except _Refused as refused:
        raise InvalidEndpoint(
            "Service.MessengerEndpoint must be empty, pipe://NAME, tcp://HOST:PORT or tcp://*:PORT "
            f"(got {_shown(text)}: {refused})"
        ) from None


def socket_path(endpoint: Endpoint, run_dir: Path) -> Path:
    """The Unix socket of a pipe endpoint: RUN_DIR/NAME.sock."""
    if endpoint.kind != "pipe":
        raise ValueError(f"{endpoint} is not a pipe endpoint")
    return run_dir / f"{endpoint.name}.sock"


class _Refused(Exception):
    """Which part of an endpoint is wrong, in a few words."""


def _parse_pipe(name: str) -> Endpoint:
    if not _PIPE_NAME.fullmatch(name):
        raise _Refused("the pipe name must be 1 to 64 letters, digits, '.', '_' or '-', not starting with '.'")
    return Endpoint(kind="pipe", name=name)


def _parse_tcp(rest: str, *, allow_port_zero: bool) -> Endpoint:
    if rest.startswith("["):
        address, bracket, port_text = rest[1:].partition("]:")
        if not bracket:
            raise _Refused("an IPv6 address is written [ADDRESS]:PORT")
        host = _ipv6(address)
        if host is None:
            raise _Refused(f"{_shown(address)} is not an IPv6 address")
    else:
        address, colon, port_text = rest.rpartition(":")
        if not rest:
            raise _Refused("the host and port are missing")
        if not colon:
            raise _Refused("the port is missing")
        if not address:
            raise _Refused("the host is missing")
        if _ipv6(address) is not None:
            raise _Refused("an IPv6 address is written [ADDRESS]:PORT")
        host = None if address == _ANY_HOST else _hostname(address)
        if address != _ANY_HOST and host is None:
            raise _Refused(f"{_shown(address)} is not a host name, IPv4 address, [IPv6 address] or *")
    lowest = 0 if allow_port_zero else 1
    if not _PORT.fullmatch(port_text) or not lowest <= int(port_text) <= _MAX_PORT:
        raise _Refused(f"the port must be a number from {lowest} to {_MAX_PORT}")
    return Endpoint(kind="tcp", host=host, port=int(port_text))


def _ipv6(text: str) -> str | None:
    # Zone ids ("%eth0") are refused: they need URL escaping and no deployment here uses them.
    if "%" in text:
        return None
    try:
        return str(ipaddress.IPv6Address(text))
    except ValueError:
        return None


def _hostname(text: str) -> str | None:
    labels = text.split(".")
    if len(text) > _MAX_HOSTNAME_CHARS or not all(_HOST_LABEL.fullmatch(label) for label in labels):
        return None
    if all(label.isdigit() for label in labels):  # looks like IPv4, so it must be one
        try:
            return str(ipaddress.IPv4Address(text))
        except ValueError:
            return None
    return text


def _shown(text: str) -> str:
    if len(text) > _MAX_SHOWN_CHARS:
        text = text[:_MAX_SHOWN_CHARS] + "..."
    return repr(text)


def host_port(host: str, port: int) -> str:
    """HOST:PORT, with an IPv6 address in brackets ("[::1]:7400"), as in URLs and endpoints."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
