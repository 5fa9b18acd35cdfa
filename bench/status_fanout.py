"""Status fan-out: N live viewers of the Service Status page on one web process, while the service logs ~200 lines/s.

Starts, on a temp data dir, a real `runindexer` (with bench/log_runner.py loaded through the documented extension
point PROGET_EXTRA_RUNNERS) and a real daphne, logs in once over HTTP (CSRF token + session cookie, reused by every
viewer), and for each N in --viewers opens N WebSockets on `ws/administration/service` (bench/wsclient.py, all in
this process). Then it runs the "Bench Log" runner, which logs --rate INFO lines/s for --seconds through the
service's normal logging, so through its status hub, its one status stream to the web process, the web's Channels
group, and out to every viewer. Per N it reports:

- delivery latency p50/p99/max: the log event's `at` (the record's creation time in the service) to the moment its
  WebSocket message's bytes arrived at the viewer (same machine, same clock), over every (viewer, line) pair;
- delivered: bench lines received as `events` / (lines logged x N) (a flood may legitimately turn into a snapshot);
- messenger bytes service->web: the delta of the service's own `bytes_out` counter (status.snapshot ->
  service.messenger.bytes_out) over the window. It includes a constant few KB of the bench's own requests and the
  web link's pings; target: bytes at the largest N <= 1.05x bytes at 1 viewer;
- the reference a naive design would cost (one status subscription per viewer): N x bytes at 1 viewer, and our
  ratio against it;
- web RSS: daphne's VmRSS, highest sample during the window (target <= 250 MB at 500 viewers);
- service connections: messenger connections open on the service minus the bench's own (1 = one per web process).

With --web-nodes K (K >= 2; needs DATABASE_URL=postgresql://... and REDIS_URL): K daphne web nodes on a fresh
PostgreSQL database (created on that server, dropped afterwards) and Redis, the service on `tcp://127.0.0.1:PORT`,
the N viewers spread round-robin over the nodes. The figures are then given per web node and in total; the bytes
reference is the row with one viewer per node (K streams), and svc conns should be K.

Targets (at 500 viewers, or the largest N asked for): bytes <= 1.05x bytes at 1 viewer (per node); RSS <= 250 MB
(each node); p99 <= 500 ms. The viewers share this process's event loop (a browser each would not): the client's CPU
share is printed, because a starved client inflates the latencies it measures. The 2-core VM is shared and noisy.
The script is a report: it always exits 0 and ends with `targets met: X/Y`.

    .venv/bin/python bench/status_fanout.py                 # N = 1, 100, 500; 10 s of logging each (~1.5 min)
    .venv/bin/python bench/status_fanout.py --quick         # same N, 2 s each (< 40 s)
    .venv/bin/python bench/status_fanout.py --viewers 1,50 --rate 500 --seconds 5
    DATABASE_URL=postgresql://... REDIS_URL=redis://... .venv/bin/python bench/status_fanout.py --web-nodes 2
"""
from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402

from bench.nodes import cpu_seconds, create_admin, fresh_database, load_average, percentile, raise_nofile, rss_mb  # noqa: E402
from bench.wsclient import HttpSession, WebSocket  # noqa: E402
from messenger.client import MessengerClient  # noqa: E402
from tests.processes import ServiceProcess, free_port, manage, start_daphne, stop  # noqa: E402

if TYPE_CHECKING:  # indexer.messenger_config needs Django set up, which run() does once the database is known
    from indexer.messenger_config import MessengerSettings

HOST = "127.0.0.1"
PASSWORD = "bench-fanout-pw"
SOCKET_PATH = "/ws/administration/service"
LOG_RUNNER = "bench.log_runner.LogRunner"
RUNNER_NAME = "Bench Log"
# The web link keeps the stream open this long after the last viewer (proget_web/status/link.py LINGER_SECONDS).
LINGER_SECONDS = 2.0
CONNECT_CONCURRENCY = 50
# After the last line: the service's 100 ms batch + the web's 100 ms flush + slack.
DRAIN_SECONDS = 1.0
# After new viewers connected: their snapshots and the link's state messages go out before the window.
SETTLE_SECONDS = 0.5
TARGET_BYTES_RATIO = 1.05
TARGET_RSS_MB = 250.0
TARGET_P99_MS = 500.0


