"""Soak: a real MessengerServer in its own process under a long run of messages and connection churn; flat or not.

Run `.venv/bin/python bench/soak.py [--messages 1000000] [--connections 10000] [--transport unix|tcp|both]`.

What happens, per transport (a Unix socket, TCP loopback):

- a fresh server process (multiprocessing, spawn) runs `MessengerServer` with a `ping` handler; this process is
  the client side. Samples of the server's VmRSS (/proc/PID/status) and open file descriptors
  (/proc/PID/fd) are taken before any client connects ("baseline"), after a warm-up ("warm"), after every
  10% of the run, and once every connection is closed ("after");
- `--messages` requests (`ping` with a small body) go over `--persistent` long-lived MessengerClient
  connections, `--concurrency` requests in flight on each;
- `--connections` short connections are opened and closed (handshake + one ping + close, what
  `messenger.client.call` does), `--churn-concurrency` at a time;
- the warm-up is 5% of each (not counted in the rates). Each tenth of the run does its messages, then its
  connections, so messages/s and connections/s are measured separately.

Flat means: RSS after the warm-up never exceeds the warm sample by more than `--rss-bound-mb` (MB = 10^6 bytes),
and the fd count after the run is back to the baseline. The server's own counters must agree: one handshake per
connection, no rejects, at least one frame in per request. The exit code is 1 if any check fails.
tests/soak/test_soak.py runs this at a bounded size in CI.
"""
from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from contextlib import suppress
from dataclasses import dataclass, field
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from messenger.client import MessengerClient  # noqa: E402
from messenger.endpoint import Endpoint, parse_endpoint  # noqa: E402
from messenger.server import MessengerServer, RequestContext  # noqa: E402

KEY = bytes(range(32))
PIPE_NAME = "soak"
# A body like a small real request; the reply echoes it.
BODY = {"n": 0, "note": "soak"}
# RSS growth allowed after the warm-up (MB = 10^6 bytes): a leak of even 10 bytes per message shows over 1e6.
RSS_BOUND_MB = 10.0
WARMUP_FRACTION = 0.05
SAMPLES = 10  # one sample after every tenth of the run
SERVER_START_TIMEOUT = 30.0
SERVER_STOP_TIMEOUT = 10.0
# How long the server may take to notice every closed connection and release its fds.
SETTLE_TIMEOUT = 10.0


# ============================================================================================================
# Server side (runs in the child process)
# ============================================================================================================


def ping(body: dict, context: RequestContext) -> dict:
    return {"pong": True, "echo": body}


def serve(transport: str, workdir: str, pipe: Pipe) -> None:
    """Child process entry point: listen, report the address, answer "stats" until "stop" (or the parent is gone)."""
    asyncio.run(_serve(transport, workdir, pipe))


async def _serve(transport: str, workdir: str, pipe: Pipe) -> None:
    server = MessengerServer(key=KEY, handlers={"ping": ping})
    text = f"pipe://{PIPE_NAME}" if transport == "unix" else "tcp://127.0.0.1:0"
    await server.start(parse_endpoint(text, allow_port_zero=True), run_dir=Path(workdir))
    pipe.send(f"pipe://{PIPE_NAME}" if transport == "unix" else server.address)
    loop = asyncio.get_running_loop()
    try:
        while True:
            readable = loop.create_future()
            loop.add_reader(pipe.fileno(), lambda f=readable: f.done() or f.set_result(None))
            try:
                await readable
            finally:
                loop.remove_reader(pipe.fileno())
            try:
                command = pipe.recv()
            except EOFError:
                return
            if command == "stop":
                return
            if command == "stats":
                pipe.send(server.stats.as_dict())
    finally:
        await server.close()


class ServerProcess:
    """The server in a fresh interpreter (spawn), driven over a pipe."""

    def __init__(self, transport: str, workdir: str) -> None:
        self._pipe, child_pipe = multiprocessing.Pipe()
        context = multiprocessing.get_context("spawn")
        self._process = context.Process(target=serve, args=(transport, workdir, child_pipe), daemon=True,
                                        name=f"soak-server-{transport}")
        self._process.start()
        child_pipe.close()
        if not self._pipe.poll(SERVER_START_TIMEOUT):
            self.stop()
            raise RuntimeError(f"the soak server did not start within {SERVER_START_TIMEOUT:g} s")
        self.endpoint: Endpoint = parse_endpoint(self._pipe.recv())

    @property
    def pid(self) -> int:
        assert self._process.pid is not None
        return self._process.pid

    def stats(self) -> dict[str, Any]:
        self._pipe.send("stats")
        return self._pipe.recv()

    def stop(self) -> None:
        with suppress(OSError):
            self._pipe.send("stop")
        self._process.join(SERVER_STOP_TIMEOUT)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join()
        self._pipe.close()


# ============================================================================================================
# Client side (this process)
# ============================================================================================================


