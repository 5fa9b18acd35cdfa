"""StatusHub: snapshot and ring, batching, coalescing, bounded slow subscribers, thread hand-off, unsubscribe."""
from __future__ import annotations

import asyncio
import json
import threading
import time
import tracemalloc

import pytest
from hypothesis import given
from hypothesis import strategies as st

from indexer import status
from indexer.status import (
    BATCH_INTERVAL,
    BATCH_MAX_BYTES,
    BATCH_MAX_EVENTS,
    HANDOFF_MAX,
    LOG_RING_SIZE,
    SNAPSHOT_LOG_BYTES,
    SUBSCRIBER_MAX_PENDING,
    StatusHub,
    Subscription,
)
from messenger.limits import MAX_FRAME_BYTES

# The messenger encodes bodies exactly like this (messenger/messages.py).
WIRE = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def log(hub: StatusHub, n: int, *, message: str = "record") -> None:
    hub.publish_log({"level": "INFO", "logger": "test", "message": f"{message} {n}"})


async def next_batch(subscription: Subscription, timeout: float = 2.0) -> dict:
    return await asyncio.wait_for(anext(subscription), timeout)


def seqs(events: list[dict]) -> list[int]:
    return [event["seq"] for event in events]


# --- events and snapshot ---


def test_events_carry_type_seq_and_time() -> None:
    async def main() -> dict:
        hub = StatusHub(clock=lambda: 1234.5)
        hub.publish_log({"level": "INFO", "logger": "a", "message": "m"})
        hub.publish_log({"level": "INFO", "logger": "a", "message": "n"}, at=99.0)
        hub.publish_runner({"name": "Feed Indexing", "state": "running", "percent": 5})
        hub.publish_heartbeat({"node": "n1"})
        hub.publish_event("service", {"state": "down"})
        return hub.snapshot()

    snap = asyncio.run(main())
    assert snap["logs"] == [
        {"type": "log", "seq": 1, "at": 1234.5, "level": "INFO", "logger": "a", "message": "m"},
        {"type": "log", "seq": 2, "at": 99.0, "level": "INFO", "logger": "a", "message": "n"},
    ]
    assert snap["runners"] == {
        "Feed Indexing": {"type": "runner", "seq": 3, "at": 1234.5, "name": "Feed Indexing", "state": "running",
                          "percent": 5},
    }
    assert snap["heartbeat"] == {"type": "heartbeat", "seq": 4, "at": 1234.5, "node": "n1"}
    assert snap["seq"] == 5


def test_snapshot_keeps_the_last_ring_of_logs_and_latest_runner_state() -> None:
    async def main() -> tuple[dict, dict]:
        hub = StatusHub()
        for n in range(LOG_RING_SIZE + 500):
            log(hub, n)
            hub.publish_runner({"name": "Feed Retention", "percent": n})
        return hub.snapshot(), hub.snapshot(max_logs=200)

    full, recent = asyncio.run(main())
    total = 2 * (LOG_RING_SIZE + 500)
    assert len(full["logs"]) == LOG_RING_SIZE
    assert full["logs"][-1]["message"] == f"record {LOG_RING_SIZE + 499}"
    assert full["logs"][0]["message"] == "record 500"
    assert recent["logs"] == full["logs"][-200:]
    assert full["runners"]["Feed Retention"]["percent"] == LOG_RING_SIZE + 499
    assert full["runners"]["Feed Retention"]["seq"] == total
    assert full["heartbeat"] is None
    assert full["seq"] == total


def test_snapshot_logs_fit_one_frame_even_when_messages_are_long() -> None:
    async def main() -> dict:
        hub = StatusHub()
        for _ in range(LOG_RING_SIZE):
            hub.publish_log({"level": "INFO", "logger": "t", "message": "é" * 4096})  # 6 bytes each on the wire
        return hub.snapshot()

    snap = asyncio.run(main())
    assert 0 < len(snap["logs"]) < LOG_RING_SIZE
    assert len(WIRE.encode(snap["logs"])) <= SNAPSHOT_LOG_BYTES < MAX_FRAME_BYTES
    assert snap["logs"][-1]["seq"] == LOG_RING_SIZE  # the newest are the ones kept


def test_bad_events_are_refused_and_take_no_seq() -> None:
    async def main() -> None:
        hub = StatusHub()
        with pytest.raises(ValueError, match="must not contain"):
            hub.publish_log({"seq": 7, "message": "x"})
        with pytest.raises(ValueError, match="publish_runner"):
            hub.publish_event("runner", {"name": "x"})
        with pytest.raises(ValueError, match="cannot fit one batch"):
            hub.publish_event("service", {"detail": "x" * BATCH_MAX_BYTES})
        with pytest.raises(ValueError):
            hub.publish_runner({"name": "x", "percent": float("nan")})  # the messenger refuses NaN
        with pytest.raises(TypeError):
            hub.publish_heartbeat({"when": object()})
        assert hub.seq == 0
        log(hub, 1)
        assert hub.snapshot()["logs"][0]["seq"] == 1

    asyncio.run(main())


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(), children, max_size=3),
    max_leaves=8,
)


