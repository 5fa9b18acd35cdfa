"""Benchmark: the messenger in the product's shape, beside the raw asyncio echo, same transport, same run.

Run `.venv/bin/python bench/messenger_product.py [--quick] [--transport unix|tcp|both] [--uvloop]`.

bench/messenger.py measures 512-byte messages; the product sends other shapes (issue 16, item 4):

- status batches: the service's status hub sends a web process batches of up to 500 log events (~200 bytes of
  JSON each) as one stream item. Ours streams batches of 1, 50 and 500 `LOG_EVENT`s through `status.subscribe`;
  the raw reference (the length-prefixed asyncio.Protocol echo of bench/messenger.py) pumps frames of the same
  encoded size, without JSON or crypto. Events/s, median of blocks, the two taking turns block by block.
- nudges from many processes: every web process (daphne) sends `trigger.nudge` over its own connection. Here
  NUDGE_PROCESSES client processes each send small requests (`{"id": n}`, to the bench server's inline echo:
  the messenger's part of a nudge, without the service's database work) one after another on their own
  MessengerClient, all at once against one server; the reference is the same processes against the raw echo.
  Requests/s over all processes and the p50/p99 of one request.

The servers are bench/messenger.py's (one process each); the report has the same shape and ends with the count
of targets met.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from bench.messenger import (  # noqa: E402
    BLOCKS,
    HEADER_BYTES,
    LOG_EVENT,
    RawClientProtocol,
    Report,
    Row,
    ServerProcess,
    ServerSpec,
    Target,
    Worker,
    latency,
    open_connection,
    ours_client,
    run_loop,
    status_batch,
    stream_request,
    us,
)

# Events per status batch: one (a quiet service), 50, and the hub's maximum (BATCH_MAX_EVENTS in indexer/status.py).
BATCH_SIZES = (1, 50, 500)
# Web processes nudging at once: a large deployment's daphne processes on one machine or several.
NUDGE_PROCESSES = 8
NUDGE_BODY = {"id": 123_456}
RAW_NUDGE = b"E" + json.dumps(NUDGE_BODY).encode()
RAW_NUDGE_FRAME = len(RAW_NUDGE).to_bytes(HEADER_BYTES, "big") + RAW_NUDGE


@dataclass(frozen=True, kw_only=True)
class Settings:
    events_per_block: int  # status events per block, per batch size
    nudges: int  # per process
    transports: tuple[str, ...]
    use_uvloop: bool


# --- status batches ---


def batch_bytes(events: int) -> int:
    """The encoded size of a batch of `events` (what the raw reference sends per frame)."""
    return len(json.dumps(status_batch(events), separators=(",", ":")))


async def ours_batches(target: Target, workdir: str, events: int, batches: int) -> float:
    """Seconds to receive `batches` status batches of `events` events over one subscription."""
    client = ours_client(target, workdir)
    try:
        await client.request("ping", {})
        started = time.perf_counter()
        received = 0
        async with client.subscribe("status.subscribe", {"count": batches, "events": events}) as items:
            async for item in items:
                received += len(item["events"])
        elapsed = time.perf_counter() - started
    finally:
        await client.close()
    if received != events * batches:
        raise RuntimeError(f"ours: {received} of {events * batches} events arrived")
    return elapsed


async def raw_batches(target: Target, events: int, batches: int) -> float:
    transport, protocol = await open_connection(RawClientProtocol, target)
    assert isinstance(protocol, RawClientProtocol)
    try:
        started = time.perf_counter()
        transport.write(stream_request(batches, batch_bytes(events)))  # type: ignore[attr-defined]
        for _ in range(batches):
            await protocol.next_payload()
        return time.perf_counter() - started
    finally:
        transport.close()


async def batch_rows(report: Report, transport: str, servers: dict[str, ServerProcess], workdir: str,
                     settings: Settings) -> None:
    for events in BATCH_SIZES:
        batches = max(settings.events_per_block // events, 1)
        rates: dict[str, list[float]] = {"ours": [], "raw": []}
        for _ in range(BLOCKS):
            ours_seconds = await ours_batches(servers["ours"].target, workdir, events, batches)
            rates["ours"].append(events * batches / ours_seconds)
            raw_seconds = await raw_batches(servers["raw-protocol"].target, events, batches)
            rates["raw"].append(events * batches / raw_seconds)
        ours, raw = statistics.median(rates["ours"]), statistics.median(rates["raw"])
        size = batch_bytes(events)
        report.add(Row(
            name=f"[{transport}] status batches of {events} events ({size:,} B) vs raw Protocol echo, same bytes",
            ours=f"{ours:,.0f} events/s", reference=f"{raw:,.0f} events/s", ratio=ours / raw))


# --- nudges from many processes ---


@dataclass(frozen=True, kw_only=True)
class NudgeSpec:
    kind: str  # "ours" | "raw-protocol"
    target: Target
    workdir: str
    count: int
    use_uvloop: bool


def nudger(spec: NudgeSpec, pipe: Pipe) -> None:
    """Client process: connect, say ready, and on "go" send `count` nudges one after another; reply the samples."""
    run_loop(_nudger(spec, pipe), spec.use_uvloop)


async def _nudger(spec: NudgeSpec, pipe: Pipe) -> None:
    if spec.kind == "ours":
        client = ours_client(spec.target, spec.workdir)
        await client.request("ping", NUDGE_BODY)

        async def once() -> None:
            await client.request("ping", NUDGE_BODY)  # the bench server's echo: the messenger's part of a nudge
    else:
        transport, protocol = await open_connection(RawClientProtocol, spec.target)
        assert isinstance(protocol, RawClientProtocol)

        async def once() -> None:
            transport.write(RAW_NUDGE_FRAME)  # type: ignore[attr-defined]
            await protocol.next_payload()
    pipe.send("ready")
    pipe.recv()  # "go"
    clock = time.perf_counter_ns
    samples = []
    for _ in range(spec.count):
        started = clock()
        await once()
        samples.append(clock() - started)
    pipe.send(samples)
    pipe.recv()  # "stop"


def nudge_run(kind: str, target: Target, workdir: str, settings: Settings) -> tuple[float, list[int]]:
    """All NUDGE_PROCESSES nudging at once: (requests/s over all, every sample in ns)."""
    workers = [Worker(nudger, NudgeSpec(kind=kind, target=target, workdir=workdir, count=settings.nudges,
                                        use_uvloop=settings.use_uvloop), f"nudger-{kind}-{i}")
               for i in range(NUDGE_PROCESSES)]
    try:
        with ThreadPoolExecutor(len(workers)) as pool:  # "go" to all at once
            started = time.perf_counter()
            results = list(pool.map(lambda worker: worker.ask("go"), workers))
            elapsed = time.perf_counter() - started
    finally:
        for worker in workers:
            worker.stop()
    samples = [sample for result in results for sample in result]
    return len(samples) / elapsed, samples


def nudge_rows(report: Report, transport: str, servers: dict[str, ServerProcess], workdir: str,
               settings: Settings) -> None:
    rates: dict[str, list[float]] = {"ours": [], "raw-protocol": []}
    samples: dict[str, list[int]] = {"ours": [], "raw-protocol": []}
    for _ in range(3):  # alternating runs
        for kind in rates:
            rate, values = nudge_run(kind, servers[kind].target, workdir, settings)
            rates[kind].append(rate)
            samples[kind] += values
    ours, raw = latency(samples["ours"]), latency(samples["raw-protocol"])
    name = f"[{transport}] nudges from {NUDGE_PROCESSES} processes at once"
    ours_rate, raw_rate = statistics.median(rates["ours"]), statistics.median(rates["raw-protocol"])
    report.add(Row(name=f"{name}, requests/s", ours=f"{ours_rate:,.0f}/s", reference=f"{raw_rate:,.0f}/s",
                   ratio=ours_rate / raw_rate))
    report.add(Row(name=f"{name}, p50", ours=us(ours.p50_us), reference=us(raw.p50_us), ratio=ours.p50_us / raw.p50_us))
    report.add(Row(name=f"{name}, p99", ours=us(ours.p99_us), reference=us(raw.p99_us), ratio=ours.p99_us / raw.p99_us))


# --- driver ---


def servers_for(transport: str, workdir: str, settings: Settings) -> dict[str, ServerProcess]:
    servers: dict[str, ServerProcess] = {}
    try:
        for kind in ("ours", "raw-protocol"):
            servers[kind] = ServerProcess(ServerSpec(kind=kind, transport=transport, workdir=workdir,
                                                     use_uvloop=settings.use_uvloop))
    except BaseException:
        for server in servers.values():
            server.stop()
        raise
    return servers


async def bench(settings: Settings) -> Report:
    report = Report()
    for transport in settings.transports:
        with tempfile.TemporaryDirectory(prefix="messenger-product-") as workdir:
            servers = servers_for(transport, workdir, settings)
            try:
                await batch_rows(report, transport, servers, workdir, settings)
                await asyncio.to_thread(nudge_rows, report, transport, servers, workdir, settings)
            finally:
                for server in servers.values():
                    server.stop()
    return report


def parse_args(argv: list[str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: fewer events and nudges")
    parser.add_argument("--transport", choices=("unix", "tcp", "both"), default="both")
    parser.add_argument("--uvloop", action="store_true", help="run uvloop on both sides")
    args = parser.parse_args(argv)
    return Settings(
        events_per_block=5_000 if args.quick else 50_000,
        nudges=200 if args.quick else 2_000,
        transports=("unix", "tcp") if args.transport == "both" else (args.transport,),
        use_uvloop=args.uvloop,
    )


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(argv)
    started = time.perf_counter()
    print(f"messenger product-shape bench: status batches of {BATCH_SIZES} events of "
          f"{len(json.dumps(LOG_EVENT, separators=(',', ':')))} B, {NUDGE_PROCESSES} nudging processes, "
          f"{'uvloop' if settings.use_uvloop else 'asyncio'} event loop, {os.cpu_count()} CPUs", flush=True)
    report: Any = run_loop(bench(settings), settings.use_uvloop)
    print(report.render())
    print(f"({time.perf_counter() - started:.0f} s)")
    print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
