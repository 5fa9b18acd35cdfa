"""One client-side messenger connection: a thin asyncio.Protocol around the sans-IO protocol.Connection.

It matches replies to waiting requests by id and routes stream items to their subscription.
Guarantees: when the connection ends, every waiter fails with one MessengerUnavailable; nothing
is left waiting on a dead link.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol

from messenger.errors import KeyMismatch, MessengerUnavailable, RemoteError, RemoteProtocolError
from messenger.limits import PROTOCOL_VERSION
from messenger.local_socket import peer_refusal
from messenger.protocol import (
    Cancel,
    Connection,
    ErrorReply,
    HandshakeComplete,
    Keepalive,
    KeepaliveAck,
    Reply,
    Role,
    State,
    StreamItem,
)

logger = logging.getLogger(__name__)

CONNECTION_LOST = "connection lost"
KEY_MISMATCH = "key mismatch"
REJECTED = "rejected by the service"


class StreamSink(Protocol):
    """Where a link delivers one subscription's items (messenger.client.Subscription)."""

    def push(self, item: dict) -> None: ...
    def end(self, error: BaseException | None) -> None: ...


def _retrieve(future: asyncio.Future) -> None:
    if not future.cancelled():
        future.exception()


class Link(asyncio.Protocol):
    """One connection of a MessengerClient; `ready` resolves when the handshake completes."""

    def __init__(self, *, key: bytes, on_lost: Callable[[Link], None], version: int = PROTOCOL_VERSION) -> None:
        """`version`: the protocol version to offer; a service that does not speak it answers REJECT."""
        self._loop = asyncio.get_running_loop()
        self._conn = Connection(role=Role.CLIENT, key=key, version=version)
        self._on_lost = on_lost
        self._transport: asyncio.Transport | None = None
        self.ready: asyncio.Future[None] = self._loop.create_future()
        # A handshake abandoned at the connect timeout has nobody left to await `ready`; its failure is
        # kept in `error`, so an unread exception here is not worth asyncio's "never retrieved" report.
        self.ready.add_done_callback(_retrieve)
        self.closed: asyncio.Future[None] = self._loop.create_future()
        # Done once the client moved on (drain()): no new requests; the link closes when nothing is left on it.
        self.draining: asyncio.Future[None] = self._loop.create_future()
        self.pending: dict[int, asyncio.Future[dict]] = {}
        self.streams: dict[int, StreamSink] = {}
        self.error: MessengerUnavailable | None = None  # why the link ended
        self.key_mismatch = False
        self.hello_rejected = False  # the service answered our ClientHello with REJECT (e.g. a version it lacks)
        self.last_received = self._loop.time()
        self.last_sent = self.last_received
        # Request deadlines (id -> loop time), checked by one lazy timer instead of a timer per request.
        self._deadlines: dict[int, float] = {}
        self._deadline_timer: asyncio.TimerHandle | None = None
        self._deadline_timer_at = 0.0

    @property
    def key(self) -> bytes:
        """The key this link authenticates with."""
        return self._conn.key

    @property
    def usable(self) -> bool:
        return self.error is None and self._conn.state is State.OPEN

    # --- asyncio.Protocol ---

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not an isinstance(asyncio.Transport) check: uvloop's transports are not subclasses of it.
        self._transport = transport  # type: ignore[assignment]
        refusal = peer_refusal(transport.get_extra_info("socket"))
        if refusal is not None:  # a Unix socket another user listens on: not even the handshake goes out
            self.fail(MessengerUnavailable(refusal))
            return
        transport.write(self._conn.initiate())

    def data_received(self, data: bytes) -> None:
        if self.error is not None:
            return
        try:
            events = self._conn.receive_data(data)
        except KeyMismatch as exc:
            self.key_mismatch = True
            self.fail(MessengerUnavailable(KEY_MISMATCH), cause=exc)
            return
        except RemoteProtocolError as exc:
            self.hello_rejected = exc.reason == "rejected" and not self.ready.done()
            reason = REJECTED if exc.reason == "rejected" else f"protocol error from the service ({exc.reason})"
            self.fail(MessengerUnavailable(reason), cause=exc)
            return
        if not self.ready.done():
            handshake = self._conn.data_to_send()
            if handshake:
                self._transport.write(handshake)  # type: ignore[union-attr]
        self.last_received = self._loop.time()
        for event in events:
            self._handle(event)

    def connection_lost(self, exc: Exception | None) -> None:
        # EOF before the handshake finished: the service refused us (allowlist, cap, deadline).
        self.fail(MessengerUnavailable(CONNECTION_LOST if self.ready.done() else REJECTED))

    # --- sending ---

    def send_request(self, *, id: int, type: str, body: dict, timeout: float | None = None) -> asyncio.Future[dict]:
        """Send one REQUEST; the returned future gets the REPLY body, RemoteError or MessengerUnavailable.

        With a `timeout`, the future fails with TimeoutError if no reply came within it; the caller
        calls `forget(id)` once it is done with the future.
        """
        if not self.usable:
            raise MessengerUnavailable(self.error.reason if self.error else CONNECTION_LOST)
        frame = self._conn.send_request(id=id, type=type, body=body)  # LocalProtocolError: caller's bug
        loop = self._loop
        future: asyncio.Future[dict] = loop.create_future()
        self.pending[id] = future
        now = self.last_sent = loop.time()
        self._transport.write(frame)  # type: ignore[union-attr]
        if timeout is not None:
            deadline = now + timeout
            self._deadlines[id] = deadline
            if self._deadline_timer is None or deadline < self._deadline_timer_at:
                self._arm_deadline_timer(deadline)
        return future

    def forget(self, id: int) -> None:
        """Drop what is kept for request `id` (its future and deadline)."""
        self.pending.pop(id, None)
        self._deadlines.pop(id, None)
        if self.draining.done():
            self._close_if_drained()

    def drain(self) -> None:
        """The client moved on (a new key): close once no request or stream is left on this link."""
        if not self.draining.done():
            self.draining.set_result(None)
        self._close_if_drained()

    def _close_if_drained(self) -> None:
        if not self.pending and not self.streams and self.error is None:
            self.fail(MessengerUnavailable(CONNECTION_LOST))

    def _arm_deadline_timer(self, when: float) -> None:
        if self._deadline_timer is not None:
            self._deadline_timer.cancel()
        self._deadline_timer_at = when
        self._deadline_timer = self._loop.call_at(when, self._deadlines_passed)

    def _deadlines_passed(self) -> None:
        # Lazy timer: requests only record their deadline; this fails the overdue ones and re-arms
        # itself for the earliest one left (most requests are answered long before it fires).
        self._deadline_timer = None
        now = self._loop.time()
        earliest = None
        for id, deadline in list(self._deadlines.items()):
            if deadline <= now:
                del self._deadlines[id]
                future = self.pending.get(id)
                if future is not None and not future.done():
                    future.set_exception(TimeoutError())
            elif earliest is None or deadline < earliest:
                earliest = deadline
        if earliest is not None:
            self._arm_deadline_timer(earliest)

    def send_cancel(self, id: int) -> None:
        self.streams.pop(id, None)
        if self.usable:
            self._write(self._conn.send_cancel(id=id))
        if self.draining.done():
            self._close_if_drained()

    def send_keepalive(self) -> None:
        if self.usable:
            self._write(self._conn.send_keepalive())

    def _write(self, frame: bytes) -> None:
        self.last_sent = self._loop.time()
        self._transport.write(frame)  # type: ignore[union-attr]

    # --- receiving ---

    def _handle(self, event: Any) -> None:
        kind = type(event)
        if kind is Reply:
            future = self.pending.pop(event.id, None)
            if future is not None and not future.done():
                future.set_result(event.body)
        elif kind is StreamItem:
            sink = self.streams.get(event.id)
            if sink is not None:  # items still in flight after our CANCEL are dropped
                sink.push(event.body)
        elif kind is ErrorReply:
            future = self.pending.pop(event.id, None)
            if future is not None and not future.done():
                future.set_exception(RemoteError(event.message, code=event.code))
            else:
                sink = self.streams.pop(event.id, None)
                if sink is not None:
                    sink.end(RemoteError(event.message, code=event.code))
        elif kind is Cancel:  # the service ended a stream
            sink = self.streams.pop(event.id, None)
            if sink is not None:
                sink.end(None)
        elif kind is Keepalive:
            self._write(self._conn.send_keepalive_ack())
        elif kind is HandshakeComplete:
            if not self.ready.done():
                self.ready.set_result(None)
        elif kind is not KeepaliveAck:
            logger.debug("messenger: ignoring %r", event)

    # --- ending ---

    def fail(self, error: MessengerUnavailable, *, cause: BaseException | None = None) -> None:
        """End the link: close the transport and fail every waiter with `error` (first reason wins)."""
        if self.error is not None:
            return
        error.__cause__ = cause
        self.error = error
        self._deadlines.clear()
        if self._deadline_timer is not None:
            self._deadline_timer.cancel()
            self._deadline_timer = None
        if self._transport is not None:
            self._transport.abort()
        if not self.ready.done():
            self.ready.set_exception(_copy(error))
        pending, self.pending = self.pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(_copy(error))
        streams, self.streams = self.streams, {}
        for sink in streams.values():
            sink.end(_copy(error))
        if not self.closed.done():
            self.closed.set_result(None)
        self._on_lost(self)


def _copy(error: MessengerUnavailable) -> MessengerUnavailable:
    """A fresh exception per waiter, so tracebacks do not pile up on one shared instance."""
    copy = type(error)(error.reason)
    copy.__cause__ = error.__cause__
    return copy