@given(
    data=st.dictionaries(st.text().filter(lambda key: key not in {"type", "seq", "at"}), JSON_VALUES, max_size=5),
    seq=st.integers(1, 2**64),
    at=st.floats(allow_nan=False, allow_infinity=False),
)
def test_event_sizes_are_the_sizes_on_the_wire(data: dict, seq: int, at: float) -> None:
    event, size = status._prepare("log", data, at)
    event["seq"] = seq
    assert size + len(str(seq)) == len(WIRE.encode(event))


def test_what_the_messenger_cannot_encode_is_refused_at_publish() -> None:
    with pytest.raises(ValueError):
        status._prepare("log", {"message": "m"}, float("inf"))
    with pytest.raises(TypeError):
        status._prepare("log", {1: "m"}, 1.0)


# --- batches ---


def test_subscriber_receives_every_event_in_batches_in_seq_order() -> None:
    async def main() -> list[dict]:
        hub = StatusHub()
        batches = []
        async with hub.subscribe() as subscription:
            for n in range(1234):
                log(hub, n)
            while sum(len(batch["events"]) for batch in batches) < 1234:
                batches.append(await next_batch(subscription))
        return batches

    batches = asyncio.run(main())
    assert [len(batch["events"]) for batch in batches] == [500, 500, 234]
    assert all("dropped" not in batch for batch in batches)
    assert [event["seq"] for batch in batches for event in batch["events"]] == list(range(1, 1235))


def test_no_batch_without_events_and_no_busy_waiting() -> None:
    async def main() -> None:
        hub = StatusHub()
        subscription = hub.subscribe()
        cpu = time.process_time()
        with pytest.raises(TimeoutError):
            await next_batch(subscription, timeout=0.3)
        assert time.process_time() - cpu < 0.1  # it slept; a polling loop would burn the whole 0.3 s
        log(hub, 1)  # still usable after the cancelled wait; the first batch goes at once
        started = time.monotonic()
        assert seqs((await next_batch(subscription))["events"]) == [1]
        assert time.monotonic() - started < BATCH_INTERVAL / 2

    asyncio.run(main())


def test_partial_batches_are_at_least_an_interval_apart_and_full_ones_go_at_once() -> None:
    async def main() -> None:
        hub = StatusHub()
        subscription = hub.subscribe()
        log(hub, 1)
        await next_batch(subscription)
        first = hub.loop.time()
        log(hub, 2)
        cpu = time.process_time()
        batch = await next_batch(subscription)
        assert hub.loop.time() - first >= BATCH_INTERVAL * 0.9
        assert time.process_time() - cpu < BATCH_INTERVAL / 2
        log(hub, 3)  # arrives during the interval: coalesced into one batch with its neighbours
        batch = await next_batch(subscription)
        assert seqs(batch["events"]) == [3]

        for n in range(BATCH_MAX_EVENTS):
            log(hub, n)
        started = hub.loop.time()
        batch = await next_batch(subscription)
        assert len(batch["events"]) == BATCH_MAX_EVENTS
        assert hub.loop.time() - started < BATCH_INTERVAL / 2

    asyncio.run(main())


def test_a_full_interval_of_events_is_one_batch() -> None:
    async def main() -> list[dict]:
        hub = StatusHub()
        subscription = hub.subscribe()
        log(hub, 0)
        await next_batch(subscription)
        reader = asyncio.create_task(next_batch(subscription))
        for n in range(10):
            log(hub, n)
            await asyncio.sleep(BATCH_INTERVAL / 50)
        return [await reader]

    (batch,) = asyncio.run(main())
    assert seqs(batch["events"]) == list(range(2, 12))


def test_batches_fit_one_messenger_frame() -> None:
    async def main() -> list[dict]:
        hub = StatusHub()
        batches = []
        async with hub.subscribe() as subscription:
            for n in range(300):
                # Non-ASCII and control characters expand on the wire; the hub counts wire bytes.
                hub.publish_log({"level": "INFO", "logger": "t", "message": f"{n} " + "é\x01" * 2000})
            while sum(len(batch["events"]) for batch in batches) < 300:
                batches.append(await next_batch(subscription))
        return batches

    batches = asyncio.run(main())
    assert len(batches) > 1
    assert all(len(WIRE.encode(batch)) <= BATCH_MAX_BYTES for batch in batches)
    assert BATCH_MAX_BYTES < MAX_FRAME_BYTES
    assert [event["seq"] for batch in batches for event in batch["events"]] == list(range(1, 301))


