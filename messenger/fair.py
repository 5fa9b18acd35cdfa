"""Slots for running request handlers, shared by every connection of a server and handed out round-robin.

The service's handlers do their database work on one shared thread: a connection that keeps many requests
waiting must not make another connection's request wait behind all of them. When no slot is free, each
connection with waiting handlers gets the next free slot in turn, whatever the number of requests it queued.
"""
from __future__ import annotations

import asyncio
from collections import deque


class FairSlots:
    """At most `slots` holders at once; waiters are served one connection at a time, in rotation."""

    def __init__(self, slots: int) -> None:
        self._free = slots
        # Waiters by owner (a connection); dict order is the rotation, the owner served last moves to its end.
        self._waiting: dict[object, deque[asyncio.Future[None]]] = {}

    async def acquire(self, owner: object) -> None:
        """Take a slot for `owner`: at once when one is free and nobody waits, else at `owner`'s turn."""
        if self._free > 0 and not self._waiting:
            self._free -= 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(owner, deque()).append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # the slot was handed over just as the caller gave up: pass it on
            else:
                self._forget(owner, waiter)
            raise

    def release(self) -> None:
        """Give a slot back: to the first waiter of the next connection in the rotation, else to the pool."""
        while self._waiting:
            owner = next(iter(self._waiting))
            queue = self._waiting.pop(owner)
            waiter = queue.popleft()
            if queue:
                self._waiting[owner] = queue  # to the end of the rotation
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1

    def _forget(self, owner: object, waiter: asyncio.Future[None]) -> None:
        queue = self._waiting.get(owner)
        if queue is not None and waiter in queue:
            queue.remove(waiter)
            if not queue:
                del self._waiting[owner]
