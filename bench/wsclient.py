"""A minimal asyncio WebSocket client for the benchmarks (RFC 6455; no dependencies), plus a tiny HTTP session.

Enough for a browser-like viewer of the Status page: the opening handshake (with the Sec-WebSocket-Accept check),
masked client frames, unmasked server frames, fragmentation, ping/pong and close. Built on asyncio.Protocol so a
bench can hold hundreds of sockets in one process cheaply, and so every message carries the wall-clock time its
last bytes arrived (`time.time()` in data_received, before any parsing): latency measurements do not include the
client's own JSON parsing or queueing.

    ws = await WebSocket.connect("127.0.0.1", port, "/ws/administration/service", cookie=..., origin=...)
    message = await ws.receive_json(timeout=10)
    ws.send_json({"action": "run", "runner": "Test Slow"})
    ws.close()

Or, for many sockets, pass `on_message(payload: bytes, received_at: float)`: messages then go to the callback
instead of the queue (no JSON parsing at all here).

`HttpSession` is a blocking http.client session (cookies kept, CSRF token taken from a page's form) for logging in
and posting forms, as tests/proget_web/test_status_process.py's Browser does.
"""
from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import http.client
import json
import os
import re
import struct
import time
from collections.abc import Callable
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlencode

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
# Biggest message accepted from the server: a Status page snapshot is well under this.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024


def _mask(payload: bytes, mask: bytes) -> bytes:
    """XOR `payload` with the repeating 4-byte `mask` (one big-int XOR instead of a Python loop per byte)."""
    if not payload:
        return payload
    n = len(payload)
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")


def encode_frame(opcode: int, payload: bytes) -> bytes:
    """One final, masked client frame."""
    mask = os.urandom(4)
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    return header + mask + _mask(payload, mask)


class WebSocketError(ConnectionError):
    """The handshake failed, the server broke the protocol, or the connection closed."""


