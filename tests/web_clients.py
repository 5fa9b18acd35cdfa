"""Browser-like clients for the process tests: an HTTP session that logs in and posts forms, and a blocking
WebSocket. Built on bench/wsclient.py (its HttpSession and frame encoder), so tests and benches speak one dialect.
"""
from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import socket
import struct
import time
from collections.abc import Callable

from bench.wsclient import OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, HttpSession, encode_frame

HOST = "127.0.0.1"
_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class MiniWebSocket:
    """Just enough RFC 6455 client for a test: text frames, ping/pong, close. Blocking, with timeouts."""

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
        self.fragments: list[bytes] = []  # of a message still in progress
        self.closed_with: int | None = None

    def _recv(self) -> bytes:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("the server closed the connection")
        return data

    def _frame(self) -> tuple[int, bytes] | None:
        """Take the next whole frame (first byte, payload) off the buffer; None while it is not all here."""
        buffer = self.buffer
        if len(buffer) < 2:
            return None
        length, offset = buffer[1] & 0x7F, 2  # server frames are not masked
        if length == 126:
            if len(buffer) < 4:
                return None
            (length,), offset = struct.unpack_from("!H", buffer, 2), 4
        elif length == 127:
            if len(buffer) < 10:
                return None
            (length,), offset = struct.unpack_from("!Q", buffer, 2), 10
        if len(buffer) < offset + length:
            return None
        self.buffer = buffer[offset + length:]
        return buffer[0], buffer[offset:offset + length]

    def send_json(self, message: dict) -> None:
        self.sock.sendall(encode_frame(OP_TEXT, json.dumps(message).encode()))

    def receive_json(self, timeout: float) -> dict:
        """The next text message; TimeoutError if none arrives in `timeout` s (a partial one stays buffered)."""
        self.sock.settimeout(timeout)
        while True:
            frame = self._frame()
            if frame is None:
                self.buffer += self._recv()
                continue
            first, payload = frame
            opcode = first & 0x0F
            if opcode == OP_PING:
                self.sock.sendall(encode_frame(OP_PONG, payload))
            elif opcode == OP_CLOSE:
                self.closed_with = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                raise ConnectionError(f"WebSocket closed with {self.closed_with}")
            elif opcode in (OP_CONT, OP_TEXT):
                self.fragments.append(payload)
                if first & 0x80:
                    message, self.fragments = b"".join(self.fragments), []
                    return json.loads(message)

    def until(self, predicate: Callable[[dict], bool], timeout: float = 15) -> dict:
        """Skip messages until one satisfies `predicate`; fail after `timeout` seconds."""
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
            self.sock.sendall(encode_frame(OP_CLOSE, struct.pack("!H", 1000)))
        self.sock.close()


class Browser(HttpSession):
    """A session against one daphne on HOST: cookies kept, CSRF tokens read from the forms, WebSockets opened."""

    def __init__(self, port: int) -> None:
        super().__init__(HOST, port)

    def post_form(self, page_path: str, action: str, form: dict | None = None) -> tuple[int, dict[str, str], str]:
        """POST the form whose action is `action` on `page_path`, with that form's CSRF token."""
        status, _, page = self.request("GET", page_path)
        assert status == 200, page
        token = re.search(rf'action="{re.escape(action)}".*?name="csrfmiddlewaretoken" value="([^"]+)"', page, re.S)
        assert token, f"no form posting to {action} on {page_path}"
        return self.request("POST", action, {**(form or {}), "csrfmiddlewaretoken": token.group(1)})

    def websocket(self, path: str) -> MiniWebSocket:
        return MiniWebSocket(self.port, path, cookie=self.cookie_header(), origin=f"http://{HOST}:{self.port}")
