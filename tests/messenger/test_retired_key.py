"""A retired key stops working: a connection on it gets nothing new dispatched and is closed, however busy it keeps.

Real sockets; the peer is a hand-driven client that keeps requests in flight across the rotation, as an attacker
holding a rotated-out key (or a client that never moves on) would.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from messenger.crypto import RetiredKey
from messenger.protocol import ErrorReply, Reply
from messenger.server import RequestContext, ServerLimits
from tests.messenger.support import KEY, eventually, run
from tests.messenger.test_server import (
    LIMITS,
    OTHER_KEY,
    SLACK,
    Harness,
    RawPeer,
    handshake,
    ping,
    read_until_closed,
    serving,
    transport,  # noqa: F401 - the fixture
)

# The rotation's grace in these tests: long enough to start a request under it, short enough to wait out.
GRACE = 0.3
SLOW_HANDLER = 0.6  # a request started just before the grace ends and finishing well after it


class Runners:
    """Handlers that record what they were asked to do."""

    def __init__(self) -> None:
        self.paused: list[str] = []
        self.started = asyncio.Event()
        self.cancelled = asyncio.Event()

    async def pause(self, body: dict, context: RequestContext) -> dict:
        self.paused.append(body["name"])
        return {"paused": True}

    async def slow(self, body: dict, context: RequestContext) -> dict:
        self.started.set()
        await asyncio.sleep(body.get("seconds", SLOW_HANDLER))
        return {"done": True}

    async def forever(self, body: dict, context: RequestContext) -> dict:
        self.started.set()
        try:
            await asyncio.Event().wait()
        finally:
            self.cancelled.set()
        return {}

    def handlers(self) -> dict:
        return {"ping": ping, "runner.pause": self.pause, "status.snapshot": self.slow, "runner.run": self.forever}


def request(peer: RawPeer, id: int, type: str, body: dict | None = None) -> None:
    peer.writer.write(peer.conn.send_request(id=id, type=type, body=body or {}))


async def rotate_with_grace(h: Harness) -> None:
    """Rotate to OTHER_KEY with KEY accepted for GRACE seconds; return once the grace has ended."""
    h.server.set_key(OTHER_KEY, [RetiredKey(key=KEY, until=time.time() + GRACE)])
    await eventually(lambda: h.server.previous_keys == (), timeout=GRACE + 2)


async def assert_new_key_works(h: Harness) -> None:
    peer = await handshake(h, key=OTHER_KEY)
    await peer.ping()


def test_with_no_grace_a_connection_on_the_old_key_is_closed_at_once_and_runs_nothing_more(
    transport: str, tmp_path: Path  # noqa: F811 - the fixture
) -> None:
    async def main() -> None:
        runners = Runners()
        async with serving(transport, tmp_path, handlers=runners.handlers()) as h:
            peer = await handshake(h)
            request(peer, 1, "runner.run")  # kept in flight for ever
            await asyncio.wait_for(runners.started.wait(), 2)
            h.server.set_key(OTHER_KEY)  # Service.MessengerKeyGraceSeconds = 0: the old key is gone at once
            request(peer, 2, "runner.pause", {"name": "Feed Indexing"})
            data, elapsed = await read_until_closed(peer.reader, timeout=3)
            assert data == b"" and elapsed < SLACK
            await asyncio.wait_for(runners.cancelled.wait(), 1)  # what was in flight is cut too
            assert runners.paused == []
            await assert_new_key_works(h)

    run(main())


def test_after_the_grace_in_flight_work_finishes_but_nothing_new_is_dispatched(
    transport: str, tmp_path: Path  # noqa: F811 - the fixture
) -> None:
    async def main() -> None:
        runners = Runners()
        async with serving(transport, tmp_path, handlers=runners.handlers()) as h:
            peer = await handshake(h)
            request(peer, 1, "status.snapshot", {"seconds": GRACE + SLOW_HANDLER})  # outlives the grace
            await asyncio.wait_for(runners.started.wait(), 2)
            await rotate_with_grace(h)
            request(peer, 2, "runner.pause", {"name": "Feed Indexing"})  # after the grace: must not run
            request(peer, 3, "status.snapshot", {"seconds": 0})
            assert peer.conn.receive_data(await peer.read_frame()) == [Reply(id=1, body={"done": True})]
            data, _ = await read_until_closed(peer.reader, timeout=2)  # closed once request 1 was answered
            assert data == b""
            assert runners.paused == []
            await assert_new_key_works(h)

    run(main())


def test_a_request_kept_in_flight_does_not_hold_the_connection_past_the_deadline(
    transport: str, tmp_path: Path  # noqa: F811 - the fixture
) -> None:
    retire_timeout = 0.5  # the production REQUEST_TIMEOUT, scaled down
    limits = ServerLimits(handshake_timeout=LIMITS.handshake_timeout, frame_timeout=LIMITS.frame_timeout,
                          idle_timeout=LIMITS.idle_timeout, retire_timeout=retire_timeout)

    async def main() -> None:
        runners = Runners()
        async with serving(transport, tmp_path, handlers=runners.handlers(), limits=limits) as h:
            peer = await handshake(h)
            request(peer, 1, "runner.run")  # never answers
            await asyncio.wait_for(runners.started.wait(), 2)
            await rotate_with_grace(h)
            loop = asyncio.get_running_loop()
            started = loop.time()
            while not peer.reader.at_eof() and loop.time() - started < retire_timeout + 2:
                request(peer, 2, "runner.pause", {"name": "Feed Indexing"})  # keep asking: nothing runs
                try:
                    events = peer.conn.receive_data(await asyncio.wait_for(peer.read_frame(), 0.2))
                except (TimeoutError, asyncio.IncompleteReadError):
                    continue
                assert not any(isinstance(event, Reply | ErrorReply) for event in events)
            assert peer.reader.at_eof()
            assert retire_timeout - 0.1 <= loop.time() - started <= retire_timeout + SLACK
            await asyncio.wait_for(runners.cancelled.wait(), 1)
            assert runners.paused == []
            await assert_new_key_works(h)

    run(main())
