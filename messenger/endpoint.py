"""Parsing `Service.MessengerEndpoint`: where the service listens and the web connects.

Pure and strict: a value is one of empty, pipe://NAME, tcp://HOST:PORT or tcp://*:PORT, or it is
refused with InvalidEndpoint naming the accepted forms; `str(endpoint)` gives the canonical text.
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
            host = _ANY_HOST
        elif ":" in self.host:
            host = f"[{self.host}]"
        else:
            host = self.host
        return f"{_TCP}{host}:{self.port}"

    def __str__(self) -> str:
        return self.display


def parse_endpoint(text: str, *, allow_port_zero: bool = False) -> Endpoint:
    """Parse a configured endpoint; empty means pipe://messenger. Raises InvalidEndpoint.

    allow_port_zero lets tests ask for tcp://HOST:0 (bind a free port); configuration never does.
    """
    value = text.strip()
    if not value:
        return Endpoint(kind="pipe", name=DEFAULT_PIPE_NAME)
    if value.startswith(_PIPE):
        name = value[len(_PIPE) :]
        if _PIPE_NAME.fullmatch(name):
            return Endpoint(kind="pipe", name=name)
    elif value.startswith(_TCP):
        endpoint = _parse_tcp(value[len(_TCP) :], allow_port_zero=allow_port_zero)
        if endpoint is not None:
            return endpoint
    raise InvalidEndpoint(
        f"Service.MessengerEndpoint must be empty, pipe://NAME, tcp://HOST:PORT or tcp://*:PORT (got {_shown(text)})"
    )


def socket_path(endpoint: Endpoint, run_dir: Path) -> Path:
    """The Unix socket of a pipe endpoint: RUN_DIR/NAME.sock."""
    if endpoint.kind != "pipe":
        raise ValueError(f"{endpoint} is not a pipe endpoint")
    return run_dir / f"{endpoint.name}.sock"


def _parse_tcp(rest: str, *, allow_port_zero: bool) -> Endpoint | None:
    if rest.startswith("["):
        address, bracket, port_text = rest[1:].partition("]:")
        host = _ipv6(address) if bracket else None
        host_ok = host is not None
    else:
        address, _, port_text = rest.rpartition(":")
        host = None if address == _ANY_HOST else _hostname(address)
        host_ok = address == _ANY_HOST or host is not None
    port = _port(port_text, allow_zero=allow_port_zero)
    if not host_ok or port is None:
        return None
    return Endpoint(kind="tcp", host=host, port=port)


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


def _port(text: str, *, allow_zero: bool) -> int | None:
    if not _PORT.fullmatch(text):
        return None
    port = int(text)
    lowest = 0 if allow_zero else 1
    return port if lowest <= port <= _MAX_PORT else None


def _shown(text: str) -> str:
    if len(text) > _MAX_SHOWN_CHARS:
        text = text[:_MAX_SHOWN_CHARS] + "..."
    return repr(text)