class Recorder:
    """What every viewer received: latencies of the bench's log lines, counted once per (viewer, line)."""

    def __init__(self, logger_name: str) -> None:
        self.logger_name = logger_name  # the bench runner's lines, told from everything else the service logs
        self.latencies_ms = array("d")
        self.lines = 0
        self.last_line = time.monotonic()
        self.snapshots = 0
        self.reported_dropped = 0  # the "dropped" counts the web passed on (the service's or its own losses)
        self.recording = False
        self.first_message: set[int] = set()
        # The N viewers get byte-identical messages: parse each distinct payload once.
        self._parsed: dict[bytes, tuple[str, tuple[float, ...]]] = {}

    def reset(self) -> None:
        """Start a new row: forget the previous row's counts (viewers keep their callbacks)."""
        self.latencies_ms = array("d")
        self.lines = self.snapshots = self.reported_dropped = 0
        self.last_line = time.monotonic()

    def callback(self, viewer: int):
        def on_message(payload: bytes, received_at: float) -> None:
            parsed = self._parsed.get(payload)
            if parsed is None:
                message = orjson.loads(payload)
                kind = message.get("type")
                events = (message.get("events") or []) if kind == "events" else []
                ats = tuple(event["at"] for event in events
                            if event.get("type") == "log" and event.get("logger") == self.logger_name)
                parsed = (kind, ats)
                if self.recording and kind == "events":
                    self.reported_dropped += message.get("dropped") or 0
                if len(self._parsed) > 256:
                    self._parsed.clear()
                self._parsed[payload] = parsed
            kind, ats = parsed
            if kind == "snapshot":
                self.first_message.add(viewer)
                if self.recording:
                    self.snapshots += 1
            if self.recording and ats:
                self.lines += len(ats)
                self.last_line = time.monotonic()
                self.latencies_ms.extend([(received_at - at) * 1000 for at in ats])
        return on_message


@dataclass
class Web:
    """One daphne web node and its viewers' recorder."""

    process: subprocess.Popen
    port: int
    recorder: Recorder


async def service_counters(client: MessengerClient) -> tuple[int, int]:
    """(bytes_out, connections_open) of the service's messenger server."""
    snapshot = await client.request("status.snapshot", {"logs": 0}, timeout=10)
    stats = snapshot["service"]["messenger"]
    return stats["bytes_out"], stats["connections_open"]


async def add_viewers(viewers: list[WebSocket], n: int, *, webs: list[Web], cookie: str) -> None:
    """Open viewers until there are `n` (viewer v on web node v mod K), CONNECT_CONCURRENCY handshakes at a time;
    wait for each one's snapshot."""
    limit = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def one(viewer: int) -> WebSocket:
        web = webs[viewer % len(webs)]
        async with limit:
            return await WebSocket.connect(HOST, web.port, SOCKET_PATH, cookie=cookie,
                                           on_message=web.recorder.callback(viewer), timeout=30)

    viewers += await asyncio.gather(*(one(viewer) for viewer in range(len(viewers), n)))
    deadline = time.monotonic() + 30
    while sum(len(web.recorder.first_message) for web in webs) < n and time.monotonic() < deadline:
        await asyncio.sleep(0.05)


def _lines(webs: list[Web]) -> int:
    return sum(web.recorder.lines for web in webs)


