"""The service node's live status: a ring of recent log events, each runner's latest state, and streams to subscribers.

Guarantees: publishing never awaits or blocks and costs O(subscribers); a subscriber that falls behind holds at most
SUBSCRIBER_MAX_PENDING events (runner and heartbeat updates coalesce, the oldest log events are dropped and counted)
and its next batch says how many it lost. Pure asyncio: no Django, no messenger.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from json.encoder import encode_basestring_ascii as _quote
from types import TracebackType

logger = logging.getLogger(__name__)

# The web shows the last 200 lines on open; 1,000 lets a viewer scroll back through a burst.
LOG_RING_SIZE = 1000
# About 100 ms of the 20,000 records/s target: a subscriber stalled longer than that is behind, and
# old log lines are worth less than a service whose memory does not depend on its slowest viewer.
SUBSCRIBER_MAX_PENDING = 2000
# A batch big enough that a full one costs one frame per 500 records, small enough to render at once.
BATCH_MAX_EVENTS = 500
# Half the messenger's 1 MiB frame cap (MAX_FRAME_BYTES): a batch always fits one frame, envelope and tag included.
BATCH_MAX_BYTES = 512 * 1024
# `{"events":[],"dropped":N}` around the events, with room for any N.
BATCH_OVERHEAD_BYTES = 64
# Log bytes in a snapshot: half the messenger's frame cap, leaving the rest for runner states and the heartbeat.
SNAPSHOT_LOG_BYTES = 512 * 1024
# Partial batches are at least this far apart, so a trickle of events costs at most 10 frames a second.
BATCH_INTERVAL = 0.1
# Events from other threads wait here for the loop; a stalled loop must not let logging threads grow memory.
HANDOFF_MAX = 10_000
# A seq never needs more digits than this (2**64 has 20).
SEQ_MAX_DIGITS = 20

LOG = "log"
RUNNER = "runner"
HEARTBEAT = "heartbeat"
_RESERVED_TYPES = frozenset({LOG, RUNNER, HEARTBEAT})
_HUB_KEYS = 3  # type, seq, at

# Same settings as the messenger's envelope encoder, so sizes measured here are the sizes on the wire.
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
_HEARTBEAT_KEY = (HEARTBEAT,)
# `{"type":` `,"seq":` `,"at":` `}` around an event's type, seq and time.
_EVENT_FRAME_BYTES = len('{"type":,"seq":,"at":}')

# One published event as every subscriber holds it: (seq, event, encoded size in bytes). Shared, never copied.
_Item = tuple[int, dict, int]


def _json_size(value: object) -> int:
    """Bytes `value` takes in the messenger's JSON; what that encoder refuses raises the same way here.

    Strings and numbers (nearly all of a log event) are sized without building the whole document.
    """
    cls = value.__class__
    if cls is str:
        return len(_quote(value))
    if cls is int:
        return len(int.__repr__(value))
    if cls is float and math.isfinite(value):
        return len(float.__repr__(value))
    return len(_ENCODER.encode(value))


def _prepare(type: str, data: dict, at: float) -> tuple[dict, int]:
    """Build the event (seq still 0) and its encoded size without the seq digits; refuse what cannot be sent."""
    event = {"type": type, "seq": 0, "at": at}
    event.update(data)
    if len(event) != _HUB_KEYS + len(data):
        raise ValueError("event data must not contain the keys 'type', 'seq' or 'at'")
    size = _EVENT_FRAME_BYTES + len(_quote(type)) + _json_size(at)
    for key, value in data.items():
        if key.__class__ is not str:
            raise TypeError(f"event keys must be strings, not {key.__class__.__name__}")
        size += len(_quote(key)) + 2 + _json_size(value)  # a comma and a colon
    if size + SEQ_MAX_DIGITS + BATCH_OVERHEAD_BYTES > BATCH_MAX_BYTES:
        raise ValueError(f"a {type} event of {size} bytes cannot fit one batch ({BATCH_MAX_BYTES} bytes)")
    return event, size


def _resolve(waiter: asyncio.Future) -> None:
    if not waiter.done():
        waiter.set_result(None)


class _Slot:
    """A pending non-log event; a newer event with the same key replaces it in place (coalescing)."""

    __slots__ = ("pos", "item", "key")

    def __init__(self, *, item: _Item, key: Hashable | None) -> None:
        self.pos = item[0]  # the seq it was first queued with: its place in the stream
        self.item = item
        self.key = key


class Subscription:
    """One subscriber's stream: an async iterator of batches `{"events": [...], "dropped": n}`.

    `dropped` is present only when events were lost since the previous batch. Pacing: never a batch without events;
    a partial batch no sooner than BATCH_INTERVAL after the previous one (what arrives meanwhile joins it); a full
    one (BATCH_MAX_EVENTS or BATCH_MAX_BYTES) at once, so a reader that keeps up is limited by its own speed.
    Use `async with` (or call close()) so the hub forgets the subscriber. One task iterates it at a time.
    """

    def __init__(self, *, hub: StatusHub) -> None:
        self._hub = hub
        self._logs: deque[_Item] = deque()  # pending log events, oldest first
        self._others: deque[_Slot] = deque()  # pending runner/heartbeat/other events, oldest first
        self._slots: dict[Hashable, _Slot] = {}  # coalescing key -> its pending slot
        self._bytes = 0  # encoded size of everything pending
        self._dropped = 0  # lost since the previous batch
        self._waiter: asyncio.Future | None = None
        self._wake_at = 1  # pending count that wakes the reader
        self._last_batch = -math.inf
        self._closed = False

    @property
    def pending(self) -> int:
        """Events waiting to be delivered (never more than SUBSCRIBER_MAX_PENDING)."""
        return len(self._logs) + len(self._others)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Stop the stream and drop what is pending; the iterator then ends. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._hub._forget(self)
        self._logs.clear()
        self._others.clear()
        self._slots.clear()
        self._bytes = 0
        if self._waiter is not None:
            _resolve(self._waiter)

    async def aclose(self) -> None:
        """close(), under the name async-iterator consumers (the messenger's stream loop) call when they stop."""
        self.close()

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> dict:
        loop = self._hub.loop
        while True:
            if self._closed:
                raise StopAsyncIteration
            if not self.pending:
                await self._wait(wake_at=1, delay=None)
                continue
            if not self._full():
                delay = self._last_batch + BATCH_INTERVAL - loop.time()
                if delay > 0:
                    await self._wait(wake_at=BATCH_MAX_EVENTS, delay=delay)
                    continue
            return self._take_batch()

    # --- called by the hub, on the loop thread ---

    def _add_log(self, item: _Item) -> None:
        if len(self._logs) + len(self._others) >= SUBSCRIBER_MAX_PENDING:
            self._drop_oldest()
        self._logs.append(item)
        self._bytes += item[2]
        self._wake()

    def _add_other(self, item: _Item, key: Hashable | None) -> None:
        slot = self._slots.get(key) if key is not None else None
        if slot is not None:
            self._bytes += item[2] - slot.item[2]
            slot.item = item
        else:
            if len(self._logs) + len(self._others) >= SUBSCRIBER_MAX_PENDING:
                self._drop_oldest()
            slot = _Slot(item=item, key=key)
            self._others.append(slot)
            if key is not None:
                self._slots[key] = slot
            self._bytes += item[2]
        self._wake()

    # --- internals ---

    def _drop_oldest(self) -> None:
        if self._logs:
            self._bytes -= self._logs.popleft()[2]
        else:  # only non-log events are pending: an unusual flood of them, so the oldest goes
            slot = self._others.popleft()
            self._bytes -= slot.item[2]
            if slot.key is not None:
                del self._slots[slot.key]
        self._dropped += 1
        self._hub._dropped_total += 1

    def _full(self) -> bool:
        return self.pending >= BATCH_MAX_EVENTS or self._bytes + BATCH_OVERHEAD_BYTES >= BATCH_MAX_BYTES

    def _wake(self) -> None:
        if self._waiter is not None and (self.pending >= self._wake_at or self._full()):
            _resolve(self._waiter)

    async def _wait(self, *, wake_at: int, delay: float | None) -> None:
        if self._waiter is not None:
            raise RuntimeError("a subscription is iterated by one task at a time")
        loop = self._hub.loop
        self._waiter = loop.create_future()
        self._wake_at = wake_at
        timer = loop.call_later(delay, _resolve, self._waiter) if delay is not None else None
        try:
            await self._waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    def _take_batch(self) -> dict:
        logs, others = self._logs, self._others
        events: list[dict] = []
        size = BATCH_OVERHEAD_BYTES
        while len(events) < BATCH_MAX_EVENTS:
            slot = None
            if others and (not logs or others[0].pos < logs[0][0]):
                slot = others[0]
                item = slot.item
            elif logs:
                item = logs[0]
            else:
                break
            if events and size + item[2] + 1 > BATCH_MAX_BYTES:
                break
            if slot is None:
                logs.popleft()
            else:
                others.popleft()
                if slot.key is not None:
                    del self._slots[slot.key]
            events.append(item[1])
            size += item[2] + 1  # and a comma
            self._bytes -= item[2]
        batch: dict = {"events": events}
        if self._dropped:
            batch["dropped"] = self._dropped
            self._dropped = 0
        self._last_batch = self._hub.loop.time()
        return batch


class StatusHub:
    """Collects log records, runner states and heartbeats, keeps the recent ones, streams them to subscribers.

    Create it on the event loop it serves. publish_* may be called from any thread; everything else only from
    the loop. Events are shared between the ring and subscribers: nobody may mutate one after publishing.
    """

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        self._clock = clock
        self._seq = 0
        self._logs: deque[_Item] = deque(maxlen=LOG_RING_SIZE)
        self._runners: dict[str, dict] = {}
        self._heartbeat: dict | None = None
        self._subscribers: set[Subscription] = set()
        self._dropped_total = 0
        self._handoff: deque[tuple[dict, int, Hashable | None]] = deque(maxlen=HANDOFF_MAX)
        self._handoff_scheduled = False
        self._handoff_dropped = 0

    # --- publishing (any thread) ---

    def publish_log(self, record: dict, *, at: float | None = None) -> None:
        """Publish a log record (level, logger, message, ...); `at` defaults to now."""
        event, size = _prepare(LOG, record, self._clock() if at is None else at)
        self._publish(event, size, None)

    def publish_runner(self, state: dict) -> None:
        """Publish a runner's state (must include its "name"); it replaces that runner's undelivered update."""
        event, size = _prepare(RUNNER, state, self._clock())
        self._publish(event, size, (RUNNER, state["name"]))

    def publish_heartbeat(self, info: dict) -> None:
        """Publish the service heartbeat; it replaces an undelivered earlier one."""
        event, size = _prepare(HEARTBEAT, info, self._clock())
        self._publish(event, size, _HEARTBEAT_KEY)

    def publish_event(self, kind: str, data: dict) -> None:
        """Publish any other event (e.g. kind "service" going down or up); these never coalesce."""
        if kind in _RESERVED_TYPES:
            raise ValueError(f"use publish_{kind}() for {kind!r} events")
        event, size = _prepare(kind, data, self._clock())
        self._publish(event, size, None)

    # --- reading (loop thread) ---

    def snapshot(self, *, max_logs: int = LOG_RING_SIZE) -> dict:
        """The newest log events (at most `max_logs` and SNAPSHOT_LOG_BYTES, oldest first), each runner's latest
        state, the last heartbeat and the last seq.

        To join without a gap: subscribe first, then take the snapshot, and skip streamed events whose seq is
        not above the snapshot's.
        """
        logs: list[dict] = []
        budget = SNAPSHOT_LOG_BYTES
        for _seq, event, size in reversed(self._logs):
            if len(logs) >= max_logs or size + 1 > budget:
                break
            budget -= size + 1
            logs.append(event)
        logs.reverse()
        return {"logs": logs, "runners": dict(self._runners), "heartbeat": self._heartbeat, "seq": self._seq}

    def subscribe(self) -> Subscription:
        """Open a stream of batches of every event published from now on."""
        subscription = Subscription(hub=self)
        self._subscribers.add(subscription)
        logger.debug("status subscriber added (%d now)", len(self._subscribers))
        return subscription

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    @property
    def dropped_total(self) -> int:
        """Events lost by slow subscribers, summed over all of them since the hub started."""
        return self._dropped_total

    @property
    def handoff_dropped(self) -> int:
        """Events from other threads lost because the loop did not take them in time (approximate)."""
        return self._handoff_dropped

    @property
    def seq(self) -> int:
        """The seq of the last published event."""
        return self._seq

    # --- internals ---

    def _publish(self, event: dict, size: int, key: Hashable | None) -> None:
        if threading.get_ident() == self._thread:
            self._commit(event, size, key)
            return
        handoff = self._handoff
        if len(handoff) == HANDOFF_MAX:
            self._handoff_dropped += 1  # the deque drops its oldest on append
        handoff.append((event, size, key))
        if not self._handoff_scheduled:
            self._handoff_scheduled = True
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody will stream these any more
                self.loop.call_soon_threadsafe(self._drain_handoff)

    def _drain_handoff(self) -> None:
        # Clear the flag before draining: an append racing with the last popleft then schedules a new drain.
        self._handoff_scheduled = False
        handoff = self._handoff
        while handoff:
            self._commit(*handoff.popleft())

    def _commit(self, event: dict, size: int, key: Hashable | None) -> None:
        self._seq += 1
        seq = self._seq
        event["seq"] = seq
        item = (seq, event, size + len(str(seq)))
        if key is None and event["type"] == LOG:
            self._logs.append(item)
            for subscription in self._subscribers:
                subscription._add_log(item)
            return
        if key is _HEARTBEAT_KEY:
            self._heartbeat = event
        elif key is not None:
            self._runners[key[1]] = event
        for subscription in self._subscribers:
            subscription._add_other(item, key)

    def _forget(self, subscription: Subscription) -> None:
        if subscription in self._subscribers:
            self._subscribers.discard(subscription)
            logger.debug("status subscriber removed (%d left)", len(self._subscribers))