def rss_bytes(pid: int | str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/PID/status")


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@dataclass(frozen=True)
class Sample:
    label: str
    messages: int  # done so far (warm-up included)
    connections: int
    rss: int  # server VmRSS, bytes
    fds: int  # server open fds
    client_rss: int  # this process's VmRSS, bytes


@dataclass
class SoakResult:
    transport: str
    messages: int
    connections: int
    samples: list[Sample] = field(default_factory=list)
    message_seconds: float = 0.0
    connection_seconds: float = 0.0
    stats: dict[str, Any] = field(default_factory=dict)
    rss_bound: int = int(RSS_BOUND_MB * 1e6)
    failures: list[str] = field(default_factory=list)

    @property
    def messages_per_second(self) -> float:
        return self.messages / self.message_seconds if self.message_seconds else 0.0

    @property
    def connections_per_second(self) -> float:
        return self.connections / self.connection_seconds if self.connection_seconds else 0.0

    def sample(self, label: str) -> Sample:
        return next(s for s in self.samples if s.label == label)

    @property
    def rss_growth(self) -> int:
        """Highest server RSS after the warm-up minus the warm sample."""
        warm = self.sample("warm")
        after_warm = self.samples[self.samples.index(warm):]
        return max(s.rss for s in after_warm) - warm.rss

    @property
    def ok(self) -> bool:
        return not self.failures


class Load:
    """The client side: persistent connections carrying requests, and churned short connections."""

    def __init__(self, endpoint: Endpoint, run_dir: Path, *, persistent: int, concurrency: int,
                 churn_concurrency: int) -> None:
        self.endpoint = endpoint
        self.run_dir = run_dir
        self.concurrency = concurrency
        self.churn_concurrency = churn_concurrency
        self.clients = [self._client() for _ in range(persistent)]
        self.messages = 0
        self.connections = 0

    def _client(self) -> MessengerClient:
        return MessengerClient(endpoint=self.endpoint, key=KEY, run_dir=self.run_dir, request_timeout=30.0,
                               connect_timeout=10.0)

    async def send_messages(self, count: int) -> None:
        workers = [(client, n) for client in self.clients for n in range(self.concurrency)]
        share, extra = divmod(count, len(workers))

        async def worker(client: MessengerClient, todo: int) -> None:
            body = dict(BODY)
            for _ in range(todo):
                body["n"] += 1
                reply = await client.request("ping", body)
                assert reply["pong"] is True, reply

        await asyncio.gather(*(worker(client, share + (i < extra)) for i, (client, _) in enumerate(workers)))
        self.messages += count

    async def churn(self, count: int) -> None:
        remaining = iter(range(count))

        async def worker() -> None:
            for _ in remaining:
                client = self._client()
                try:
                    assert (await client.request("ping"))["pong"] is True
                finally:
                    await client.close()

        await asyncio.gather(*(worker() for _ in range(min(self.churn_concurrency, count))))
        self.connections += count

    async def close(self) -> None:
        for client in self.clients:
            await client.close()


async def _soak(server: ServerProcess, result: SoakResult, run_dir: Path, *, persistent: int, concurrency: int,
                churn_concurrency: int, progress: bool) -> None:
    load = Load(server.endpoint, run_dir, persistent=persistent, concurrency=concurrency,
                churn_concurrency=churn_concurrency)

    def take(label: str) -> None:
        sample = Sample(label, load.messages, load.connections, rss_bytes(server.pid), fd_count(server.pid),
                        rss_bytes("self"))
        result.samples.append(sample)
        if progress:
            print(f"  {result.transport} {label:>8}: {sample.messages:>9,} msgs {sample.connections:>7,} conns "
                  f"RSS {sample.rss / 1e6:6.1f} MB  fds {sample.fds}", file=sys.stderr, flush=True)

    take("baseline")
    try:
        await load.send_messages(max(1, int(result.messages * WARMUP_FRACTION)))
        await load.churn(max(1, int(result.connections * WARMUP_FRACTION)))
        take("warm")
        for tenth in range(1, SAMPLES + 1):
            messages = result.messages * tenth // SAMPLES - result.messages * (tenth - 1) // SAMPLES
            connections = result.connections * tenth // SAMPLES - result.connections * (tenth - 1) // SAMPLES
            started = time.perf_counter()
            await load.send_messages(messages)
            result.message_seconds += time.perf_counter() - started
            started = time.perf_counter()
            await load.churn(connections)
            result.connection_seconds += time.perf_counter() - started
            take(f"{tenth * 100 // SAMPLES}%")
    finally:
        await load.close()
    # Every connection is closed on our side: wait until the server has let go of all of them.
    baseline_fds = result.sample("baseline").fds
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while time.monotonic() < deadline:
        if server.stats()["connections_open"] == 0 and fd_count(server.pid) <= baseline_fds:
            break
        await asyncio.sleep(0.05)
    take("after")
    result.stats = server.stats()
    warmup = (load.messages - result.messages, load.connections - result.connections)
    _check(result, warmup_messages=warmup[0], warmup_connections=warmup[1], persistent=persistent)


def _check(result: SoakResult, *, warmup_messages: int, warmup_connections: int, persistent: int) -> None:
    stats, failures = result.stats, result.failures
    if result.rss_growth > result.rss_bound:
        failures.append(f"server RSS grew by {result.rss_growth / 1e6:.1f} MB after the warm-up "
                        f"(bound {result.rss_bound / 1e6:.1f} MB)")
    baseline, after = result.sample("baseline").fds, result.sample("after").fds
    if after != baseline:
        failures.append(f"server fds not back to the baseline: {after} after, {baseline} before")
    connections = persistent + warmup_connections + result.connections
    if stats["handshakes_ok"] != connections or stats["connections_total"] != connections:
        failures.append(f"expected {connections} handshakes/connections, the server counted "
                        f"{stats['handshakes_ok']}/{stats['connections_total']}")
    if stats["rejects"]:
        failures.append(f"the server rejected peers: {stats['rejects']}")
    requests = warmup_messages + result.messages + warmup_connections + result.connections
    if stats["frames_in"] < requests or stats["frames_out"] < requests:
        failures.append(f"expected at least {requests} frames each way, the server counted "
                        f"{stats['frames_in']} in / {stats['frames_out']} out")
    if stats["connections_open"] != 0:
        failures.append(f"{stats['connections_open']} connections still open on the server after the run")


def raise_nofile_limit(wanted: int = 8192) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        limit = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))


