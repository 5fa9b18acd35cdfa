"""Keyless peers cannot lock others out: the pre-authentication budget, its per-source cap and the hello deadline.

Real sockets: the legitimate client connects from 127.0.0.1, attackers from 127.0.0.2 and 127.0.0.3 (Linux routes
all of 127/8 to lo), or over the Unix socket. Most tests run with the production limits (ServerLimits()).
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from messenger.endpoint import socket_path
from messenger.limits import HELLO_TIMEOUT, MAX_HANDSHAKING_PER_SOURCE
from messenger.protocol import Connection, Role
from messenger.server import ServerLimits
from tests.messenger.support import KEY, eventually, run
from tests.messenger.test_server import (
    SLACK,
    Harness,
    expect_reject,
    handshake,
    read_until_closed,
    serving,
    transport,  # noqa: F401 - the fixture
)

ATTACKERS = ("127.0.0.2", "127.0.0.3")
# Idle connections the attacker keeps open (reopening each as soon as the server drops it): more than MAX_CONNECTIONS.
FLOOD = 320
# Slots opened at once: within the listen backlog (100), so no SYN waits for a retransmit to be accepted.
RAMP_BATCH = 50
# What the issue asks of a legitimate client while the flood runs.
CONNECT_AND_PING_WITHIN = 1.0


class Flood:
    """Keyless peers that hold `size` idle connections and reopen each one the moment the server drops it."""

    def __init__(self, harness: Harness) -> None:
        self.harness = harness
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, size: int, hosts: tuple[str, ...]) -> None:
        """Open the slots in batches the listen backlog holds, each once the server has accepted the last one."""
        stats = self.harness.server.stats
        for first in range(0, size, RAMP_BATCH):
            batch = range(first, min(size, first + RAMP_BATCH))
            accepted = stats.connections_total + len(batch)
            self._tasks += [asyncio.create_task(self._slot(hosts[n % len(hosts)])) for n in batch]
            await eventually(lambda: stats.connections_total >= accepted)  # noqa: B023 - awaited at once

    async def _open(self, host: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        h = self.harness
        if h.endpoint.kind == "pipe":
            return await asyncio.open_unix_connection(str(socket_path(h.endpoint, h.run_dir)))
        return await asyncio.open_connection(h.endpoint.host, h.endpoint.port, local_addr=(host, 0))

    async def _slot(self, host: str) -> None:
        while True:
            try:
                reader, writer = await self._open(host)
            except OSError:  # the listen backlog overflowed: try again, as an attacker would
                await asyncio.sleep(0.01)
                continue
            with contextlib.suppress(OSError):
                await reader.read()  # idle until the server drops us
            writer.close()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def test_a_legitimate_client_gets_in_while_keyless_peers_recycle_idle_connections(tmp_path: Path) -> None:
    async def main() -> None:
        async with serving("tcp", tmp_path, limits=ServerLimits()) as h:
            flood = Flood(h)
            try:
                await flood.start(FLOOD, ATTACKERS)
                loop = asyncio.get_running_loop()
                started = loop.time()
                await h.assert_ping_works()
                assert loop.time() - started < CONNECT_AND_PING_WITHIN
                limits = h.server.limits
                held = len(ATTACKERS) * limits.max_handshaking_per_source  # below max_handshaking: no global eviction
                assert len(h.server.handshakes) <= held
                assert len(h.server.connections) <= held + 1  # and the legitimate one, maybe not yet gone
            finally:
                await flood.stop()
            assert h.server.stats.rejects["handshake-source-cap"] >= FLOOD - held
            assert h.server.stats.rejects["connection-cap"] == 0

    run(main())


def test_a_silent_peer_is_cut_at_the_hello_deadline_and_a_greeted_one_at_the_handshake_deadline(
    transport: str, tmp_path: Path  # noqa: F811 - the fixture
) -> None:
    hello_timeout, handshake_timeout = 0.5, 1.2  # the production 1 s and 5 s, scaled down
    limits = ServerLimits(hello_timeout=hello_timeout, handshake_timeout=handshake_timeout)

    async def main() -> None:
        async with serving(transport, tmp_path, limits=limits) as h:
            silent, _ = await h.open()
            greeted, writer = await h.open()
            writer.write(Connection(role=Role.CLIENT, key=KEY).initiate())  # a valid hello, then nothing
            elapsed = await expect_reject(silent, timeout=handshake_timeout + 1)
            assert hello_timeout - 0.1 <= elapsed <= hello_timeout + SLACK
            assert h.server.stats.rejects == {"hello-timeout": 1}
            data, elapsed = await read_until_closed(greeted, timeout=handshake_timeout + 1)
            assert data.endswith(b"PGMS\x00\x00\x00\x00")  # the ServerHello, then REJECT
            assert handshake_timeout - hello_timeout - 0.2 <= elapsed <= handshake_timeout - hello_timeout + SLACK
            assert h.server.stats.rejects == {"hello-timeout": 1, "handshake-timeout": 1}

    run(main())


def test_one_source_holds_at_most_its_share_of_handshakes_oldest_dropped_first(tmp_path: Path) -> None:
    extra = 4

    async def main() -> None:
        async with serving("tcp", tmp_path, limits=ServerLimits()) as h:
            other, _ = await h.open("127.0.0.3")
            flood = [await h.open("127.0.0.2") for _ in range(MAX_HANDSHAKING_PER_SOURCE + extra)]
            await eventually(lambda: h.server.stats.rejects["handshake-source-cap"] == extra, timeout=HELLO_TIMEOUT / 2)
            assert h.server.stats.rejects == {"handshake-source-cap": extra}
            for reader, _ in flood[:extra]:  # the oldest went, closed without a word
                assert (await read_until_closed(reader, timeout=0.2))[0] == b""
            assert len(h.server.handshakes) == MAX_HANDSHAKING_PER_SOURCE + 1  # the rest, and the other source's
            assert not other.at_eof()
            peer = await handshake(h, local_host="127.0.0.2")  # the same address can still get in
            await peer.ping()

    run(main())


def test_handshakes_beyond_the_budget_drop_the_oldest_and_leave_authenticated_slots_free(
    transport: str, tmp_path: Path  # noqa: F811 - the fixture
) -> None:
    limits = ServerLimits(max_connections=6, max_handshaking=2)

    async def main() -> None:
        async with serving(transport, tmp_path, limits=limits) as h:
            peers = [await handshake(h) for _ in range(3)]
            await eventually(lambda: h.server.stats.handshakes_ok == 3)
            idle = [await h.open(ATTACKERS[n % 2]) for n in range(6)]
            await eventually(lambda: h.server.stats.rejects["handshake-evicted"] == 4, timeout=HELLO_TIMEOUT / 2)
            for reader, _ in idle[:4]:
                assert (await read_until_closed(reader, timeout=0.2))[0] == b""
            assert len(h.server.handshakes) == 2 and len(h.server.connections) == 5
            peers.append(await handshake(h))  # the reserved slot: 4 = max_connections - max_handshaking
            for peer in peers:
                await peer.ping()
            assert h.server.stats.rejects == {"handshake-evicted": 5}  # the 4th peer's handshake took a slot too

    run(main())


def test_a_full_budget_drops_a_handshake_of_the_source_holding_the_most(tmp_path: Path) -> None:
    async def main() -> None:
        async with serving("tcp", tmp_path, limits=ServerLimits(max_handshaking=4)) as h:
            lone, _ = await h.open("127.0.0.3")  # the oldest of all, but alone at its address
            heavy = [await h.open("127.0.0.2") for _ in range(3)]
            await eventually(lambda: h.server.stats.connections_open == 4)
            peer = await handshake(h)  # from 127.0.0.1, into a full budget
            await peer.ping()
            assert (await read_until_closed(heavy[0][0], timeout=0.2))[0] == b""
            assert h.server.stats.rejects == {"handshake-evicted": 1}
            assert len(h.server.handshakes) == 3 and not lone.at_eof()

    run(main())
