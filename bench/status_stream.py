"""Benchmark: log records per second the status hub streams to one subscriber, against a plain asyncio.Queue.

Run `.venv/bin/python bench/status_stream.py [--seconds 5] [--tracemalloc]`. Records go through a real Logger and
HubLogHandler; the hub must keep up (target: 20,000 records/s) and keep memory flat even when the subscriber stalls.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import resource
import sys
import time
import tracemalloc
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from indexer.logstream import HubLogHandler  # noqa: E402
from indexer.status import StatusHub  # noqa: E402

logger = logging.getLogger(__name__)

# The target for one subscriber.
TARGET_RECORDS_PER_SECOND = 20_000
# Records logged between yields to the loop: a busy service logs in bursts, and the consumer runs in between.
BURST = 100
# After the producer stops, how long the consumer may take to catch up before the run counts as done.
DRAIN_TIMEOUT = 10.0
# How often the drain wait looks at the counters.
DRAIN_POLL = 0.01

# An async context manager that yields an async iterator of batches {"events": [...], "dropped": n}.
StreamOpener = Callable[[Any], AbstractAsyncContextManager]


@dataclass(frozen=True, kw_only=True)
class Result:
    published: int
    delivered: int
    dropped: int
    held: int  # events the stalled subscriber's side still held when the producer stopped
    seconds: float  # from the first record until the consumer had them all
    rss_growth: int  # bytes
    traced_growth: int | None  # bytes, when tracemalloc runs

    @property
    def rate(self) -> float:
        return self.delivered / self.seconds if self.seconds else 0.0


class QueueReference:
    """The reference: the same events into one unbounded asyncio.Queue per subscriber, delivered one at a time."""

    def __init__(self) -> None:
        self._queues: list[asyncio.Queue] = []
        self._seq = 0

    def publish_log(self, record: dict, *, at: float | None = None) -> None:
        self._seq += 1
        event = {"type": "log", "seq": self._seq, "at": time.time() if at is None else at, **record}
        for queue in self._queues:
            queue.put_nowait(event)

    def subscribe(self) -> _QueueSubscription:
        queue: asyncio.Queue = asyncio.Queue()
        self._queues.append(queue)
        return _QueueSubscription(queue)


class _QueueSubscription:
    def __init__(self, queue: asyncio.Queue) -> None:
        self._queue = queue

    async def __aenter__(self) -> _QueueSubscription:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    def __aiter__(self) -> _QueueSubscription:
        return self

    async def __anext__(self) -> dict:
        return {"events": [await self._queue.get()]}


def rss_bytes() -> int:
    """Current resident set size (Linux), else the peak."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measure(
    hub_factory: Callable[[], Any], seconds: float, *, open_stream: StreamOpener | None = None, stall: bool = False
) -> Result:
    """Log records for `seconds` through a Logger + HubLogHandler into `hub_factory()` (called on the loop) while
    one subscriber consumes batches; with `stall` it reads nothing until the producer stops.
    `open_stream(hub)` defaults to `hub.subscribe()`; pass another to measure through the messenger.
    """
    return asyncio.run(_measure(hub_factory, seconds, open_stream or (lambda hub: hub.subscribe()), stall))


async def _measure(hub_factory: Callable[[], Any], seconds: float, open_stream: StreamOpener, stall: bool) -> Result:
    loop = asyncio.get_running_loop()
    hub = hub_factory()
    handler = HubLogHandler(hub)
    bench_logger = logging.getLogger("bench.status_stream.producer")
    bench_logger.propagate = False
    bench_logger.setLevel(logging.INFO)
    bench_logger.addHandler(handler)
    delivered = dropped = published = 0

    async def consume(stream: Any) -> None:
        nonlocal delivered, dropped
        async for batch in stream:
            delivered += len(batch["events"])
            dropped += batch.get("dropped", 0)

    try:
        async with open_stream(hub) as stream:
            consumer = None if stall else asyncio.create_task(consume(stream))
            rss_before = rss_bytes()
            traced_before = tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else None
            started = loop.time()
            deadline = started + seconds
            while loop.time() < deadline:
                for _ in range(BURST):
                    bench_logger.info("GET /pypi/%s/simple/%s/ 200 %d bytes", "internal", "requests", published)
                    published += 1
                await asyncio.sleep(0)
            rss_growth = rss_bytes() - rss_before
            traced_growth = None if traced_before is None else tracemalloc.get_traced_memory()[0] - traced_before
            if consumer is None:
                consumer = asyncio.create_task(consume(stream))
            drain_deadline = loop.time() + DRAIN_TIMEOUT
            while delivered + dropped < published and loop.time() < drain_deadline:
                await asyncio.sleep(DRAIN_POLL)
            elapsed = loop.time() - started
            consumer.cancel()
    finally:
        bench_logger.removeHandler(handler)
    return Result(
        published=published,
        delivered=delivered,
        dropped=dropped,
        held=published - dropped if stall else 0,
        seconds=elapsed,
        rss_growth=rss_growth,
        traced_growth=traced_growth,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="how long each run logs (default 5)")
    parser.add_argument("--tracemalloc", action="store_true", help="also trace Python allocations (much slower)")
    args = parser.parse_args()
    if args.tracemalloc:
        tracemalloc.start()

    runs = [  # the stalled queue last: the memory it takes is not given back to the OS
        ("StatusHub", "reading", StatusHub, False),
        ("asyncio.Queue", "reading", QueueReference, False),
        ("StatusHub", "stalled", StatusHub, True),
        ("asyncio.Queue", "stalled", QueueReference, True),
    ]
    header = f"{'stream':<14}{'consumer':<10}{'published':>11}{'delivered':>11}{'dropped':>10}{'held':>9}" \
             f"{'records/s':>11}{'RSS +MiB':>10}"
    if args.tracemalloc:
        header += f"{'traced +MiB':>13}"
    print(header)
    results = {}
    for name, mode, factory, stall in runs:
        result = measure(factory, args.seconds, stall=stall)
        results[name, mode] = result
        rate = "-" if stall else f"{result.rate:,.0f}"  # a stalled consumer's rate is the drain afterwards
        line = f"{name:<14}{mode:<10}{result.published:>11,}{result.delivered:>11,}{result.dropped:>10,}" \
               f"{result.held:>9,}{rate:>11}{result.rss_growth / 2**20:>10.1f}"
        if result.traced_growth is not None:
            line += f"{result.traced_growth / 2**20:>13.1f}"
        print(line, flush=True)

    ours = results["StatusHub", "reading"].rate
    reference = results["asyncio.Queue", "reading"].rate
    print(f"\nours/reference (reading): {ours / reference:.2f}")
    if args.tracemalloc:
        print("rates under tracemalloc are several times lower: judge the target on a run without --tracemalloc")
        return
    verdict = "met" if ours >= TARGET_RECORDS_PER_SECOND else "NOT met"
    print(f"target >= {TARGET_RECORDS_PER_SECOND:,} records/s to one subscriber: {verdict} ({ours:,.0f}/s)")


if __name__ == "__main__":
    main()