def soak(transport: str, *, messages: int, connections: int, persistent: int = 4, concurrency: int = 8,
         churn_concurrency: int = 8, rss_bound_mb: float = RSS_BOUND_MB, progress: bool = False) -> SoakResult:
    """One soak run against a fresh server process on `transport` ("unix" or "tcp")."""
    raise_nofile_limit()
    result = SoakResult(transport, messages, connections, rss_bound=int(rss_bound_mb * 1e6))
    with tempfile.TemporaryDirectory(prefix="proget-soak-") as workdir:
        run_dir = Path(workdir) / "run"
        server = ServerProcess(transport, str(run_dir))
        try:
            asyncio.run(_soak(server, result, run_dir, persistent=persistent, concurrency=concurrency,
                              churn_concurrency=churn_concurrency, progress=progress))
        finally:
            server.stop()
    return result


def report(results: list[SoakResult]) -> str:
    """The printed table: rates, then every RSS/fd sample."""
    lines = [f"{'transport':<9} {'messages':>10} {'msgs/s':>9} {'connections':>11} {'conns/s':>8} "
             f"{'RSS warm MB':>11} {'RSS max MB':>10} {'growth MB':>9} {'fds base/after':>14}  result"]
    for r in results:
        warm = r.sample("warm").rss
        lines.append(
            f"{r.transport:<9} {r.messages:>10,} {r.messages_per_second:>9,.0f} {r.connections:>11,} "
            f"{r.connections_per_second:>8,.0f} {warm / 1e6:>11.1f} {max(s.rss for s in r.samples) / 1e6:>10.1f} "
            f"{r.rss_growth / 1e6:>+9.1f} {r.sample('baseline').fds:>6}/{r.sample('after').fds:<7}  "
            f"{'flat' if r.ok else 'FAIL'}")
    for r in results:
        lines.append("")
        lines.append(f"{r.transport}: server samples (client = this process)")
        lines.append(f"{'sample':>8} {'messages':>10} {'connections':>11} {'RSS MB':>7} {'fds':>4} "
                     f"{'client RSS MB':>13}")
        for s in r.samples:
            lines.append(f"{s.label:>8} {s.messages:>10,} {s.connections:>11,} {s.rss / 1e6:>7.1f} {s.fds:>4} "
                         f"{s.client_rss / 1e6:>13.1f}")
        lines.append(f"server counters: {r.stats}")
        lines += [f"FAIL: {failure}" for failure in r.failures]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--transport", choices=["unix", "tcp", "both"], default="both")
    parser.add_argument("--persistent", type=int, default=4, help="long-lived connections carrying the messages")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight per persistent connection")
    parser.add_argument("--churn-concurrency", type=int, default=8, help="short connections open at a time")
    parser.add_argument("--rss-bound-mb", type=float, default=RSS_BOUND_MB)
    args = parser.parse_args()
    transports = ["unix", "tcp"] if args.transport == "both" else [args.transport]
    started = time.perf_counter()
    results = [
        soak(transport, messages=args.messages, connections=args.connections, persistent=args.persistent,
             concurrency=args.concurrency, churn_concurrency=args.churn_concurrency, rss_bound_mb=args.rss_bound_mb,
             progress=True)
        for transport in transports
    ]
    print(report(results))
    print(f"\nflat (RSS growth after warm-up <= {args.rss_bound_mb:g} MB, fds back to baseline): "
          f"{'yes' if all(r.ok for r in results) else 'NO'}; total {time.perf_counter() - started:.0f} s")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
