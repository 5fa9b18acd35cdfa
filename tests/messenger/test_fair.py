"""messenger.fair.FairSlots: the rotation between connections, and what a waiter that gives up leaves behind."""
from __future__ import annotations

import asyncio

from messenger.fair import FairSlots
from tests.messenger.support import run


async def _holders(slots: FairSlots, owner: str, count: int, order: list[str]) -> list[asyncio.Task[None]]:
    async def hold() -> None:
        await slots.acquire(owner)
        order.append(owner)

    tasks = [asyncio.ensure_future(hold()) for _ in range(count)]
    await asyncio.sleep(0)
    return tasks


def test_free_slots_go_round_robin_between_owners() -> None:
    async def main() -> None:
        slots, order = FairSlots(1), []
        await slots.acquire("busy")
        await _holders(slots, "flood", 5, order)
        await _holders(slots, "other", 1, order)
        for _ in range(3):
            slots.release()
            await asyncio.sleep(0)
        assert order == ["flood", "other", "flood"]

    run(main())


def test_a_waiter_that_gives_up_neither_keeps_nor_loses_a_slot() -> None:
    async def main() -> None:
        slots, order = FairSlots(1), []
        await slots.acquire("busy")
        [gives_up] = await _holders(slots, "a", 1, order)
        await _holders(slots, "b", 1, order)
        gives_up.cancel()  # still waiting: it is forgotten
        await asyncio.sleep(0)
        slots.release()
        await asyncio.sleep(0)
        assert order == ["b"]

        [handed_over] = await _holders(slots, "c", 1, order)
        await _holders(slots, "d", 1, order)
        slots.release()  # the slot goes to c ...
        handed_over.cancel()  # ... which gives up before it runs: the slot passes on to d
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert order == ["b", "d"]

    run(main())