async def measure(n: int, args: argparse.Namespace, *, client: MessengerClient, webs: list[Web], cookie: str,
                  plan: Path, viewers: list[WebSocket]) -> dict:
    """Grow `viewers` to `n`, then log for args.seconds and measure, per web node and in total."""
    for web in webs:
        web.recorder.reset()
    started = time.monotonic()
    await add_viewers(viewers, n, webs=webs, cookie=cookie)
    connect_seconds = time.monotonic() - started
    await asyncio.sleep(SETTLE_SECONDS)  # the link's snapshot and link-state messages go out before the window

    bytes_before, connections = await service_counters(client)
    pids = [web.process.pid for web in webs]
    cpu_before, wall_before = time.process_time(), time.monotonic()
    web_cpu_before = [cpu_seconds(pid) for pid in pids]
    for web in webs:
        web.recorder.recording = True
    plan.write_text(f"{args.rate} {args.seconds}")
    reply = await client.request("runner.run", {"name": RUNNER_NAME}, timeout=10)
    if not reply.get("started"):
        raise SystemExit(f"{RUNNER_NAME} did not start: {reply}")
    peak_rss = [rss_mb(pid) for pid in pids]

    def sample() -> None:
        for index, pid in enumerate(pids):
            peak_rss[index] = max(peak_rss[index], rss_mb(pid))

    window_end = time.monotonic() + args.seconds + DRAIN_SECONDS
    while time.monotonic() < window_end:
        await asyncio.sleep(0.25)
        sample()
    wall = time.monotonic() - wall_before
    cpu = (time.process_time() - cpu_before) / wall
    web_cpu = [(cpu_seconds(pid) - before) / wall for pid, before in zip(pids, web_cpu_before, strict=True)]
    bytes_after, _ = await service_counters(client)
    plan.unlink()
    # The byte count is over the fixed window; the viewers keep recording until the last lines have arrived.
    logged = int(args.rate * args.seconds)
    expected = logged * n
    measured_at, give_up = time.monotonic(), time.monotonic() + args.delivery_timeout
    while (_lines(webs) < expected and time.monotonic() < give_up
           and time.monotonic() - max(max(w.recorder.last_line for w in webs), measured_at) < args.quiet_seconds):
        await asyncio.sleep(0.1)
        sample()
    timed_out = _lines(webs) < expected and time.monotonic() >= give_up
    nodes = []
    for index, web in enumerate(webs):
        web.recorder.recording = False
        mine = range(index, n, len(webs))
        nodes.append({
            "n": len(mine), "latencies": web.recorder.latencies_ms,
            "delivered": web.recorder.lines / (logged * len(mine)) if len(mine) else float("nan"),
            "snapshots": web.recorder.snapshots, "reported_dropped": web.recorder.reported_dropped,
            "rss": peak_rss[index], "web_cpu": web_cpu[index],
            "closed": sum(1 for viewer in mine if viewers[viewer].closed.done()),
        })
    latencies = array("d")
    for node in nodes:
        latencies.extend(node["latencies"])
    return {
        "n": n, "connect_seconds": connect_seconds, "latencies": latencies, "delivered": _lines(webs) / expected,
        "snapshots": sum(node["snapshots"] for node in nodes),
        "reported_dropped": sum(node["reported_dropped"] for node in nodes),
        "bytes": bytes_after - bytes_before, "rss": max(peak_rss), "web_connections": connections - 1,
        "client_cpu": cpu, "timed_out": timed_out, "web_cpu": sum(web_cpu),
        "closed": sum(node["closed"] for node in nodes), "nodes": nodes,
    }


async def measure_all(args: argparse.Namespace, *, webs: list[Web], cookie: str, plan: Path,
                      config: MessengerSettings) -> list[dict]:
    client = MessengerClient(endpoint=config.endpoint, key=config.key, run_dir=config.run_dir)
    viewers: list[WebSocket] = []
    try:
        results = []
        for n in args.viewers:
            results.append(await measure(n, args, client=client, webs=webs, cookie=cookie, plan=plan,
                                         viewers=viewers))
            print(f"  measured {n} viewer(s)", file=sys.stderr, flush=True)
        for viewer in viewers:
            viewer.close()
        # The links close their streams LINGER_SECONDS after the last viewer left (later if daphne is still busy).
        left = time.monotonic()
        await asyncio.sleep(LINGER_SECONDS)
        while (connections := (await service_counters(client))[1] - 1) > 0 and time.monotonic() - left < 30:
            await asyncio.sleep(0.5)
        results[-1]["web_connections_after"] = connections
        results[-1]["stream_closed_after"] = time.monotonic() - left
        return results
    finally:
        await client.close()


def _row(label: str, r: dict, *, connect: str, naive: float | None, extra: str) -> str:
    lat = r["latencies"]
    naive_text = f"{naive:>12,.0f} {r['bytes'] / naive:>10.3f}" if naive else f"{'-':>12} {'-':>10}"
    bytes_text = f"{r['bytes']:>14,}" if "bytes" in r else f"{'-':>14}"
    return (f"{label:>7} {connect:>9} {r['delivered']:>9.1%} "
            f"{statistics.median(lat) if lat else float('nan'):>8.1f} {percentile(lat, 0.99):>8.1f} "
            f"{max(lat) if lat else float('nan'):>8.1f} {bytes_text} {naive_text} {r['rss']:>10.1f} {extra}")


