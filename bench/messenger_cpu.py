"""Where the messenger's time goes: CPU per message, not wall time (the numbers behind docs/PERFORMANCE.md).

Run `.venv/bin/python bench/messenger_cpu.py [--items N] [--rounds N]`.

- core round trip: `protocol.Connection` driven by hand, a 512-byte body (2 encodes, 2 seals, 2 opens, 2 decodes).
- in-process round trip: a client `Link` and a `ServerConnection` whose transports call the peer directly, so the
  figure is both adapters and both cores, without syscalls or event-loop turns.
- stream CPU per item: ours (`status.subscribe` of 512-byte items) and the raw asyncio Protocol echo, the server in
  its own process: items/s, and the CPU each side spent per item (`time.process_time`, `/proc/PID/stat`). The side
  whose CPU per item matches the wall time per item is the bottleneck.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import tempfile
import time
import timeit
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from bench.messenger import (  # noqa: E402
    KEY,
    OURS_BODY,
    RawProtocolClient,
    ServerProcess,
    ServerSpec,
    ours_client,
    ours_echo,
)
from bench.nodes import cpu_seconds  # noqa: E402
from messenger.client_link import Link  # noqa: E402
from messenger.protocol import Connection, Role  # noqa: E402
from messenger.server import MessengerServer  # noqa: E402
from messenger.server_connection import ServerConnection  # noqa: E402

REPEATS = 5


def core_round_trip_us(rounds: int) -> float:
    client, server = Connection(role=Role.CLIENT, key=KEY), Connection(role=Role.SERVER, key=KEY)
    server.receive_data(client.initiate())
    client.receive_data(server.data_to_send())
    server.receive_data(client.data_to_send())

    def once() -> None:
        [request] = server.receive_data(client.send_request(id=1, type="ping", body=OURS_BODY))
        client.receive_data(server.send_reply(id=1, body=request.body))

    return min(timeit.repeat(once, number=rounds, repeat=REPEATS)) / rounds * 1e6


class DirectTransport:
    """Hands every write straight to the peer protocol's data_received: no socket, no loop turn."""

    def __init__(self, sock: socket.socket) -> None:
        self.peer: Any = None
        self._socket = sock  # a local socket of this user: the client's peer-credential check passes

    def write(self, data: bytes) -> None:
        self.peer.data_received(data)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._socket if name == "socket" else default  # no peername: a local peer

    def get_write_buffer_size(self) -> int:
        return 0

    def close(self) -> None: ...
    def abort(self) -> None: ...
    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...


async def in_process_round_trip_us(rounds: int) -> float:
    server = MessengerServer(key=KEY, handlers={"ping": ours_echo})
    server_side, link = ServerConnection(server), Link(key=KEY, on_lost=lambda _link: None)
    ends = socket.socketpair()
    to_server, to_client = DirectTransport(ends[0]), DirectTransport(ends[1])
    to_server.peer, to_client.peer = server_side, link
    server_side.connection_made(to_client)  # type: ignore[arg-type]
    link.connection_made(to_server)  # type: ignore[arg-type]
    await link.ready
    best = float("inf")
    for _ in range(REPEATS):
        started = time.perf_counter()
        for id in range(1, rounds + 1):
            await link.send_request(id=id, type="ping", body=OURS_BODY, timeout=5.0)  # answered before the await
            link.forget(id)
        best = min(best, (time.perf_counter() - started) / rounds * 1e6)
    server_side.connection_lost(None)
    for end in ends:
        end.close()
    return best


async def stream_cpu(kind: str, server: ServerProcess, workdir: str, items: int) -> tuple[float, float, float]:
    """(items/s, client CPU us per item, server CPU us per item) of one stream of `items` 512-byte items."""
    if kind == "ours":
        client: Any = ours_client(server.target, workdir)
        await client.request("ping", {})

        async def stream() -> None:
            async with client.subscribe("status.subscribe", {"count": items}) as received:
                async for _ in received:
                    pass
    else:
        client = await RawProtocolClient.connect(server.target)

        async def stream() -> None:
            await client.stream(items)
    try:
        server_cpu, client_cpu, started = cpu_seconds(server.pid), time.process_time(), time.perf_counter()
        await stream()
        wall = time.perf_counter() - started
        return (items / wall, (time.process_time() - client_cpu) / items * 1e6,
                (cpu_seconds(server.pid) - server_cpu) / items * 1e6)
    finally:
        await client.close()


async def main_async(args: argparse.Namespace) -> None:
    print(f"core round trip (512-byte body): {core_round_trip_us(args.rounds):.2f} us")
    print(f"in-process round trip (both adapters and cores, no syscalls): "
          f"{await in_process_round_trip_us(args.rounds):.2f} us")
    with tempfile.TemporaryDirectory(prefix="messenger-cpu-") as workdir:
        for kind in ("ours", "raw-protocol"):
            server = ServerProcess(ServerSpec(kind=kind, transport="unix", workdir=workdir, use_uvloop=False))
            try:
                for _ in range(3):
                    rate, client_us, server_us = await stream_cpu(kind, server, workdir, args.items)
                    print(f"[unix] stream 512 B, {kind}: {rate:,.0f} items/s; per item: wall {1e6 / rate:.2f} us, "
                          f"client CPU {client_us:.2f} us, server CPU {server_us:.2f} us")
            finally:
                server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000, help="stream items per run (default 100,000)")
    parser.add_argument("--rounds", type=int, default=20_000, help="round trips per repeat (default 20,000)")
    asyncio.run(main_async(parser.parse_args()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
