"""Per-connection budgets of the messenger server, over real sockets: one authenticated peer that floods or
never reads cannot make the server hold unbounded memory or starve the other connections (issue 12, item 4)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async

from messenger.limits import (
    HANDLER_SLOTS,
    MAX_OUTPUT_BUFFER_BYTES,
    MAX_REQUESTS_IN_FLIGHT,
    MAX_STREAMS_PER_CONNECTION,
)
from messenger.messages import TOO_MANY_STREAMS
from messenger.protocol import ErrorReply, Reply, StreamItem
from messenger.server import RequestContext
from tests.messenger.support import InFlight, eventually, run
from tests.messenger.test_server import LIMITS, handshake, ping, serving

# A status snapshot close to the frame cap: 100 of them are the ~100 MB of the issue.
BIG = "x" * 900_000
# Work one request does in the shared (thread-sensitive) database thread.
DB_WORK_SECONDS = 0.002
# Pipelined requests of the flooding peer: ~6 s of database work in all.
FLOOD = 3000
# Another client's request waits behind at most MAX_REQUESTS_IN_FLIGHT of the flood's jobs: far below this.
PROMPT_SECONDS = 1.0


@pytest.fixture(params=["pipe", "tcp"])
def transport(request: pytest.FixtureRequest) -> str:
    return request.param


def test_subscribes_on_a_connection_that_never_reads_are_capped_and_hold_bounded_memory(
    transport: str, tmp_path: Path
) -> None:
    snapshots = 0

    async def status(body: dict, context: RequestContext) -> AsyncIterator[dict]:
        nonlocal snapshots
        snapshots += 1
        yield {"snapshot": BIG}
        await asyncio.Event().wait()

    async def main() -> None:
        async with serving(transport, tmp_path, stream_handlers={"status.subscribe": status}) as h:
            peer = await handshake(h)
            peer.writer.write(b"".join(
                peer.conn.send_request(id=i, type="status.subscribe", body={}) for i in range(1, 101)
            ))
            await eventually(lambda: h.server.stats.frames_in == 100 and snapshots >= 1)
            [conn] = h.server.connections
            for _ in range(20):  # every stream task gets its turns on the loop: what it would write, it has
                await asyncio.sleep(0)
            assert snapshots <= MAX_STREAMS_PER_CONNECTION
            assert conn.output_buffered <= MAX_OUTPUT_BUFFER_BYTES

            answers: dict[type, list] = {Reply: [], ErrorReply: [], StreamItem: []}
            while len(answers[Reply]) + len(answers[ErrorReply]) < 100:
                for event in peer.conn.receive_data(await peer.read_frame()):
                    answers[type(event)].append(event)
            assert [reply.id for reply in answers[Reply]] == list(range(1, MAX_STREAMS_PER_CONNECTION + 1))
            assert {error.id for error in answers[ErrorReply]} == set(range(MAX_STREAMS_PER_CONNECTION + 1, 101))
            assert all("too many streams" in error.message and error.code == TOO_MANY_STREAMS
                       for error in answers[ErrorReply])
            assert snapshots <= MAX_STREAMS_PER_CONNECTION
            await h.assert_ping_works()

    run(main())


def test_a_peer_that_lets_replies_pile_up_is_disconnected(transport: str, tmp_path: Path) -> None:
    async def big(body: dict, context: RequestContext) -> dict:
        return {"pad": BIG}

    async def main() -> None:
        async with serving(transport, tmp_path, handlers={"ping": ping, "status.snapshot": big}) as h:
            peer = await handshake(h)
            peer.writer.write(b"".join(
                peer.conn.send_request(id=i, type="status.snapshot", body={}) for i in range(1, 17)
            ))
            await eventually(lambda: h.server.stats.rejects["output-overflow"] == 1)
            await eventually(lambda: not h.server.connections)
            await h.assert_ping_works()

    run(main())


def test_requests_beyond_the_in_flight_cap_wait_and_all_get_their_reply(transport: str, tmp_path: Path) -> None:
    counter = InFlight()
    handlers = {"ping": ping, "trigger.nudge": counter.work}
    limits = dataclasses.replace(LIMITS, handler_slots=10 * MAX_REQUESTS_IN_FLIGHT)  # the per-connection cap binds

    async def main() -> None:
        async with serving(transport, tmp_path, handlers=handlers, limits=limits) as h:
            peer = await handshake(h)
            count = 5 * MAX_REQUESTS_IN_FLIGHT
            peer.writer.write(b"".join(
                peer.conn.send_request(id=i, type="trigger.nudge", body={"n": i}) for i in range(1, count + 1)
            ))
            replies = []
            while len(replies) < count:
                replies += peer.conn.receive_data(await peer.read_frame())
            assert sorted((reply.id, reply.body["n"]) for reply in replies) == [(i, i) for i in range(1, count + 1)]
            assert counter.most == MAX_REQUESTS_IN_FLIGHT
            await peer.ping(id=count + 1)  # reading went on after the backlog drained

    run(main())


def test_a_flood_of_pipelined_requests_does_not_starve_another_client(transport: str, tmp_path: Path) -> None:
    started = 0

    async def nudge(body: dict, context: RequestContext) -> dict:
        nonlocal started
        started += 1
        await sync_to_async(time.sleep)(DB_WORK_SECONDS)  # the service's database thread, shared by all
        return {"outcomes": []}

    async def run_now(body: dict, context: RequestContext) -> dict:
        await sync_to_async(time.sleep)(DB_WORK_SECONDS)
        return {"started": True}

    handlers = {"ping": ping, "trigger.nudge": nudge, "runner.run": run_now}

    async def main() -> None:
        async with serving(transport, tmp_path, handlers=handlers) as h:
            flood = await handshake(h)
            flood.writer.write(b"".join(
                flood.conn.send_request(id=i, type="trigger.nudge", body={"id": i}) for i in range(1, FLOOD + 1)
            ))
            await eventually(lambda: started >= MAX_REQUESTS_IN_FLIGHT)
            client = h.client()
            try:
                began = time.monotonic()
                assert (await client.request("ping", timeout=PROMPT_SECONDS))["pong"]
                assert (await client.request("runner.run", timeout=PROMPT_SECONDS))["started"]
                assert time.monotonic() - began < PROMPT_SECONDS
            finally:
                await client.close()
            assert started < FLOOD  # the flood was still under way: the answer did not wait for its end

    run(main())


def test_handlers_are_shared_round_robin_between_connections(transport: str, tmp_path: Path) -> None:
    """Two peers keep MAX_REQUESTS_IN_FLIGHT requests each queued: a third one's request waits for about one
    database job per connection, not for everything the floods queued in the shared thread."""
    done: list[str] = []  # who ran each database job, in order

    def db_job(who: str) -> None:
        time.sleep(DB_WORK_SECONDS)
        done.append(who)

    async def job(body: dict, context: RequestContext) -> dict:
        await sync_to_async(db_job)(body["who"])
        return {}

    async def main() -> None:
        async with serving(transport, tmp_path, handlers={"ping": ping, "runner.run": job}) as h:
            floods = [await handshake(h) for _ in range(2)]
            for n, flood in enumerate(floods):
                flood.writer.write(b"".join(flood.conn.send_request(id=i, type="runner.run", body={"who": f"f{n}"})
                                            for i in range(1, FLOOD + 1)))
            await eventually(lambda: len(done) >= 2 * HANDLER_SLOTS)
            client = h.client()
            try:
                await client.request("ping")  # connected first: jobs that ran during the handshake are not "ahead"
                asked = len(done)
                await client.request("runner.run", {"who": "other"}, timeout=PROMPT_SECONDS)
            finally:
                await client.close()
            ahead = done.index("other") - asked
            assert ahead <= HANDLER_SLOTS + 2, f"{ahead} flood jobs ran before the other client's"

    run(main())


def test_a_stream_asks_for_its_first_item_only_while_the_peer_reads(tmp_path: Path) -> None:
    """With the stream cap out of the way, 100 subscribes on a connection that does not read make only the
    snapshots that fit before backpressure; the rest are made, and all delivered, once the peer reads."""
    snapshots = 0
    count = 100

    async def status(body: dict, context: RequestContext) -> AsyncIterator[dict]:
        nonlocal snapshots
        snapshots += 1
        yield {"snapshot": "x" * 300_000}
        await asyncio.Event().wait()

    limits = dataclasses.replace(LIMITS, max_streams=count)

    async def main() -> None:
        async with serving("pipe", tmp_path, stream_handlers={"status.subscribe": status}, limits=limits) as h:
            peer = await handshake(h)
            peer.writer.write(b"".join(
                peer.conn.send_request(id=i, type="status.subscribe", body={}) for i in range(1, count + 1)
            ))
            await eventually(lambda: h.server.stats.frames_in == count and snapshots >= 1)
            for _ in range(20):  # every stream task gets its turns on the loop
                await asyncio.sleep(0)
            assert snapshots <= 3  # one write batch, then the transport's high-water mark stops the rest

            items = set()
            while len(items) < count:
                items.update(event.id for event in peer.conn.receive_data(await peer.read_frame())
                             if isinstance(event, StreamItem))
            assert snapshots == count

    run(main())