def report(results: list[dict], args: argparse.Namespace, idle_rss: list[float]) -> None:
    k = args.web_nodes
    by_n = {result["n"]: result for result in results}
    base = by_n.get(k) or results[0]
    base_per_viewer = base["bytes"] / base["n"]
    where = "one daphne" if k == 1 else f"{k} daphne web nodes (PostgreSQL + Redis, messenger over TCP)"
    print(f"Status page fan-out: {where}, one runindexer, {args.rate:g} log lines/s for {args.seconds:g} s per row "
          f"(+{DRAIN_SECONDS:g} s drain); load average {load_average()}")
    print("latency = log record created in the service -> its WebSocket message arrives at the viewer")
    header = (f"{'viewers':>7} {'connect s':>9} {'delivered':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
              f"{'svc->web bytes':>14} {'naive N x 1':>12} {'ours/naive':>10} {'web RSS MB':>10} {'svc conns':>9} "
              f"{'web CPU':>8} {'client CPU':>10}")
    print(header)
    print("-" * len(header))
    for r in results:
        naive = base_per_viewer * r["n"]
        print(_row(str(r["n"]), r, connect=f"{r['connect_seconds']:.1f}", naive=naive,
                   extra=f"{r['web_connections']:>9} {r['web_cpu']:>8.0%} {r['client_cpu']:>10.0%}"))
        if k > 1:
            for index, node in enumerate(r["nodes"], 1):
                node_row = {key: value for key, value in node.items() if key != "bytes"}
                print(_row(f"web-{index}", node_row, connect=f"{node['n']} v", naive=None,
                           extra=f"{'':>9} {node['web_cpu']:>8.0%}"))
        if r["snapshots"] or r["closed"] or r["reported_dropped"] or r["delivered"] < 1:
            print(f"        (during the window: {r['snapshots']} snapshot message(s) to viewers, "
                  f"{r['reported_dropped']} event(s) reported dropped by the web, {r['closed']} viewer(s) closed; "
                  + (f"the wait for late lines ended after {args.delivery_timeout:g} s: lines may still be in flight)"
                     if r["timed_out"] else
                     f"no bench line arrived for {args.quiet_seconds:g} s: the missing lines were lost on the way)"))
    print(f"idle web RSS before any viewer: {', '.join(f'{mb:.1f}' for mb in idle_rss)} MB; svc conns = "
          f"web->service messenger connections during the window; after all viewers left: "
          f"{results[-1]['web_connections_after']} (checked {results[-1]['stream_closed_after']:.1f} s after; "
          f"the link lingers {LINGER_SECONDS:g} s)")
    print("rows are cumulative: the viewers of a row stay connected for the next one"
          + ("; web-i rows: that node's viewers (v), latencies, RSS and CPU" if k > 1 else ""))

    top = results[-1]
    ratio = top["bytes"] / base["bytes"]
    checks = [
        (f"svc->web bytes at {top['n']} viewers <= {TARGET_BYTES_RATIO}x bytes at {base['n']}", f"{ratio:.3f}x",
         ratio <= TARGET_BYTES_RATIO),
        (f"web RSS at {top['n']} viewers <= {TARGET_RSS_MB:.0f} MB" + (" (each node)" if k > 1 else ""),
         f"{top['rss']:.1f} MB", top["rss"] <= TARGET_RSS_MB),
        (f"latency p99 at {top['n']} viewers <= {TARGET_P99_MS:.0f} ms", f"{percentile(top['latencies'], 0.99):.1f} ms",
         percentile(top["latencies"], 0.99) <= TARGET_P99_MS),
    ]
    if k > 1:
        checks.append((f"one status stream per web node ({k})", f"{top['web_connections']}",
                       top["web_connections"] == k))
    if top["n"] != 500:
        print(f"(targets are defined at 500 viewers; checked here at the largest N asked for, {top['n']})")
    for text, value, ok in checks:
        print(f"{text}: {value} -> {'met' if ok else 'NOT met'}")
    print(f"targets met: {sum(ok for *_, ok in checks)}/{len(checks)}")


