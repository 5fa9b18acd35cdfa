"""The WebSocket origin check through a real daphne: the handshake a page on another origin would send, over a
real socket. Refused handshakes get HTTP 403; the node's own origin gets 101 (then the consumer decides)."""
from __future__ import annotations

import base64
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.processes import start_daphne, stop
from tests.web_clients import HOST

pytestmark = pytest.mark.slow

SOCKET = "/ws/administration/service"


@pytest.fixture(scope="module")
def port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    # No database is needed: a refused handshake never reaches it, and an anonymous one is closed in connect.
    data_dir: Path = tmp_path_factory.mktemp("ws-origin")
    process, port = start_daphne(data_dir, log=data_dir / "daphne.log")
    try:
        yield port
    finally:
        stop(process)


def handshake_status(port: int, origin: str) -> int:
    """The HTTP status daphne answers a WebSocket handshake from `origin` with."""
    with socket.create_connection((HOST, port), timeout=10) as sock:
        sock.sendall(
            f"GET {SOCKET} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\nSec-WebSocket-Version: 13\r\n"
            f"Origin: {origin}\r\n\r\n".encode()
        )
        head = b""
        while b"\r\n" not in head:
            data = sock.recv(4096)
            assert data, f"daphne closed the connection without answering ({head!r})"
            head += data
    return int(head.split(b" ", 2)[1])


@pytest.mark.parametrize("origin", ["http://{host}:1", "http://localhost:{port}", "https://{host}:{port}",
                                    "ftp://{host}:{port}", "http://{host}"])
def test_daphne_refuses_another_origin_of_its_host(port: int, origin: str) -> None:
    assert handshake_status(port, origin.format(host=HOST, port=port)) == 403


def test_daphne_lets_its_own_origin_through(port: int) -> None:
    assert handshake_status(port, f"http://{HOST}:{port}") == 101
