"""How much database latency a lease timing profile tolerates: two service nodes reach PostgreSQL through a proxy
that delays every packet by D seconds each way, while triggers stream in; per D, the needless failovers and
step-downs, the runs refused at the primary gate, and the triggers run twice (which fencing must keep at 0).

Needs DATABASE_URL (PostgreSQL: a fresh database is created on that server, migrated, and dropped afterwards).
Per delay: both service nodes (svc-a 127.0.0.2, svc-b 127.0.0.3, `tcp://*:PORT`, the test slow runner with 0.2 s
runs) start on the delayed connection, svc-a first; this process requests a `runner.run` trigger every 0.3 s for
--seconds through `trigger_request` (its own database connection is not delayed); then every trigger must finish.
Between delays the tables are emptied and the nodes started afresh.

Printed per delay: failovers after the first primary, step-down lines, gate refusals ("not started"), triggers
done / failed / left unfinished after a 30 s drain (informational: at 0.1 s each way the service's database work,
one thread, no longer keeps up with 3 triggers/s, whatever the lease does), triggers started twice. Targets: none
started twice at any delay; up to the profile's documented tolerance (0.05 s each way for fast, 0.25 s for
default) no failover and no step-down. A report: always exits 0 and ends with `targets met: X/Y`.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python bench/lease_latency.py [--profile fast|default] [--delays 0,0.1,0.25,0.5] [--seconds 20]
"""
from __future__ import annotations

import argparse
import heapq
import itertools
import os
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.nodes import fresh_database, load_average  # noqa: E402
from tests.processes import ServiceProcess, free_port, manage  # noqa: E402

HOST = "127.0.0.1"
SERVICE_IPS = {"svc-a": "127.0.0.2", "svc-b": "127.0.0.3"}
SLOW_RUNNER = "tests.indexer.slow_runner.SlowRunner"
PRODUCE_INTERVAL = 0.3
# (HeartbeatSeconds, FailoverStaleSeconds, the one-way delay up to which no failover may happen), per profile.
PROFILES = {"default": (3, 10, 0.25), "fast": (1, 3, 0.05)}
DRAIN_TIMEOUT = 30.0
TABLES = "indexer_trigger, indexer_servicelease, indexer_failover, indexer_node, indexer_runnerrecord"


