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


class Link(asyncio.Protocol):
    """One connection of a MessengerClient; `ready` resolves when the handshake completes."""

    def __init__(self, *, key: bytes, on_lost: Callable[[Link], None]) -> None:
        self._loop = asyncio.get_running_loop()
        self._conn = Connection(role=Role.CLIENT, key=key)
        self._on_lost = on_lost
        self._transport: asyncio.Transport | None = None
        self.ready: asyncio.Future[None] = self._loop.create_future()
        self.closed: asyncio.Future[None] = self._loop.create_future()
        self.pending: dict[int, asyncio.Future[dict]] = {}
        self.streams: dict[int, StreamSink] = {}
        self.error: MessengerUnavailable | None = None  # why the link ended
        self.key_mismatch = False
        self.last_received = self._loop.time()
        self.last_sent = self.last_received

    @property
    def usable(self) -> bool:
        return self.error is None and self._conn.state is State.OPEN

    # --- asyncio.Protocol ---

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
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
            reason = REJECTED if exc.reason == "rejected" else f"protocol error from the service ({exc.reason})"
            self.fail(MessengerUnavailable(reason), cause=exc)
            return
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

    def send_request(self, *, id: int, type: str, body: dict) -> asyncio.Future[dict]:
        """Send one REQUEST; the returned future gets the REPLY body, RemoteError or MessengerUnavailable."""
        if not self.usable:
            raise MessengerUnavailable(self.error.reason if self.error else CONNECTION_LOST)
        frame = self._conn.send_request(id=id, type=type, body=body)  # LocalProtocolError: caller's bug
        future: asyncio.Future[dict] = self._loop.create_future()
        self.pending[id] = future
        self._write(frame)
        return future

    def send_cancel(self, id: int) -> None:
        self.streams.pop(id, None)
        if self.usable:
            self._write(self._conn.send_cancel(id=id))

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
                future.set_exception(RemoteError(event.message))
            else:
                sink = self.streams.pop(event.id, None)
                if sink is not None:
                    sink.end(RemoteError(event.message))
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
