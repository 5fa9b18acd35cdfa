"""Benchmark: what one authenticated peer can make the messenger server hold, and how long it makes others wait.

Run `.venv/bin/python bench/messenger_budgets.py`. Two scenarios over a Unix socket, server and peers in this process:

- 100 `status.subscribe` on one connection that never reads, each stream's first item a 900 KB snapshot:
  snapshots made and bytes the server holds for that peer (its transport's write buffer) after 1 s.
- 3,000 pipelined requests on one connection, each doing 2 ms of work on asgiref's shared thread (as the service's
  `trigger.nudge` does): how long another client waits for a request that also needs that thread.
"""
from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

from asgiref.sync import sync_to_async

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from messenger.client import MessengerClient  # noqa: E402
from messenger.endpoint import parse_endpoint, socket_path  # noqa: E402
from messenger.protocol import SERVER_HELLO_BYTES, Connection, Role  # noqa: E402
from messenger.server import MessengerServer, RequestContext  # noqa: E402

KEY = bytes(range(32))
SNAPSHOT = {"snapshot": "x" * 900_000}
SUBSCRIBES = 100
FLOOD = 3000
DB_WORK_SECONDS = 0.002


async def _status(body: dict, context: RequestContext) -> AsyncIterator[dict]:
    yield SNAPSHOT
    await asyncio.Event().wait()


async def _db_job(body: dict, context: RequestContext) -> dict:
    await sync_to_async(time.sleep)(DB_WORK_SECONDS)
    return {}


async def _peer(path: Path) -> tuple[asyncio.StreamWriter, Connection]:
    """A raw client after a real handshake: it writes what it likes and reads nothing."""
    reader, writer = await asyncio.open_unix_connection(str(path))
    conn = Connection(role=Role.CLIENT, key=KEY)
    writer.write(conn.initiate())
    conn.receive_data(await reader.readexactly(SERVER_HELLO_BYTES))
    writer.write(conn.data_to_send())
    return writer, conn


async def main() -> None:
    run_dir = Path(tempfile.mkdtemp(prefix="bench-budgets-"))
    endpoint = parse_endpoint("pipe://bench")
    made = 0

    async def status(body: dict, context: RequestContext) -> AsyncIterator[dict]:
        nonlocal made
        made += 1
        async for item in _status(body, context):
            yield item

    server = MessengerServer(key=KEY, handlers={"ping": lambda body, ctx: {}, "trigger.nudge": _db_job,
                                                "runner.run": _db_job},
                             stream_handlers={"status.subscribe": status})
    await server.start(endpoint, run_dir=run_dir)
    path = socket_path(endpoint, run_dir)
    try:
        writer, conn = await _peer(path)
        writer.write(b"".join(conn.send_request(id=i, type="status.subscribe", body={})
                              for i in range(1, SUBSCRIBES + 1)))
        await asyncio.sleep(1.0)
        held = sum(peer.output_buffered for peer in server.connections)
        print(f"{SUBSCRIBES} subscribes, never read: {made} snapshots made, {held / 1e6:.1f} MB held by the server")
        writer.close()

        writer, conn = await _peer(path)
        writer.write(b"".join(conn.send_request(id=i, type="trigger.nudge", body={}) for i in range(1, FLOOD + 1)))
        await asyncio.sleep(0.1)
        client = MessengerClient(endpoint=endpoint, key=KEY, run_dir=run_dir, request_timeout=30)
        await client.request("ping")
        began = time.perf_counter()
        await client.request("runner.run")
        print(f"{FLOOD} pipelined requests on another connection: a request needing the shared thread waited "
              f"{(time.perf_counter() - began) * 1000:.0f} ms")
        await client.close()
        writer.close()
    finally:
        await server.close()


if __name__ == "__main__":
    asyncio.run(main())