class WebSocket(asyncio.Protocol):
    """One client connection; create it with `await WebSocket.connect(...)`."""

    def __init__(self, key: bytes, on_message: Callable[[bytes, float], None] | None) -> None:
        self._key = key
        self._on_message = on_message
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._handshaken = False
        self._fragments: list[bytes] = []
        self._queue: asyncio.Queue[tuple[bytes, float]] = asyncio.Queue()
        self.closed: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.messages = 0
        self.bytes_received = 0

    @classmethod
    async def connect(
        cls, host: str, port: int, path: str, *, cookie: str = "", origin: str | None = None,
        on_message: Callable[[bytes, float], None] | None = None, timeout: float = 10,
    ) -> WebSocket:
        key = base64.b64encode(os.urandom(16))
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout):
            transport, protocol = await loop.create_connection(lambda: cls(key, on_message), host, port)
            headers = [
                f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Upgrade: websocket", "Connection: Upgrade",
                f"Sec-WebSocket-Key: {key.decode()}", "Sec-WebSocket-Version: 13",
                f"Origin: {origin or f'http://{host}:{port}'}",
            ]
            if cookie:
                headers.append(f"Cookie: {cookie}")
            transport.write(("\r\n".join(headers) + "\r\n\r\n").encode("latin-1"))
            try:
                await protocol._opened
            except BaseException:
                transport.abort()
                raise
        return protocol

    # --- asyncio.Protocol ---

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        received_at = time.time()
        self.bytes_received += len(data)
        self._buffer += data
        try:
            if not self._handshaken and not self._handshake():
                return
            self._frames(received_at)
        except WebSocketError as exc:
            self._fail(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(WebSocketError(f"connection lost: {exc or 'closed by the server'}"))

    # --- API ---

    def send_json(self, message: Any) -> None:
        self.send_text(json.dumps(message))

    def send_text(self, text: str) -> None:
        if self._transport is None or self._transport.is_closing():
            raise WebSocketError("the connection is closed")
        self._transport.write(encode_frame(OP_TEXT, text.encode()))

    async def receive(self, timeout: float) -> tuple[bytes, float]:
        """The next message's payload and the time it arrived (queue mode only)."""
        if self.closed.done() and self._queue.empty():
            raise WebSocketError(f"closed ({self.closed.result()})")
        getter = asyncio.ensure_future(self._queue.get())
        done, _ = await asyncio.wait({getter, self.closed}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if getter in done:
            return getter.result()
        getter.cancel()
        if self.closed.done():
            raise WebSocketError(f"closed ({self.closed.result()})")
        raise TimeoutError(f"no WebSocket message within {timeout:g} s")

    async def receive_json(self, timeout: float) -> dict:
        payload, _ = await self.receive(timeout)
        return json.loads(payload)

    async def until(self, predicate: Callable[[dict], bool], timeout: float) -> tuple[dict, float]:
        """Skip messages until one satisfies `predicate`; return it and when it arrived."""
        deadline = time.monotonic() + timeout
        while True:
            payload, received_at = await self.receive(max(0.0, deadline - time.monotonic()))
            message = json.loads(payload)
            if predicate(message):
                return message, received_at

    def drain(self) -> int:
        """Drop the messages already received and not yet read (queue mode); return how many."""
        dropped = 0
        while not self._queue.empty():
            self._queue.get_nowait()
            dropped += 1
        return dropped

    def close(self, code: int = 1000) -> None:
        if self._transport is not None and not self._transport.is_closing():
            with contextlib.suppress(Exception):
                self._transport.write(encode_frame(OP_CLOSE, struct.pack("!H", code)))
            self._transport.close()

    # --- internals ---

    def _handshake(self) -> bool:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > 65536:
                raise WebSocketError("handshake response too long")
            return False
        head = bytes(self._buffer[:end]).decode("latin-1")
        del self._buffer[: end + 4]
        status, *lines = head.split("\r\n")
        parts = status.split()
        if len(parts) < 2 or parts[1] != "101":
            raise WebSocketError(f"handshake refused: {status}")
        fields = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
        expected = base64.b64encode(hashlib.sha1(self._key + _GUID).digest()).decode()
        if fields.get("sec-websocket-accept") != expected:
            raise WebSocketError("bad Sec-WebSocket-Accept")
        self._handshaken = True
        if not self._opened.done():
            self._opened.set_result(None)
        return True

    def _frames(self, received_at: float) -> None:
        buffer = self._buffer
        while len(buffer) >= 2:
            first, second = buffer[0], buffer[1]
            if second & 0x80:
                raise WebSocketError("the server masked a frame")
            length, offset = second & 0x7F, 2
            if length == 126:
                if len(buffer) < 4:
                    return
                (length,), offset = struct.unpack_from("!H", buffer, 2), 4
            elif length == 127:
                if len(buffer) < 10:
                    return
                (length,), offset = struct.unpack_from("!Q", buffer, 2), 10
            if length > MAX_MESSAGE_BYTES:
                raise WebSocketError(f"frame of {length} bytes is too big")
            if len(buffer) < offset + length:
                return
            payload = bytes(buffer[offset: offset + length])
            del buffer[: offset + length]
            opcode = first & 0x0F
            if opcode == OP_PING:
                if self._transport is not None and not self._transport.is_closing():
                    self._transport.write(encode_frame(OP_PONG, payload))
            elif opcode == OP_PONG:
                pass
            elif opcode == OP_CLOSE:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                self.close(code if code not in (1005, 1006) else 1000)
                self._fail(WebSocketError(f"closed by the server with {code}"), code=code)
                return
            elif opcode in (OP_TEXT, OP_BINARY, OP_CONT):
                self._fragments.append(payload)
                if first & 0x80:
                    message = self._fragments[0] if len(self._fragments) == 1 else b"".join(self._fragments)
                    self._fragments = []
                    self.messages += 1
                    if self._on_message is not None:
                        self._on_message(message, received_at)
                    else:
                        self._queue.put_nowait((message, received_at))
            else:
                raise WebSocketError(f"unknown opcode {opcode}")

    def _fail(self, exc: WebSocketError, code: int = 1006) -> None:
        if not self._opened.done():
            self._opened.set_exception(exc)
        if not self.closed.done():
            self.closed.set_result(code)
        if self._transport is not None:
            self._transport.close()


class HttpSession:
    """A blocking browser-like session against daphne: cookies kept, CSRF tokens read from forms."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.cookies: dict[str, str] = {}

    def request(
        self, method: str, path: str, form: dict | None = None, timeout: float = 10,
    ) -> tuple[int, dict[str, str], str]:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        headers = {"Cookie": self.cookie_header(), "Origin": f"http://{self.host}:{self.port}",
                   "Referer": f"http://{self.host}:{self.port}{path}"}
        body = None
        if form is not None:
            body = urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            for header in response.headers.get_all("Set-Cookie") or []:
                for name, morsel in SimpleCookie(header).items():
                    self.cookies[name] = morsel.value
            return response.status, dict(response.headers.items()), response.read().decode()
        finally:
            connection.close()

    def cookie_header(self) -> str:
        return "; ".join(f"{name}={value}" for name, value in self.cookies.items())

    @staticmethod
    def csrf_token(page: str) -> str:
        found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        if found is None:
            raise RuntimeError("no CSRF token in the page")
        return found.group(1)

    def login(self, username: str, password: str) -> None:
        status, _, page = self.request("GET", "/accounts/login/")
        if status != 200:
            raise RuntimeError(f"login page answered {status}")
        form = {"username": username, "password": password, "csrfmiddlewaretoken": self.csrf_token(page)}
        status, _, _ = self.request("POST", "/accounts/login/", form=form)
        if status != 302 or "sessionid" not in self.cookies:
            raise RuntimeError(f"login failed ({status})")
