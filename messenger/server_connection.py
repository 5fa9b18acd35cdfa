"""One server-side messenger connection: a thin asyncio.Protocol around the sans-IO protocol.Connection.

`data_received` only feeds the parser, writes what it queued and dispatches the events (uvicorn's
h11_impl). Deadlines are loop.call_at timers, not tasks; handlers that finish without suspending
are answered inline, without a task. What one loop tick sends (a stream's ready items, the replies to
one read) is sealed together: one batch record for a v2 peer, one frame per envelope for a v1 peer.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from messenger.admission import source_of
from messenger.allowlist import ip_allowed
from messenger.endpoint import host_port
from messenger.errors import LocalProtocolError, RemoteProtocolError, RequestRefused
from messenger.messages import BAD_REQUEST, INTERNAL, TOO_MANY_STREAMS, UNKNOWN_TYPE, error_code_valid
from messenger.protocol import (
    Cancel,
    Connection,
    ErrorReply,
    HandshakeComplete,
    Keepalive,
    KeepaliveAck,
    Reply,
    Request,
    Role,
    State,
    StreamItem,
)
from messenger.server_log import failure_text, shorten

_OPEN = State.OPEN
_KEEPALIVE_ACK = KeepaliveAck()

if TYPE_CHECKING:
    from messenger.server import MessengerServer

logger = logging.getLogger(__name__)

# An ERROR reply carries at most this much of a handler's exception: enough to say what went wrong.
MAX_ERROR_MESSAGE_CHARS = 200
# Envelopes queued by a stream pump (or by one data_received) are sealed and written together at the end of the
# loop tick, or as soon as this many bytes are queued: one seal (v2) and one transport write per batch, not per
# envelope, while the batch stays well below the transport's high-water mark (64 KiB), so flow control still
# bites early.
WRITE_BATCH_BYTES = 16 * 1024


class RequestContext(NamedTuple):
    """What a handler may want to know about the request besides its body (immutable).

    A NamedTuple rather than a frozen dataclass: one is built per request, and `tuple.__new__` is
    cheaper than a frozen dataclass's __init__.
    """

    peer: str  # "10.0.0.5:41234", "[::1]:41234" or "unix"
    id: int
    type: str


_new_tuple = tuple.__new__


# A plain function returning a dict is answered inline (fastest); a coroutine function runs in a Task.
Handler = Callable[[dict, RequestContext], dict | Awaitable[dict]]
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
        self._conn = Connection(role=Role.SERVER, key=server.key, previous_keys=server.accepted_previous,
                                version=server.protocol_version)
        self._transport: asyncio.Transport | None = None
        self.peer = "unix"
        self.peer_ip: str | None = None  # None for Unix sockets: local peers, no allowlist
        self.lost: asyncio.Future[None] = self._loop.create_future()
        self._closing = False
        self._retiring = False  # its key was retired: dispatch nothing new, close once no request is in flight
        self._accepted_at = 0.0
        self._requests_in_flight = 0  # handlers running in a task
        self._bytes_in = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._streams: dict[int, asyncio.Task[None]] = {}
        self._handshake_timer: asyncio.TimerHandle | None = None
        self._frame_timer: asyncio.TimerHandle | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._retire_timer: asyncio.TimerHandle | None = None
        self._idle_deadline = 0.0
        self._last_frame = 0.0
        self._drained: asyncio.Future[None] | None = None  # set while the transport's buffer is full
        self._out: list[bytes] | None = None  # envelopes queued for one seal and write (WRITE_BATCH_BYTES), in order
        self._out_bytes = 0
        # Events held back while max_requests_in_flight requests run (reading is paused meanwhile), in order.
        self._backlog: deque[object] = deque()
        self._reading_paused = False

    # --- asyncio.Protocol ---

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not an isinstance(asyncio.Transport) check: uvloop's transports are not subclasses of it.
        self._transport = transport  # type: ignore[assignment]
        server, stats = self._server, self._stats
        stats.connections_total += 1
        peername = transport.get_extra_info("peername")
        if isinstance(peername, tuple):
            self.peer_ip = peername[0]
            self.peer = host_port(peername[0], peername[1])
        # Both checks happen before anything is read: a refused peer never reaches the parser.
        if self.peer_ip is not None and not ip_allowed(self.peer_ip, server.allowed_ips):
            self._refuse("ip-not-allowed")
            return
        if len(server.connections) >= self._limits.max_connections:
            self._refuse("connection-cap")
            return
        server.connections.add(self)
        stats.connections_open = len(server.connections)
        evicted = server.handshakes.admit(self, source_of(self.peer_ip))
        if evicted is not None:  # a keyless flood only ever pushes out other keyless connections
            victim, reason = evicted
            victim._refuse(reason)
        limits = self._limits
        self._accepted_at = self._loop.time()
        if limits.hello_timeout < limits.handshake_timeout:
            self._handshake_timer = self._loop.call_at(
                self._accepted_at + limits.hello_timeout, self._deadline_passed, "hello-timeout")
        else:
            self._arm_handshake_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._conn.state is State.HANDSHAKING and not self._closing:
            if self._bytes_in:  # e.g. a client that found the server holds another key
                self._count_reject("handshake-aborted")
            else:
                logger.debug("messenger: %s connected and left without a word", self.peer)
        self._closing = True
        self._out = None
        self._cancel_timers()
        for task in list(self._tasks):
            task.cancel()
        self._forget()
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        if not self.lost.done():
            self.lost.set_result(None)

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        size = len(data)
        self._stats.bytes_in += size
        self._bytes_in += size
        conn = self._conn
        was_open = conn.state is _OPEN
        try:
            events = conn.receive_data(data)
        except RemoteProtocolError as exc:
            self._reject(exc.reason)
            return
        if not was_open:
            handshake = conn.data_to_send()
            if handshake:  # the ServerHello: the ClientHello is in, so the whole handshake's deadline applies now
                self._write(handshake)
                if self._limits.hello_timeout < self._limits.handshake_timeout:
                    self._arm_handshake_deadline()
        if events:
            self._last_frame = self._loop.time()
            if len(events) == 1:
                self._handle(events[0])
            else:
                batching = self._out is None
                if batching:  # the replies to these requests leave in one write
                    self._out = []
                    self._out_bytes = 0
                for event in events:
                    self._handle(event)
                    if self._closing:
                        return
                if batching:
                    self._flush()
            if self._closing:
                return
            if self._retiring:
                self._close_if_idle()
                return
        if (self._frame_timer is not None or conn.has_partial_data) and conn.state is _OPEN:
            self._watch_partial_frame(bool(events))

    def pause_writing(self) -> None:
        # The peer does not read: stop reading its requests and let streams wait (bounded memory).
        self._drained = self._loop.create_future()
        self._sync_reading()

    def resume_writing(self) -> None:
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        self._drained = None
        self._sync_reading()

    def _sync_reading(self) -> None:
        """Read from the peer only while its replies drain and none of its requests waits for a free slot."""
        paused = self._drained is not None or bool(self._backlog)
        if paused is self._reading_paused or self._closing:
            return
        self._reading_paused = paused
        if paused:
            self._transport.pause_reading()  # type: ignore[union-attr]
        else:
            self._transport.resume_reading()  # type: ignore[union-attr]

    @property
    def output_buffered(self) -> int:
        """Bytes written for this peer that it has not taken yet (held by the service)."""
        return self._transport.get_write_buffer_size()  # type: ignore[union-attr]

    # --- control from the server ---

    @property
    def authenticated(self) -> bool:
        return self._conn.state is _OPEN

    @property
    def key(self) -> bytes:
        """The key the peer authenticated with."""
        return self._conn.key

    def retire(self, *, at_once: bool = False) -> None:
        """The key of this connection was retired: dispatch nothing new, end its streams, and close.

        at_once (the key was dropped with no grace): close now, cutting what is in flight. Otherwise close once no
        request is in flight, and at the latest after retire_timeout.
        """
        if self._closing:
            return
        if at_once:
            self._close_cutting_work("its key was retired (no grace)")
            return
        if self._retiring:
            return
        self._retiring = True
        for task in list(self._streams.values()):
            task.cancel()
        self._retire_timer = self._loop.call_at(self._loop.time() + self._limits.retire_timeout, self._retire_deadline)
        self._close_if_idle()

    def _close_if_idle(self) -> None:
        if not self._requests_in_flight:
            self.close(abort=False, why="its key was retired (the rotation's grace ended)")

    def _retire_deadline(self) -> None:
        self._retire_timer = None
        self._close_cutting_work(f"its key was retired and its requests took over {self._limits.retire_timeout:g} s")

    def _close_cutting_work(self, why: str) -> None:
        """Close now, and cancel the handlers still running (their replies could no longer go out anyway)."""
        self.close(abort=False, why=why)
        for task in list(self._tasks):
            task.cancel()

    def close(self, *, abort: bool, why: str) -> None:
        """Close on the server's own initiative (shutdown, key or allowlist change)."""
        if self._closing:
            return
        logger.info("messenger: closing connection from %s: %s", self.peer, why)
        if not abort:
            self._flush()
        self._closing = True
        self._out = None
        self._cancel_timers()
        if abort:
            self._transport.abort()  # type: ignore[union-attr]
        else:
            self._transport.close()  # type: ignore[union-attr]

    # --- events ---

    def _handle(self, event: object) -> None:
        kind = type(event)
        self._stats.frames_in += kind is not HandshakeComplete
        if self._backlog or (kind is Request and self._requests_in_flight >= self._limits.max_requests_in_flight):
            self._backlog.append(event)  # after what is already held: the peer's order is kept
            self._sync_reading()
            return
        self._dispatch(event, kind)

    def _dispatch(self, event: object, kind: type) -> None:
        if kind is Request:
            if not self._retiring:  # a retired key gets nothing new run
                self._on_request(event)  # type: ignore[arg-type]
        elif kind is Keepalive:
            self._emit(_KEEPALIVE_ACK)
        elif kind is Cancel:
            task = self._streams.pop(event.id, None)  # type: ignore[attr-defined]
            if task is not None:
                task.cancel()
        elif kind is HandshakeComplete:
            self._stats.handshakes_ok += 1
            self._server.handshakes.leave(self)
            if self._handshake_timer is not None:
                self._handshake_timer.cancel()
                self._handshake_timer = None
            self._idle_deadline = self._last_frame + self._limits.idle_timeout
            self._idle_timer = self._loop.call_at(self._idle_deadline, self._idle_check)
            if not self._server.accepts(self._conn.key):  # retired while this handshake was under way
                self.retire()

    def _on_request(self, request: Request) -> None:
        stream_handler = self._server.stream_handlers.get(request.type)
        if stream_handler is not None:
            self._start_stream(request, stream_handler)
            return
        handler = self._server.handlers.get(request.type)
        if handler is None:
            self._send_error(request.id, "not supported", UNKNOWN_TYPE)
            return
        context = _new_tuple(RequestContext, (self.peer, request.id, request.type))
        try:
            result = handler(request.body, context)
            if type(result) is dict:
                # A plain-function handler (ping) is answered inline, with no task at all. A coroutine
                # always runs in its own Task, so context variables and asyncio.current_task() hold.
                self._send_reply(request, result)
            else:
                self._requests_in_flight += 1
                self._spawn(self._reply_later(request, result))
        except Exception as exc:  # noqa: BLE001 - any handler failure becomes an ERROR reply
            self._handler_failed(request, exc)

    async def _reply_later(self, request: Request, awaitable: Awaitable[dict]) -> None:
        slots = self._server.handler_slots
        try:
            try:
                await slots.acquire(self)  # its turn among the connections (messenger.fair)
            except BaseException:
                getattr(awaitable, "close", lambda: None)()  # never started: no "never awaited" warning
                raise
            try:
                body = await awaitable
            finally:
                slots.release()
        except Exception as exc:  # noqa: BLE001
            self._handler_failed(request, exc)
        else:
            self._send_reply(request, body)
        finally:
            self._requests_in_flight -= 1
            if self._retiring:
                self._close_if_idle()
            elif self._backlog:
                self._drain_backlog()

    def _drain_backlog(self) -> None:
        """Handle the held-back events in order, as far as the in-flight cap allows; read again once all are."""
        backlog, cap = self._backlog, self._limits.max_requests_in_flight
        batching = self._out is None
        if batching:  # the replies of these requests leave in one write
            self._out = []
            self._out_bytes = 0
        while backlog and not self._closing:
            event = backlog[0]
            kind = type(event)
            if kind is Request and self._requests_in_flight >= cap:
                break
            backlog.popleft()
            self._dispatch(event, kind)
        if batching:
            self._flush()
        self._sync_reading()

    def _start_stream(self, request: Request, handler: StreamHandler) -> None:
        if request.id in self._streams:
            self._send_error(request.id, "subscription id already in use", BAD_REQUEST)
            return
        if len(self._streams) >= self._limits.max_streams:
            self._send_error(request.id, f"too many streams on this connection (at most {self._limits.max_streams})",
                             TOO_MANY_STREAMS)
            return
        context = RequestContext(peer=self.peer, id=request.id, type=request.type)
        try:
            items = handler(request.body, context)
        except Exception as exc:  # noqa: BLE001
            self._handler_failed(request, exc)
            return
        self._emit(_new_tuple(Reply, (request.id, {"subscribed": True})))
        self._streams[request.id] = self._spawn(self._pump(request, items))

    async def _pump(self, request: Request, items: AsyncIterator[dict]) -> None:
        """Send one STREAM envelope per item until CANCEL, disconnect, or the end (then CANCEL from us).

        Every item ready without waiting is queued; the queue is sealed and written in batches (see
        WRITE_BATCH_BYTES), at the latest when this task yields to the loop, so a slow item source never holds
        items back. Each item, the first (a snapshot) included, is only asked for once the peer takes what was written.
        """
        encode, id, stats = self._conn.encode, request.id, self._stats
        try:
            while True:
                while (drained := self._drained) is not None and not self._closing:
                    await drained
                if self._closing:
                    return
                try:
                    item = await anext(items)
                except StopAsyncIteration:
                    break
                if self._closing:
                    return
                envelope = encode(_new_tuple(StreamItem, (id, item)))
                stats.frames_out += 1
                out = self._out
                if out is None:
                    out = self._out = []
                    self._out_bytes = 0
                    self._loop.call_soon(self._flush)
                out.append(envelope)
                self._out_bytes += len(envelope)
                if self._out_bytes >= WRITE_BATCH_BYTES:  # a big item (a full status batch) leaves at once
                    self._flush()
            if not self._closing:
                self._emit(_new_tuple(Cancel, (request.id,)))
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
            if self._out is None:  # the round trip's path: sealed and written at once
                frame = self._conn.send_reply(id=request.id, body=body)
            else:
                self._emit(_new_tuple(Reply, (request.id, body)))
                return
        except LocalProtocolError as exc:  # not a dict, not JSON, too big: the handler's bug
            self._handler_failed(request, exc)
            return
        self._stats.frames_out += 1
        self._write(frame)

    def _send_error(self, id: int, message: str, code: str) -> None:
        self._emit(_new_tuple(ErrorReply, (id, message, code)))

    def _handler_failed(self, request: Request, exc: BaseException) -> None:
        text = str(exc) or exc.__class__.__name__
        # A refusal names its code; anything else (or a refusal with a malformed code: a bug) is INTERNAL.
        code = exc.code if isinstance(exc, RequestRefused) and error_code_valid(exc.code) else INTERNAL
        if code == INTERNAL:
            logger.error("messenger: %s handler failed for %s: %s", request.type, self.peer, failure_text(exc))
        else:  # the peer asked for something this service does not do: its answer, not our failure
            logger.info("messenger: %s refused for %s: %s", request.type, self.peer, shorten(text))
        self._send_error(request.id, text[:MAX_ERROR_MESSAGE_CHARS], code)

    def _emit(self, event: object) -> None:
        """Send one event: queued behind the batch being collected, else sealed and written at once."""
        if self._closing:
            return
        envelope = self._conn.encode(event)  # type: ignore[arg-type]
        self._stats.frames_out += 1
        out = self._out
        if out is None:
            self._write(self._conn.seal((envelope,)))
        else:  # after the queued ones: the peer opens envelopes in sealing order
            out.append(envelope)
            self._out_bytes += len(envelope)

    def _write(self, data: bytes) -> None:
        """Write bytes already sealed (or handshake bytes); nothing may be queued (see _flush)."""
        self._stats.bytes_out += len(data)
        self._transport.write(data)  # type: ignore[union-attr]
        if self._drained is not None:
            self._check_output()

    def _flush(self) -> None:
        """Seal the queued envelopes (if the connection is still up) and write them in one transport write."""
        out = self._out
        if out is None:
            return
        self._out = None
        if self._closing or not out or self._conn.state is not _OPEN:
            return  # closed by a protocol error (REJECT follows): what waited to be sealed is dropped
        self._write(self._conn.seal(out))

    def _check_output(self) -> None:
        """Writing is paused (the peer is slow): disconnect it once it lets more than max_output_bytes pile up."""
        if self._closing or self.output_buffered <= self._limits.max_output_bytes:
            return
        self._count_reject("output-overflow")
        self.close(abort=True, why=f"it does not read its replies (over {self._limits.max_output_bytes} bytes held)")

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

    def _arm_handshake_deadline(self) -> None:
        """The whole handshake's deadline, counted from the accept."""
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
        self._handshake_timer = self._loop.call_at(
            self._accepted_at + self._limits.handshake_timeout, self._deadline_passed, "handshake-timeout")

    def _deadline_passed(self, reason: str) -> None:
        if reason != "frame-timeout":
            self._handshake_timer = None
        else:
            self._frame_timer = None
        self._reject(reason)

    def _reject(self, reason: str) -> None:
        """The one answer to every failure: REJECT on the wire, the reason in the log and counters."""
        self._count_reject(reason)
        self._flush()
        self._write(self._conn.reject())
        self._closing = True
        self._cancel_timers()
        self._transport.close()  # type: ignore[union-attr]

    def _refuse(self, reason: str) -> None:
        """Drop a peer at accept (or a handshake evicted by a newer one): abort, and free its slots at once."""
        self._count_reject(reason)
        self._closing = True
        self._cancel_timers()
        self._forget()
        self._transport.abort()  # type: ignore[union-attr]

    def _forget(self) -> None:
        """Leave the server's connection set and handshake budget (idempotent)."""
        server = self._server
        server.handshakes.leave(self)
        if self in server.connections:
            server.connections.discard(self)
            self._stats.connections_open = len(server.connections)

    def _count_reject(self, reason: str) -> None:
        self._stats.rejects[reason] += 1
        self._server.reject_log.note(self.peer_ip or self.peer, reason, self._loop)

    def _cancel_timers(self) -> None:
        for timer in (self._handshake_timer, self._frame_timer, self._idle_timer, self._retire_timer):
            if timer is not None:
                timer.cancel()
        self._handshake_timer = self._frame_timer = self._idle_timer = self._retire_timer = None