class DelayProxy:
    """A TCP proxy to `target` that holds every chunk `delay` seconds in each direction: latency, not bandwidth."""

    def __init__(self, target: tuple[str, int], delay: float) -> None:
        self.target, self.delay = target, delay
        self.listener = socket.create_server((HOST, 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            upstream = socket.create_connection(self.target)
            for source, sink in ((client, upstream), (upstream, client)):
                self._direction(source, sink)

    def _direction(self, source: socket.socket, sink: socket.socket) -> None:
        """One reader stamping each chunk with when it may go, one writer sending it then (order kept)."""
        due: list[tuple[float, int, bytes]] = []
        ready = threading.Condition()
        order = itertools.count()

        def read() -> None:
            try:
                while data := source.recv(65536):
                    with ready:
                        heapq.heappush(due, (time.monotonic() + self.delay, next(order), data))
                        ready.notify()
            except OSError:
                pass
            with ready:
                heapq.heappush(due, (time.monotonic() + self.delay, next(order), b""))
                ready.notify()

        def write() -> None:
            while True:
                with ready:
                    while not due:
                        ready.wait()
                    at, _, data = due[0]
                    wait = at - time.monotonic()
                    if wait > 0:
                        ready.wait(wait)
                        continue
                    heapq.heappop(due)
                try:
                    if not data:
                        sink.shutdown(socket.SHUT_WR)
                        return
                    sink.sendall(data)
                except OSError:
                    return

        threading.Thread(target=read, daemon=True).start()
        threading.Thread(target=write, daemon=True).start()

    def close(self) -> None:
        self.listener.close()


def _through(url: str, port: int) -> str:
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@{HOST}:{port}" if credentials else f"{HOST}:{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def one_delay(scratch: Path, url: str, port: int, delay: float, seconds: float) -> dict:
    """Both nodes on a connection delayed by `delay` each way, triggers for `seconds`; what happened."""
    import psycopg

    from indexer.models import Trigger
    from indexer.trigger_requests import trigger_request

    with psycopg.connect(url) as db:
        db.execute(f"TRUNCATE {TABLES} RESTART IDENTITY")
    parts = urlsplit(url)
    proxy = DelayProxy((parts.hostname or HOST, parts.port or 5432), delay)
    round_dir = scratch / f"delay-{delay:g}"
    round_dir.mkdir(mode=0o700)
    run_log = round_dir / "runs.log"
    nodes = {}
    try:
        for name in SERVICE_IPS:
            data_dir = round_dir / name
            data_dir.mkdir(mode=0o700)
            nodes[name] = ServiceProcess(
                data_dir, DATABASE_URL=_through(url, proxy.port), PROGET_NODE_NAME=name,
                PROGET_NODE_IP=SERVICE_IPS[name], PROGET_EXTRA_RUNNERS=SLOW_RUNNER, PROGET_TEST_RUN_LOG=str(run_log),
                PROGET_TEST_RUN_SECONDS="0.2")

            def listening(ip: str = SERVICE_IPS[name]) -> bool:
                with socket.socket() as probe:
                    return probe.connect_ex((ip, port)) == 0

            nodes[name].start(ready=listening)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            trigger_request(kind=Trigger.Kind.RUNNER_RUN, target="Test Slow", requested_by="bench-lease-latency")
            time.sleep(PRODUCE_INTERVAL)
        drain = time.monotonic() + DRAIN_TIMEOUT
        while Trigger.objects.filter(state__in=[Trigger.State.PENDING, Trigger.State.RUNNING]).exists():
            if time.monotonic() > drain:
                break
            time.sleep(0.2)
        states = Counter(Trigger.objects.values_list("state", flat=True))
        with psycopg.connect(url) as db:
            failovers = db.execute("SELECT count(*) FROM indexer_failover").fetchone()[0]
    finally:
        for node in nodes.values():  # measured: no clean stop needed (one takes minutes on a slow database)
            if node.process is not None and node.process.poll() is None:
                node.kill()
        proxy.close()
    logs = "".join(node.log.read_text() for node in nodes.values())
    lines = run_log.read_text().splitlines() if run_log.exists() else []
    started = Counter(line.split()[0] for line in lines if not line.startswith("-"))
    return {
        "delay": delay,
        "failovers": max(failovers - 1, 0),  # the first primary's takeover is not a failover
        "step_downs": logs.count("steps down from primary"),
        "refused": logs.count(" not started: "),
        "done": states.get("done", 0),
        "failed": states.get("failed", 0),
        "unfinished": states.get("pending", 0) + states.get("running", 0),
        "twice": sum(1 for count in started.values() if count > 1),
    }


def report(rows: list[dict], *, profile: str) -> None:
    heartbeat, stale, tolerance = PROFILES[profile]
    print(f"Lease under database latency: HeartbeatSeconds {heartbeat}, FailoverStaleSeconds {stale} ({profile}); "
          f"both service nodes' database connections delayed by D each way; load average {load_average()}")
    header = (f"{'D (s)':>6} {'failovers':>9} {'step-downs':>10} {'refused':>8} {'done':>5} {'failed':>6} "
              f"{'unfinished':>10} {'twice':>5}")
    print(header)
    print("-" * len(header))
    for row in rows:
        print(f"{row['delay']:>6g} {row['failovers']:>9} {row['step_downs']:>10} {row['refused']:>8} {row['done']:>5} "
              f"{row['failed']:>6} {row['unfinished']:>10} {row['twice']:>5}")
    print()
    tolerated = [row for row in rows if row["delay"] <= tolerance]
    checks = [
        ("no trigger started twice at any delay", all(row["twice"] == 0 for row in rows)),
        (f"up to {tolerance:g} s each way: no failover, no step-down",
         all(row["failovers"] == 0 and row["step_downs"] == 0 for row in tolerated)),
    ]
    for text, ok in checks:
        print(f"{text}: {'met' if ok else 'NOT met'}")
    print(f"targets met: {sum(ok for _, ok in checks)}/{len(checks)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="fast")
    parser.add_argument("--delays", default="0,0.1,0.25,0.5", help="one-way delays in seconds, comma-separated")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long triggers stream in per delay")
    args = parser.parse_args()
    delays = [float(value) for value in args.delays.split(",") if value.strip()]
    if not delays or min(delays) < 0 or args.seconds <= 0:
        parser.error("--delays must be non-negative numbers, --seconds positive")
    with tempfile.TemporaryDirectory(prefix="bench-lease-latency-") as scratch_dir:
        scratch = Path(scratch_dir)
        with fresh_database(os.environ.get("DATABASE_URL", ""), scratch=scratch, prefix="proget_bench_latency") as url:
            os.environ.update(DATABASE_URL=url, PROGET_DATA_DIR=str(scratch / "bench"),
                              DJANGO_SETTINGS_MODULE="proget_web.settings")
            import django

            django.setup()
            from django.db import connections

            port = free_port(SERVICE_IPS["svc-a"])
            heartbeat, stale, _ = PROFILES[args.profile]
            for name, value in (("Service.MessengerEndpoint", f"tcp://*:{port}"),
                                ("Service.HeartbeatSeconds", heartbeat), ("Service.FailoverStaleSeconds", stale)):
                manage(scratch, "settings", "set", name, str(value), DATABASE_URL=url)
            rows = []
            try:
                for delay in delays:
                    rows.append(one_delay(scratch, url, port, delay, args.seconds))
                    print(f"  {rows[-1]}", file=sys.stderr, flush=True)
            finally:
                connections.close_all()
    report(rows, profile=args.profile)


if __name__ == "__main__":
    main()
