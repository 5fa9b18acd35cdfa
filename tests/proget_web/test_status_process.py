"""The Service Status page end to end: a real `runindexer` and a real daphne, a browser-like client over HTTP and
WebSocket. The service is SIGKILLed and restarted while the page's socket stays open."""
from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import json
import os
import re
import signal
import socket
import struct
import time
from collections.abc import Callable, Iterator
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests.processes import ServiceProcess, manage, shell, start_daphne, stop

pytestmark = pytest.mark.slow

HOST = "127.0.0.1"
PASSWORD = "status-test-pw"
RUNNER = "Node Message Cleanup"
# A page render must not wait for the service (the messenger is non-essential).
PAGE_DEADLINE = 2.0
_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class MiniWebSocket:
    """Just enough RFC 6455 client for a test: text frames, masking, ping/pong, close. Blocking, with timeouts."""

    def __init__(self, port: int, path: str, *, cookie: str, origin: str) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=10)
        key = base64.b64encode(os.urandom(16))
        self.sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key.decode()}\r\nSec-WebSocket-Version: 13\r\nOrigin: {origin}\r\n"
            f"Cookie: {cookie}\r\n\r\n".encode()
        )
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self._recv()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        status, *headers = head.decode("latin-1").split("\r\n")
        assert status.split()[1] == "101", status
        fields = {name.strip().lower(): value.strip() for name, _, value in (h.partition(":") for h in headers)}
        assert fields.get("sec-websocket-accept") == base64.b64encode(hashlib.sha1(key + _WS_GUID).digest()).decode()
        self.closed_with: int | None = None

    def _recv(self) -> bytes:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("the server closed the connection")
        return data

    def _read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            self.buffer += self._recv()
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        length = len(payload)
        if length < 126:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
        elif length < 65536:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def send_json(self, message: dict) -> None:
        self._send_frame(0x1, json.dumps(message).encode())

    def receive_json(self, timeout: float) -> dict:
        self.sock.settimeout(timeout)
        message = b""
        while True:
            first, second = self._read(2)
            opcode, length = first & 0x0F, second & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", self._read(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", self._read(8))
            payload = self._read(length)  # server frames are not masked
            if opcode == 0x9:
                self._send_frame(0xA, payload)
            elif opcode == 0x8:
                self.closed_with = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                raise ConnectionError(f"WebSocket closed with {self.closed_with}")
            elif opcode in (0x0, 0x1):
                message += payload
                if first & 0x80:
                    return json.loads(message)

    def until(self, predicate: Callable[[dict], bool], timeout: float = 15) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, "expected WebSocket message did not arrive"
            try:
                message = self.receive_json(remaining)
            except TimeoutError:
                raise AssertionError("expected WebSocket message did not arrive") from None
            if predicate(message):
                return message

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._send_frame(0x8, struct.pack("!H", 1000))
        self.sock.close()


class Browser:
    """A session against daphne over http.client: cookies kept, CSRF token taken from the login form."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, body: str | None = None, timeout: float = 10) -> tuple[int, str]:
        connection = http.client.HTTPConnection(HOST, self.port, timeout=timeout)
        headers = {"Cookie": self.cookie_header()}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            for header in response.headers.get_all("Set-Cookie") or []:
                for name, morsel in SimpleCookie(header).items():
                    self.cookies[name] = morsel.value
            return response.status, response.read().decode()
        finally:
            connection.close()

    def cookie_header(self) -> str:
        return "; ".join(f"{name}={value}" for name, value in self.cookies.items())

    def login(self, username: str, password: str) -> None:
        status, page = self.request("GET", "/accounts/login/")
        assert status == 200
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        form = urlencode({"username": username, "password": password, "csrfmiddlewaretoken": token})
        status, _ = self.request("POST", "/accounts/login/", body=form)
        assert status == 302 and "sessionid" in self.cookies, "login failed"

    def websocket(self, path: str) -> MiniWebSocket:
        return MiniWebSocket(self.port, path, cookie=self.cookie_header(), origin=f"http://{HOST}:{self.port}")


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    manage(tmp_path, "migrate", "--no-input")
    shell(tmp_path, "from django.contrib.auth.models import User; "
                    f"User.objects.create_superuser('admin', 'admin@example.com', {PASSWORD!r})")
    return tmp_path


@pytest.fixture
def daphne(data_dir: Path) -> Iterator[int]:
    process, port = start_daphne(data_dir, log=data_dir / "daphne.log")
    try:
        yield port
    finally:
        stop(process)


def test_the_page_follows_the_service_through_a_crash_and_a_restart(data_dir: Path, daphne: int) -> None:
    service = ServiceProcess(data_dir).start()
    try:
        browser = Browser(daphne)
        browser.login("admin", PASSWORD)
        status, page = browser.request("GET", "/administration/service")
        assert status == 200 and 'data-socket-path="/ws/administration/service"' in page

        ws = browser.websocket("/ws/administration/service")
        first = ws.receive_json(10)
        assert first["type"] == "snapshot" and first["canControl"] is True
        full = first if first["snapshot"] else ws.until(lambda m: m["type"] == "snapshot" and m["snapshot"])
        assert RUNNER in full["snapshot"]["runners"]
        assert full["snapshot"]["service"]["fingerprint"]

        # A live event: run a runner from the page and watch its state stream back.
        ws.send_json({"action": "run", "runner": RUNNER, "id": 1})
        reply = ws.until(lambda m: m["type"] in ("reply", "error"))
        assert reply["type"] == "reply" and reply["id"] == 1, reply
        ws.until(lambda m: m["type"] == "events" and any(
            e["type"] == "runner" and e["name"] == RUNNER and e["lastStartedAt"] for e in m["events"]))

        service.kill()
        down = ws.until(lambda m: (m.get("link") or {}).get("status") == "unreachable", timeout=10)
        assert down["link"]["reason"]
        started = time.monotonic()
        status, _ = browser.request("GET", "/administration/service", timeout=PAGE_DEADLINE)
        assert status == 200 and time.monotonic() - started < PAGE_DEADLINE
        ws.send_json({"action": "run", "runner": RUNNER})
        refused = ws.until(lambda m: m["type"] in ("reply", "error"))
        assert refused["type"] == "error" and refused["message"].startswith("service not reachable")

        service.start()
        back = ws.until(lambda m: m["type"] == "snapshot" and m["snapshot"], timeout=30)
        assert RUNNER in back["snapshot"]["runners"]
        # Same socket, no page reload: actions work again too.
        ws.send_json({"action": "run", "runner": RUNNER, "id": 2})
        reply = ws.until(lambda m: m["type"] in ("reply", "error"), timeout=10)
        assert reply["type"] == "reply" and reply["id"] == 2, reply
        assert back["link"]["fingerprintMatch"] is not False
        ws.close()
    finally:
        if service.process is not None and service.process.poll() is None:
            service.stop(signal.SIGTERM)
