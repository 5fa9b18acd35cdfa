"""Shared helpers of the messenger's socket-level tests."""
from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Coroutine
from typing import Any

KEY = bytes(range(32))
# Upper bound on any single test's event loop: a hang fails fast instead of waiting for pytest-timeout.
TEST_DEADLINE = 15.0


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run one test's coroutine on a fresh loop, bounded by TEST_DEADLINE."""
    return asyncio.run(asyncio.wait_for(coro, TEST_DEADLINE))


async def eventually(condition: Callable[[], bool], timeout: float = 3.0) -> None:
    """Wait until `condition()` holds; fail after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


class InFlight:
    """A request handler that echoes {"n"} after a moment, counting how many of its calls ran at once."""

    def __init__(self) -> None:
        self.running = self.most = 0

    async def work(self, body: dict, context: object) -> dict:
        self.running += 1
        self.most = max(self.most, self.running)
        await asyncio.sleep(0.001)
        self.running -= 1
        return {"n": body["n"]}


class FakeClock:
    """A client's backoff `sleep` that never waits: each delay is recorded and advances `now` at once."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)  # still a suspension point, as a real sleep is


class HighestJitter(random.Random):
    """Full jitter that always draws its upper bound: each backoff delay is the ceiling itself."""

    def uniform(self, a: float, b: float) -> float:
        return b
