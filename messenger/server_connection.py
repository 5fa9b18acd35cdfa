"""One server-side messenger connection: a thin asyncio.Protocol around the sans-IO protocol.Connection.

`data_received` only feeds the parser, writes what it queued and dispatches the events (uvicorn's
h11_impl). Deadlines are loop.call_at timers, not tasks; handlers that finish without suspending
are answered inline, without a task.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Generator
from dataclasses import dataclass, field
from types import CoroutineType
from typing import TYPE_CHECKING, Any

from messenger.allowlist import ip_allowed
from messenger.errors import LocalProtocolError, RemoteProtocolError
from messenger.protocol import (
    Cancel,
    Connection,
    HandshakeComplete,
    Keepalive,
    KeepaliveAck,
    Request,
    Role,
    State,
)

if TYPE_CHECKING:
    from messenger.server import MessengerServer

logger = logging.getLogger(__name__)

# An ERROR reply carries at most this much of a handler's exception: enough to say what went wrong.
MAX_ERROR_MESSAGE_CHARS = 200


@dataclass(frozen=True, kw_only=True, slots=True)
class RequestContext:
    """What a handler may want to know about the request besides its body."""

    peer: str  # "10.0.0.5:41234", "[::1]:41234" or "unix"
    id: int
    type: str


Handler = Callable[[dict, RequestContext], Awaitable[dict]]
StreamHandler = Callable[[dict, RequestContext], AsyncIterator[dict]]


@dataclass
class ServerStats:
    """Counters for the Service Status page; rejects are keyed by reason ("bad-proof", "connection-cap", ...)."""

    connections_open: int = 0
    connections_total: int = 0
    handshakes_ok: int = 0
    rejects: Counter[str] = field(default_factory=Counter)
    frames_in: int = 0
    frames_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "connections_open": self.connections_open,
            "connections_total": self.connections_total,
            "handshakes_ok": self.handshakes_ok,
            "rejects": dict(self.rejects),
            "frames_in": self.frames_in,
            "frames_out": self.frames_out,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
        }


class ServerConnection(asyncio.Protocol):
    """One accepted peer."""

    def __init__(self, server: MessengerServer) -> None:
        self._server = server
        self._stats = server.stats
        self._limits = server.limits
        self._loop = asyncio.get_running_loop()
        self._conn = Connection(role=Role.SERVER, key=server.key)
        self._transport: asyncio.Transport | None = None
        self.peer = "unix"
        self.peer_ip: str | None = None  # None for Unix sockets: local peers, no allowlist
        self.lost: asyncio.Future[None] = self._loop.create_future()
        self._closing = False
        self._bytes_in = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._streams: dict[int, asyncio.Task[None]] = {}
        self._handshake_timer: asyncio.TimerHandle | None = None
        self._frame_timer: asyncio.TimerHandle | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._idle_deadline = 0.0
        self._last_frame = 0.0
        self._drained: asyncio.Future[None] | None = None  # set while the transport's buffer is full

    # --- asyncio.Protocol ---

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        server, stats = self._server, self._stats
        stats.connections_total += 1
        peername = transport.get_extra_info("peername")
        if isinstance(peername, tuple):
            self.peer_ip = peername[0]
            self.peer = f"[{peername[0]}]:{peername[1]}" if ":" in peername[0] else f"{peername[0]}:{peername[1]}"
        # Both checks happen before anything is read: a refused peer never reaches the parser.
        if self.peer_ip is not None and not ip_allowed(self.peer_ip, server.allowed_ips):
            self._refuse("ip-not-allowed")
            return
        if len(server.connections) >= self._limits.max_connections:
            self._refuse("connection-cap")
            return
        server.connections.add(self)
        stats.connections_open = len(server.connections)
        self._handshake_timer = self._loop.call_at(
            self._loop.time() + self._limits.handshake_timeout, self._deadline_passed, "handshake-timeout"
        )

    def connection_lost(self, exc: Exception | None) -> None:
        if self._conn.state is State.HANDSHAKING and not self._closing:
            if self._bytes_in:  # e.g. a client that found the server holds another key
                self._count_reject("handshake-aborted")
            else:
                logger.debug("messenger: %s connected and left without a word", self.peer)
        self._closing = True
        self._cancel_timers()
        for task in list(self._tasks):
            task.cancel()
        server = self._server
        if self in server.connections:
            server.connections.discard(self)
            self._stats.connections_open = len(server.connections)
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        if not self.lost.done():
            self.lost.set_result(None)

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        self._stats.bytes_in += len(data)
        self._bytes_in += len(data)
        conn = self._conn
        try:
            events = conn.receive_data(data)
        except RemoteProtocolError as exc:
            self._reject(exc.reason)
            return
        handshake = conn.data_to_send()
        if handshake:
            self._write(handshake)
        if events:
            self._last_frame = self._loop.time()
            for event in events:
                self._handle(event)
                if self._closing:
                    return
        if conn.state is State.OPEN:
            self._watch_partial_frame(bool(events))

    def pause_writing(self) -> None:
        # The peer does not read: stop reading its requests and let streams wait (bounded memory).
        self._drained = self._loop.create_future()
        self._transport.pause_reading()  # type: ignore[union-attr]

    def resume_writing(self) -> None:
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        self._drained = None
        if not self._closing:
            self._transport.resume_reading()  # type: ignore[union-attr]

    # --- control from the server ---

    def close(self, *, abort: bool, why: str) -> None:
        """Close on the server's own initiative (shutdown, key or allowlist change)."""
        if self._closing:
            return
        logger.info("messenger: closing connection from %s: %s", self.peer, why)
        self._closing = True
        self._cancel_timers()
        if abort:
            self._transport.abort()  # type: ignore[union-attr]
        else:
            self._transport.close()  # type: ignore[union-attr]

    # --- events ---

    def _handle(self, event: object) -> None:
        kind = type(event)
        if kind is Request:
            self._stats.frames_in += 1
            self._on_request(event)  # type: ignore[arg-type]
        elif kind is Keepalive:
            self._stats.frames_in += 1
            self._send(self._conn.send_keepalive_ack())
        elif kind is Cancel:
            self._stats.frames_in += 1
            task = self._streams.pop(event.id, None)  # type: ignore[attr-defined]
            if task is not None:
                task.cancel()
        elif kind is HandshakeComplete:
            self._stats.handshakes_ok += 1
            if self._handshake_timer is not None:
                self._handshake_timer.cancel()
                self._handshake_timer = None
            self._idle_deadline = self._last_frame + self._limits.idle_timeout
            self._idle_timer = self._loop.call_at(self._idle_deadline, self._idle_check)
        elif kind is KeepaliveAck:
            self._stats.frames_in += 1

    def _on_request(self, request: Request) -> None:
        stream_handler = self._server.stream_handlers.get(request.type)
        if stream_handler is not None:
            self._start_stream(request, stream_handler)
            return
        handler = self._server.handlers.get(request.type)
        if handler is None:
            self._send_error(request.id, "not supported")
            return
        context = RequestContext(peer=self.peer, id=request.id, type=request.type)
        try:
            result = handler(request.body, context)
            if type(result) is CoroutineType:
                # Fast path: most handlers (ping, nudges) finish without suspending; answer inline.
                try:
                    suspended_on = result.send(None)
                except StopIteration as done:
                    self._send_reply(request, done.value)
                    return
                self._spawn(self._reply_later(request, _Resumed(result, suspended_on)))
            else:
                self._spawn(self._reply_later(request, result))
        except Exception as exc:  # noqa: BLE001 - any handler failure becomes an ERROR reply
            self._handler_failed(request, exc)

    async def _reply_later(self, request: Request, awaitable: Awaitable[dict]) -> None:
        try:
            body = await awaitable
        except Exception as exc:  # noqa: BLE001
            self._handler_failed(request, exc)
        else:
            self._send_reply(request, body)

    def _start_stream(self, request: Request, handler: StreamHandler) -> None:
        if request.id in self._streams:
            self._send_error(request.id, "subscription id already in use")
            return
        context = RequestContext(peer=self.peer, id=request.id, type=request.type)
        try:
            items = handler(request.body, context)
        except Exception as exc:  # noqa: BLE001
            self._handler_failed(request, exc)
            return
        self._send(self._conn.send_reply(id=request.id, body={"subscribed": True}))
        self._streams[request.id] = self._spawn(self._pump(request, items))

    async def _pump(self, request: Request, items: AsyncIterator[dict]) -> None:
        """Send one STREAM frame per item until CANCEL, disconnect, or the end (then CANCEL from us)."""
        try:
            async for item in items:
                if self._closing:
                    return
                self._send(self._conn.send_stream(id=request.id, body=item))
                if self._drained is not None:
                    await self._drained
            if not self._closing:
                self._send(self._conn.send_cancel(id=request.id))
        except Exception as exc:  # noqa: BLE001
            self._handler_failed(request, exc)
        finally:
            self._streams.pop(request.id, None)
            aclose = getattr(items, "aclose", None)
            if aclose is not None:
                await aclose()

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # --- sending ---

    def _send_reply(self, request: Request, body: dict) -> None:
        if self._closing:
            return
        try:
            frame = self._conn.send_reply(id=request.id, body=body)
        except LocalProtocolError as exc:  # not a dict, not JSON, too big: the handler's bug
            self._handler_failed(request, exc)
            return
        self._send(frame)

    def _send_error(self, id: int, message: str) -> None:
        if not self._closing:
            self._send(self._conn.send_error(id=id, message=message))

    def _handler_failed(self, request: Request, exc: BaseException) -> None:
        logger.error("messenger: %s handler failed for %s", request.type, self.peer, exc_info=exc)
        text = str(exc) or exc.__class__.__name__
        self._send_error(request.id, text[:MAX_ERROR_MESSAGE_CHARS])

    def _send(self, frame: bytes) -> None:
        if self._closing:
            return
        self._stats.frames_out += 1
        self._write(frame)

    def _write(self, data: bytes) -> None:
        self._stats.bytes_out += len(data)
        self._transport.write(data)  # type: ignore[union-attr]

    # --- deadlines and rejects ---

    def _watch_partial_frame(self, completed_a_frame: bool) -> None:
        """Arm the frame deadline when a frame starts; a trickle of bytes never extends it."""
        if self._conn.has_partial_data:
            if self._frame_timer is None or completed_a_frame:  # a new frame is in progress
                if self._frame_timer is not None:
                    self._frame_timer.cancel()
                self._frame_timer = self._loop.call_at(
                    self._loop.time() + self._limits.frame_timeout, self._deadline_passed, "frame-timeout"
                )
        elif self._frame_timer is not None:
            self._frame_timer.cancel()
            self._frame_timer = None

    def _idle_check(self) -> None:
        # Lazy timer: frames only move _last_frame; the timer re-arms itself instead of being reset per frame.
        deadline = self._last_frame + self._limits.idle_timeout
        if deadline > self._idle_deadline:
            self._idle_deadline = deadline
            self._idle_timer = self._loop.call_at(deadline, self._idle_check)
            return
        self._idle_timer = None
        self.close(abort=False, why=f"idle for {self._limits.idle_timeout:g} s")

    def _deadline_passed(self, reason: str) -> None:
        if reason == "handshake-timeout":
            self._handshake_timer = None
        else:
            self._frame_timer = None
        self._reject(reason)

    def _reject(self, reason: str) -> None:
        """The one answer to every failure: REJECT on the wire, the reason in the log and counters."""
        self._count_reject(reason)
        self._write(self._conn.reject())
        self._closing = True
        self._cancel_timers()
        self._transport.close()  # type: ignore[union-attr]

    def _refuse(self, reason: str) -> None:
        """Drop a peer at accept, before reading anything."""
        self._count_reject(reason)
        self._closing = True
        self._transport.abort()  # type: ignore[union-attr]

    def _count_reject(self, reason: str) -> None:
        logger.warning("messenger: rejected %s: %s", self.peer, reason)
        self._stats.rejects[reason] += 1

    def _cancel_timers(self) -> None:
        for timer in (self._handshake_timer, self._frame_timer, self._idle_timer):
            if timer is not None:
                timer.cancel()
        self._handshake_timer = self._frame_timer = self._idle_timer = None


class _Resumed:
    """Awaitable that finishes a coroutine the fast path already started and which then suspended.

    It hands what the coroutine yielded (a future, or None) to the driving Task unchanged, and
    passes values and exceptions (cancellation) back in: what `await coro` would have done.
    """

    __slots__ = ("_coro", "_first")

    def __init__(self, coro: Coroutine[Any, Any, dict], first: Any) -> None:
        self._coro = coro
        self._first = first

    def __await__(self) -> Generator[Any, Any, dict]:
        coro, value = self._coro, self._first
        while True:
            try:
                sent = yield value
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # noqa: BLE001 - forwarded into the coroutine, e.g. CancelledError
                try:
                    value = coro.throw(exc)
                except StopIteration as done:
                    return done.value
            else:
                try:
                    value = coro.send(sent)
                except StopIteration as done:
                    return done.value