# --- coalescing ---


def test_runner_progress_coalesces_in_place() -> None:
    async def main() -> dict:
        hub = StatusHub()
        subscription = hub.subscribe()
        log(hub, 0)
        for percent in range(100):
            hub.publish_runner({"name": "Feed Indexing", "state": "running", "percent": percent})
            hub.publish_heartbeat({"beat": percent})
        hub.publish_runner({"name": "Feed Integrity", "state": "idle"})
        log(hub, 1)
        assert subscription.pending == 5
        return await next_batch(subscription)

    batch = asyncio.run(main())
    events = batch["events"]
    assert [(event["type"], event.get("name")) for event in events] == [
        ("log", None), ("runner", "Feed Indexing"), ("heartbeat", None), ("runner", "Feed Integrity"), ("log", None),
    ]
    assert events[1]["percent"] == 99 and events[1]["seq"] == 200
    assert events[2]["beat"] == 99 and events[2]["seq"] == 201
    assert "dropped" not in batch


def test_delivered_runner_state_is_not_replaced_later() -> None:
    async def main() -> tuple[dict, dict]:
        hub = StatusHub()
        subscription = hub.subscribe()
        hub.publish_runner({"name": "r", "percent": 1})
        first = await next_batch(subscription)
        hub.publish_runner({"name": "r", "percent": 2})
        return first, await next_batch(subscription)

    first, second = asyncio.run(main())
    assert [event["percent"] for event in first["events"]] == [1]
    assert [event["percent"] for event in second["events"]] == [2]


# --- slow subscribers ---