def run(args: argparse.Namespace, scratch: Path, *, database_url: str | None, redis_url: str | None) -> None:
    """Start the service and the web nodes on `scratch` (and `database_url`), measure every row, report."""
    node_env: dict[str, str] = {}
    if database_url:
        node_env = {"DATABASE_URL": database_url, "REDIS_URL": redis_url or "",
                    "DJANGO_SECRET_KEY": secrets.token_urlsafe(50)}  # one login for every web node
        os.environ["DATABASE_URL"] = database_url
    os.environ.update(DJANGO_SETTINGS_MODULE="proget_web.settings", PROGET_DATA_DIR=str(scratch))
    import django

    django.setup()
    from bench.log_runner import LOGGER_NAME
    from indexer.messenger_config import messenger_settings

    plan = scratch / "log-plan"
    if database_url is None:
        manage(scratch, "migrate", "--no-input")
    create_admin(scratch, PASSWORD, **node_env)
    ready = None
    if args.web_nodes > 1:
        port = free_port()
        manage(scratch, "settings", "set", "Service.MessengerEndpoint", f"tcp://{HOST}:{port}", **node_env)

        def ready() -> bool:
            with socket.socket() as probe:
                return probe.connect_ex((HOST, port)) == 0

    service = ServiceProcess(scratch, PROGET_EXTRA_RUNNERS=LOG_RUNNER, PROGET_BENCH_LOG_PLAN=str(plan),
                             **node_env).start(ready=ready)
    webs: list[Web] = []
    try:
        for index in range(1, args.web_nodes + 1):
            data_dir = scratch if args.web_nodes == 1 else scratch / f"web-{index}"
            data_dir.mkdir(mode=0o700, exist_ok=True)  # a node refuses a data dir others can enter
            process, port = start_daphne(data_dir, log=data_dir / "daphne.log", PROGET_NODE_NAME=f"web-{index}",
                                         **node_env)
            webs.append(Web(process, port, Recorder(LOGGER_NAME)))
        session = HttpSession(HOST, webs[0].port)
        session.login("admin", PASSWORD)
        time.sleep(1.0)
        idle_rss = [rss_mb(web.process.pid) for web in webs]
        config = messenger_settings()  # read before the loop runs: the ORM is synchronous
        results = asyncio.run(measure_all(args, webs=webs, cookie=session.cookie_header(), plan=plan, config=config))
    finally:
        for web in webs:
            stop(web.process)
        service.stop(signal.SIGTERM)
        from django.db import connections

        connections.close_all()
    report(results, args, idle_rss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--viewers", default=None,
                        help="comma-separated viewer counts (default 1,100,500; K,100,500 with --web-nodes K)")
    parser.add_argument("--web-nodes", type=int, default=1,
                        help="daphne web nodes (default 1; 2 or more need DATABASE_URL=postgresql://... and REDIS_URL)")
    parser.add_argument("--rate", type=float, default=200.0, help="log lines per second from the service")
    parser.add_argument("--seconds", type=float, default=None, help="logging time per viewer count (default 10)")
    parser.add_argument("--quiet-seconds", type=float, default=5.0,
                        help="after the window, delivery is over once no line arrived for this long (default 5)")
    parser.add_argument("--delivery-timeout", type=float, default=None,
                        help="longest wait for late lines after the window (default 60 s, 4 s with --quick)")
    parser.add_argument("--quick", action="store_true", help="2 s of logging per viewer count (< 40 s in all)")
    args = parser.parse_args()
    if args.web_nodes < 1:
        parser.error("--web-nodes must be at least 1")
    args.viewers = sorted({int(n) for n in (args.viewers or f"{args.web_nodes},100,500").split(",") if n.strip()})
    if args.seconds is None:
        args.seconds = 2.0 if args.quick else 10.0
    if args.delivery_timeout is None:
        args.delivery_timeout = 4.0 if args.quick else 60.0
    if not args.viewers or args.viewers[0] < args.web_nodes:
        parser.error(f"--viewers needs counts of at least one viewer per web node ({args.web_nodes})")
    redis_url = os.environ.get("REDIS_URL", "")
    if args.web_nodes > 1 and not redis_url.startswith(("redis://", "rediss://")):
        parser.error("--web-nodes 2 or more needs REDIS_URL=redis://... (the web nodes' channel layer)")

    raise_nofile(2 * max(args.viewers) + 512)
    with tempfile.TemporaryDirectory(prefix="bench-fanout-") as scratch_dir:
        scratch = Path(scratch_dir)
        if args.web_nodes == 1:
            os.environ.pop("DATABASE_URL", None)  # the embedded defaults, as the nodes get them
            os.environ.pop("REDIS_URL", None)
            run(args, scratch, database_url=None, redis_url=None)
            return
        with fresh_database(os.environ.get("DATABASE_URL", ""), scratch=scratch,
                            prefix="proget_bench_fanout") as url:
            run(args, scratch, database_url=url, redis_url=redis_url)


if __name__ == "__main__":
    main()