def test_a_stalled_subscriber_stays_bounded_and_a_fast_one_gets_everything() -> None:
    total = 50_000  # 25x the bound; the last half traced, long after every buffer filled
    chunk = 250
    # tracemalloc makes each publish ~8x slower, so it watches the last stretch, when every buffer is long full:
    # an unbounded buffer would grow by ~8 MB over these 25,000 events, ours not at all.
    traced = 25_000

    async def main() -> None:
        hub = StatusHub()
        slow = hub.subscribe()
        fast = hub.subscribe()
        received = 0
        fast_max_pending = 0

        async def read_fast() -> None:
            nonlocal received
            async for batch in fast:
                assert "dropped" not in batch
                assert seqs(batch["events"]) == list(range(received + 1, received + 1 + len(batch["events"])))
                received += len(batch["events"])
                if received == total:
                    return

        reader = asyncio.create_task(read_fast())
        await asyncio.sleep(0)
        try:
            for n in range(total):
                if n == total - traced:
                    tracemalloc.start()
                log(hub, n)
                if n % chunk == chunk - 1:
                    assert slow.pending <= SUBSCRIBER_MAX_PENDING
                    fast_max_pending = max(fast_max_pending, fast.pending)
                    await asyncio.sleep(0)
            await asyncio.wait_for(reader, 5)
            growth, _peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()

        assert received == total
        assert fast_max_pending <= BATCH_MAX_EVENTS + chunk  # it kept up: never more than a batch behind
        assert slow.pending == SUBSCRIBER_MAX_PENDING
        assert growth < 2 * 1024 * 1024, f"memory grew by {growth} bytes"
        lost = total - SUBSCRIBER_MAX_PENDING
        assert hub.dropped_total == lost

        batches = [await next_batch(slow) for _ in range(SUBSCRIBER_MAX_PENDING // BATCH_MAX_EVENTS)]
        assert batches[0]["dropped"] == lost
        assert all("dropped" not in batch for batch in batches[1:])
        assert [event["seq"] for batch in batches for event in batch["events"]] == list(range(lost + 1, total + 1))
        assert slow.pending == 0

    asyncio.run(main())


def test_a_flood_of_non_log_events_is_bounded_too() -> None:
    async def main() -> dict:
        hub = StatusHub()
        subscription = hub.subscribe()
        hub.publish_runner({"name": "r", "percent": 0})
        for n in range(SUBSCRIBER_MAX_PENDING + 10):
            hub.publish_event("service", {"n": n})
        assert subscription.pending == SUBSCRIBER_MAX_PENDING
        return await next_batch(subscription)

    batch = asyncio.run(main())
    assert batch["dropped"] == 11  # the runner slot was the oldest, then 10 service events
    assert batch["events"][0] == {"type": "service", "seq": 12, "at": batch["events"][0]["at"], "n": 10}


# --- threads ---


def test_publish_from_another_thread_is_handed_to_the_loop() -> None:
    async def main() -> tuple[list[dict], dict]:
        hub = StatusHub()
        subscription = hub.subscribe()
        loop_thread = threading.get_ident()
        committed_on = []
        original = hub._commit

        def commit(*args: object) -> None:
            committed_on.append(threading.get_ident())
            original(*args)

        hub._commit = commit

        def work() -> None:
            for n in range(1000):
                log(hub, n, message="thread")
                hub.publish_runner({"name": "Drop Path Monitor", "percent": n})

        worker = threading.Thread(target=work)
        worker.start()
        await asyncio.to_thread(worker.join)
        events: list[dict] = []
        while len(events) < 1001:  # the runner's updates coalesce into one
            events += (await next_batch(subscription))["events"]
        assert set(committed_on) == {loop_thread}
        return events, hub.snapshot()

    events, snap = asyncio.run(main())
    logs = [event for event in events if event["type"] == "log"]
    assert [event["message"] for event in logs] == [f"thread {n}" for n in range(1000)]
    assert sorted(seqs(logs)) == seqs(logs)
    runners = [event for event in events if event["type"] == "runner"]
    assert [runner["percent"] for runner in runners] == [999]
    assert snap["runners"]["Drop Path Monitor"]["percent"] == 999
    assert snap["seq"] == 2000


def test_a_blocked_loop_does_not_block_publishing_threads_nor_grow_memory() -> None:
    extra = 500

    async def main() -> None:
        hub = StatusHub()
        subscription = hub.subscribe()
        worker = threading.Thread(target=lambda: [log(hub, n) for n in range(HANDOFF_MAX + extra)])
        worker.start()
        worker.join(timeout=10)  # blocks the loop on purpose: nothing is handed over meanwhile
        assert not worker.is_alive()
        assert hub.handoff_dropped == extra
        assert hub.seq == 0
        await asyncio.sleep(0)
        assert hub.seq == HANDOFF_MAX  # the newest HANDOFF_MAX were kept, the oldest let go
        assert hub.snapshot()["logs"][-1]["message"] == f"record {HANDOFF_MAX + extra - 1}"
        assert subscription.pending == SUBSCRIBER_MAX_PENDING

    asyncio.run(main())


def test_publishing_after_the_loop_closed_does_not_raise() -> None:
    hub = asyncio.run(_make_hub())
    worker = threading.Thread(target=lambda: [log(hub, n) for n in range(3)])
    worker.start()
    worker.join(timeout=5)
    assert not worker.is_alive()
    assert hub.seq == 0


async def _make_hub() -> StatusHub:
    return StatusHub()


# --- unsubscribe ---


def test_closing_removes_the_subscriber_and_ends_the_stream() -> None:
    async def main() -> None:
        hub = StatusHub()
        subscription = hub.subscribe()
        assert hub.subscriber_count == 1
        reader = asyncio.create_task(anext(subscription))
        await asyncio.sleep(0)
        subscription.close()
        with pytest.raises(StopAsyncIteration):
            await reader
        assert hub.subscriber_count == 0
        log(hub, 1)
        assert subscription.pending == 0
        subscription.close()  # idempotent

        with pytest.raises(RuntimeError, match="boom"):
            async with hub.subscribe() as other:
                assert hub.subscriber_count == 1
                raise RuntimeError("boom")
        assert other.closed and hub.subscriber_count == 0

        async def consume() -> None:
            async with hub.subscribe() as third:
                async for _ in third:
                    pass

        fourth = hub.subscribe()
        await fourth.aclose()  # what the messenger's stream loop calls on an iterator it stops
        assert fourth.closed and hub.subscriber_count == 0

        task = asyncio.create_task(consume())
        await asyncio.sleep(0)
        assert hub.subscriber_count == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert hub.subscriber_count == 0
        assert not hub._subscribers

    asyncio.run(main())


def test_one_reader_at_a_time() -> None:
    async def main() -> None:
        hub = StatusHub()
        subscription = hub.subscribe()
        first = asyncio.create_task(anext(subscription))
        await asyncio.sleep(0)
        with pytest.raises(RuntimeError, match="one task at a time"):
            await anext(subscription)
        first.cancel()

    asyncio.run(main())


def test_limits_are_consistent() -> None:
    assert BATCH_MAX_EVENTS <= SUBSCRIBER_MAX_PENDING
    assert SNAPSHOT_LOG_BYTES < MAX_FRAME_BYTES and BATCH_MAX_BYTES < MAX_FRAME_BYTES
    assert len(str(2**64)) <= status.SEQ_MAX_DIGITS
