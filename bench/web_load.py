"""Web load: N signed-in viewers on the Service Status page while R trigger requests/s go through the real paths.

Run `.venv/bin/python bench/web_load.py [--viewers 500] [--rate 50] [--seconds 60]`; tests/soak/test_web_load.py
runs the same and asserts that nothing failed. One real daphne and one real `runindexer` (with the test slow runner,
5 ms runs) on a temp data dir with the embedded defaults (SQLite in WAL mode, in-memory channel layer), the feed
`soak`, one HTTP login shared by every viewer. Then, on a fixed schedule (request i at start + i / rate):

- a share of them (--reindex-share, default REINDEX_SHARE, spread evenly): the feed page's Reindex button,
  POST /feeds/soak/reindex with the CSRF token (a durable Trigger, then a nudge), at most HTTP_WORKERS in flight,
  as that many users clicking;
- the rest: the Status page's Run button, {"action": "run", "runner": "Test Slow", "id": i} on viewer i mod N
  (a durable Trigger too; a Run while one of that runner is still pending adds nothing: "already queued").

"No errors" means, and `LoadResult.failures` lists every breach of:
- every viewer's WebSocket stays open to the end, gets no `error` message, and receives live messages during the
  load (the fan-out reached it);
- every POST is answered 302 to the feed page within HTTP_TIMEOUT of its click, queueing included (no 4xx/5xx,
  no exception, no login redirect);
- every Run gets a `reply` within ACTION_TIMEOUT naming its trigger, sent to the service (not queued for want of
  it): a new trigger, or the pending one of the runner ("already queued");
- every trigger written during the load (Reindex and Run) is `done` once the queue drains (within DRAIN_TIMEOUT),
  none failed or left pending or running, and the service started each exactly once (one dispatch line per id);
  the runner logged each Run trigger exactly once, and every trigger a reply named is among them;
- the web and service RSS at the end stay within RSS_GROWTH_MB of the start (after the viewers connected).
The script prints the figures and exits 1 if any of these fails.
"""
from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import re
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from bench.nodes import create_admin, load_average, percentile, raise_nofile, rss_mb  # noqa: E402
from bench.wsclient import HttpSession, WebSocket  # noqa: E402
from tests.processes import ServiceProcess, manage, start_daphne, stop, wait_for  # noqa: E402

HOST = "127.0.0.1"
PASSWORD = "bench-load-pw"
FEED = "soak"
SLOW_RUNNER = "tests.indexer.slow_runner.SlowRunner"
SLOW_RUNNER_NAME = "Test Slow"
SOCKET_PATH = "/ws/administration/service"
# A Run works 5 ms: at 25 Runs/s most start and some find the runner busy (both are correct answers).
RUN_SECONDS = "0.005"
# Reindex clicks in flight at once: that many users (each sync view gets a thread; they share one interpreter lock).
HTTP_WORKERS = 8
# Reindex POSTs are the expensive path (each writes the trigger, nudges the service and saves the session's
# message, in a thread beside the fan-out to the viewers): one daphne fanning out to 500 viewers
# answers ~20 of them per second on an idle 2-core VM but only ~1.5-2.5 with other suites running beside it, as in CI
# (docs/PERFORMANCE.md), so 2% of 50/s = 1/s; the Runs go over the web's long-lived link.
REINDEX_SHARE = 0.02
# A click answered later than this counts as an error: a user would have given up (browsers wait longer).
HTTP_TIMEOUT = 30.0
# A Run's reply: the link's action timeout is 3 s; more slack for a loaded 2-core machine.
ACTION_TIMEOUT = 10.0
CONNECT_CONCURRENCY = 50
# After the load, queued Reindex triggers run one at a time; this long at most.
DRAIN_TIMEOUT = 60.0
# RSS growth from the start (viewers connected) to the end: the web holds bounded buffers only.
RSS_GROWTH_MB = 50.0
DISPATCHED = re.compile(rf"trigger (\d+) \((?:feed\.reindex {FEED}|runner\.run {SLOW_RUNNER_NAME})\): (?!.*waits)")


@dataclass
class LoadResult:
    viewers: int
    rate: float
    seconds: float
    sent_seconds: float = 0.0  # from the first request to the last one sent
    max_lag: float = 0.0  # the latest a request went out after its slot
    reindex_share: float = REINDEX_SHARE
    posts: list[float] = field(default_factory=list)  # ms per answered POST, from its slot (queueing included)
    run_triggers: set[int] = field(default_factory=set)  # the triggers the Run replies named
    runs_queued: int = 0  # Runs that wrote a new trigger
    runs_merged: int = 0  # Runs answered "already queued" (the runner's pending trigger)
    runs_logged: int = 0  # runs the runner logged during the load
    replies: list[float] = field(default_factory=list)  # ms per Run reply
    triggers: Counter = field(default_factory=Counter)  # state -> count
    drain_seconds: float = 0.0
    live_messages: list[int] = field(default_factory=list)  # per viewer, during the load
    rss: dict[str, tuple[float, float, float]] = field(default_factory=dict)  # process -> (start, peak, end) MB
    failures: list[str] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return len(self.posts) + self.runs_queued + self.runs_merged

    @property
    def total(self) -> int:
        return int(self.rate * self.seconds)

    def is_reindex(self, i: int) -> bool:
        """Whether request i is a Reindex POST: the share spread evenly over the schedule."""
        return int((i + 1) * self.reindex_share) > int(i * self.reindex_share)

    @property
    def reindexes(self) -> int:
        return sum(self.is_reindex(i) for i in range(self.total))


class Viewers:
    """N viewer sockets in callback mode: replies and errors parsed, broadcast messages only counted."""

    def __init__(self) -> None:
        self.sockets: list[WebSocket] = []
        self.live = Counter()  # viewer -> events/link/snapshot messages since counting began
        self.errors: list[str] = []
        self.replies: dict[int, asyncio.Future] = {}
        self.counting = False

    def callback(self, viewer: int):
        def on_message(payload: bytes, received_at: float) -> None:
            # Broadcasts are encoded once by the link (orjson, no spaces); snapshots by the consumer.
            if payload.startswith((b'{"type":"events"', b'{"type":"link"', b'{"type": "snapshot"')):
                if self.counting:
                    self.live[viewer] += 1
                return
            message = _json(payload)
            kind = message.get("type")
            future = self.replies.get(message.get("id"))
            if kind == "reply" and future is not None and not future.done():
                future.set_result((message["result"], received_at))
            else:
                self.errors.append(f"viewer {viewer}: {payload[:300]!r}")
        return on_message

    async def connect(self, n: int, *, port: int, cookie: str) -> None:
        limit = asyncio.Semaphore(CONNECT_CONCURRENCY)

        async def one(viewer: int) -> WebSocket:
            async with limit:
                return await WebSocket.connect(HOST, port, SOCKET_PATH, cookie=cookie,
                                               on_message=self.callback(viewer), timeout=60)

        self.sockets = list(await asyncio.gather(*(one(viewer) for viewer in range(n))))

    def closed(self) -> list[str]:
        return [f"viewer {i} closed ({s.closed.result()})" for i, s in enumerate(self.sockets) if s.closed.done()]


def _json(payload: bytes) -> dict:
    try:
        message = json.loads(payload)
    except ValueError:
        return {}
    return message if isinstance(message, dict) else {}


async def _post(session: HttpSession, token: str, slots: asyncio.Semaphore, result: LoadResult, slot: float) -> None:
    async with slots:
        try:
            status, headers, _ = await asyncio.to_thread(
                session.request, "POST", f"/feeds/{FEED}/reindex", form={"csrfmiddlewaretoken": token},
                timeout=HTTP_TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - every failure is a finding, reported by name
            result.failures.append(f"POST reindex: {type(exc).__name__}: {exc}")
            return
        # The user's browser follows the redirect and the feed page shows (consumes) the message: drop it here, or
        # the messages of every click pile up in the cookie and then the session, a cost no user's click pays.
        session.cookies.pop("messages", None)
        location = headers.get("Location", "")
        if status != 302 or not location.rstrip("/").endswith(f"/feeds/{FEED}"):
            result.failures.append(f"POST reindex answered {status} -> {location or 'no Location'}")
            return
        took = time.monotonic() - slot
        result.posts.append(took * 1000)
        if took > HTTP_TIMEOUT:
            result.failures.append(f"POST reindex answered {took:.1f} s after its click (bound {HTTP_TIMEOUT:g} s)")


async def _run(viewers: Viewers, i: int, result: LoadResult) -> None:
    future = asyncio.get_running_loop().create_future()
    viewers.replies[i] = future
    sent = time.time()
    try:
        viewers.sockets[i % len(viewers.sockets)].send_json({"action": "run", "runner": SLOW_RUNNER_NAME, "id": i})
        reply, received_at = await asyncio.wait_for(future, ACTION_TIMEOUT)
    except Exception as exc:  # noqa: BLE001
        result.failures.append(f"Run {i}: no reply ({type(exc).__name__}: {exc})")
        return
    result.replies.append((received_at - sent) * 1000)
    if not isinstance(reply.get("trigger"), int) or reply.get("queued") is not False:
        result.failures.append(f"Run {i}: unexpected reply {reply}")
        return
    result.run_triggers.add(reply["trigger"])
    if reply.get("alreadyQueued"):
        result.runs_merged += 1
    else:
        result.runs_queued += 1


async def _load(result: LoadResult, viewers: Viewers, session: HttpSession, token: str) -> None:
    """Send rate x seconds requests on a fixed schedule, then wait for every answer."""
    loop = asyncio.get_running_loop()
    loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(HTTP_WORKERS))
    slots = asyncio.Semaphore(HTTP_WORKERS)
    tasks = []
    start = time.monotonic()
    for i in range(result.total):
        slot = start + i / result.rate
        delay = slot - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        result.max_lag = max(result.max_lag, -delay)
        tasks.append(asyncio.create_task(_post(session, token, slots, result, slot) if result.is_reindex(i)
                                         else _run(viewers, i, result)))
    result.sent_seconds = time.monotonic() - start
    await asyncio.gather(*tasks)


def _sqlite(data_dir: Path, query: str) -> list[tuple]:
    with sqlite3.connect(f"file:{data_dir / 'proget.sqlite3'}?mode=ro", uri=True, timeout=10) as db:
        return db.execute(query).fetchall()


def _trigger_states(data_dir: Path, kind: str = "feed.reindex") -> Counter:
    return Counter(dict(_sqlite(data_dir, f"SELECT state, count(*) FROM indexer_trigger WHERE kind = '{kind}' "
                                          "GROUP BY state")))


def _check(result: LoadResult, viewers: Viewers, *, service_log: Path, run_log_before: int, run_log: Path,
           data_dir: Path) -> None:
    failures = result.failures
    failures += viewers.closed() + viewers.errors
    silent = [i for i, count in enumerate(result.live_messages) if count == 0]
    if silent:
        failures.append(f"{len(silent)} viewer(s) got no live message during the load (first: {silent[:5]})")
    if result.triggers != Counter(done=result.reindexes):
        failures.append(f"reindex triggers: {dict(result.triggers)}; expected {result.reindexes} done")
    bad = _sqlite(data_dir, "SELECT id, state, result FROM indexer_trigger WHERE state != 'done' LIMIT 5")
    if bad:
        failures.append(f"triggers not done: {bad}")
    dispatched = Counter(int(m.group(1)) for m in DISPATCHED.finditer(service_log.read_text()))
    ids = {row[0] for row in _sqlite(data_dir, "SELECT id FROM indexer_trigger")}
    if set(dispatched) != ids or any(count != 1 for count in dispatched.values()):
        twice = [i for i, count in dispatched.items() if count != 1]
        failures.append(f"dispatch lines: {len(dispatched)} ids for {len(ids)} triggers; started twice: {twice[:5]}; "
                        f"never: {sorted(ids - set(dispatched))[:5]}")
    logged = [line.split()[0] for line in run_log.read_text().splitlines()[run_log_before:]]
    result.runs_logged = len(logged)
    run_ids = {row[0] for row in _sqlite(data_dir, "SELECT id FROM indexer_trigger WHERE kind = 'runner.run'")}
    per_trigger = Counter(int(word) for word in logged if word != "-")
    if per_trigger != Counter(dict.fromkeys(run_ids, 1)) or not result.run_triggers <= run_ids:
        failures.append(f"Run triggers: {len(run_ids)} written, {len(result.run_triggers)} named in replies, "
                        f"the runner logged {len(per_trigger)} ({sum(per_trigger.values())} starts; twice: "
                        f"{[i for i, n in per_trigger.items() if n > 1][:5]})")
    for name, (start, _, end) in result.rss.items():
        if end - start > RSS_GROWTH_MB:
            failures.append(f"{name} RSS grew {end - start:.1f} MB (bound {RSS_GROWTH_MB:g} MB)")


async def _session(result: LoadResult, *, port: int, session: HttpSession, token: str, pids: dict[str, int],
                   data_dir: Path, progress: bool) -> Viewers:
    viewers = Viewers()
    started = time.monotonic()
    await viewers.connect(result.viewers, port=port, cookie=session.cookie_header())
    if progress:
        print(f"  {result.viewers} viewers connected in {time.monotonic() - started:.1f} s", file=sys.stderr)
    await asyncio.sleep(1.0)  # their snapshots went out
    start = {name: rss_mb(pid) for name, pid in pids.items()}
    peak = dict(start)
    viewers.counting = True

    async def sample() -> None:
        while True:
            await asyncio.sleep(0.5)
            for name, pid in pids.items():
                peak[name] = max(peak[name], rss_mb(pid))

    sampler = asyncio.create_task(sample())
    try:
        await _load(result, viewers, session, token)
        viewers.counting = False
        if progress:
            print(f"  load sent in {result.sent_seconds:.1f} s; draining", file=sys.stderr)
        drain_started = time.monotonic()
        while time.monotonic() - drain_started < DRAIN_TIMEOUT:
            result.triggers = _trigger_states(data_dir)
            if set(result.triggers) | set(_trigger_states(data_dir, "runner.run")) <= {"done", "failed"}:
                break
            await asyncio.sleep(0.5)
        result.drain_seconds = time.monotonic() - drain_started
    finally:
        sampler.cancel()
    result.live_messages = [viewers.live[i] for i in range(result.viewers)]
    result.rss = {name: (start[name], peak[name], rss_mb(pid)) for name, pid in pids.items()}
    return viewers


def web_load(*, viewers: int, rate: float, seconds: float, reindex_share: float = REINDEX_SHARE,
             progress: bool = False) -> LoadResult:
    """One load run on fresh processes in a temp data dir; the result lists every failure."""
    raise_nofile(2 * viewers + 512)
    result = LoadResult(viewers=viewers, rate=rate, seconds=seconds, reindex_share=reindex_share)
    with tempfile.TemporaryDirectory(prefix="proget-web-load-") as scratch:
        data_dir = Path(scratch)
        run_log = data_dir / "runs.log"
        manage(data_dir, "migrate", "--no-input", timeout=120)
        create_admin(data_dir, PASSWORD)
        manage(data_dir, "settings", "set", "Runners.NodeMessageCleanup.IntervalSeconds", "86400")  # runs: ours only
        manage(data_dir, "feeds", "create", FEED)
        service = ServiceProcess(data_dir, PROGET_EXTRA_RUNNERS=SLOW_RUNNER, PROGET_TEST_RUN_LOG=str(run_log),
                                 PROGET_TEST_RUN_SECONDS=RUN_SECONDS).start()
        daphne = None
        try:
            daphne, port = start_daphne(data_dir, log=data_dir / "daphne.log")
            session = HttpSession(HOST, port)
            session.login("admin", PASSWORD)
            status, _, page = session.request("GET", f"/feeds/{FEED}/")
            if status != 200:
                raise RuntimeError(f"the feed page answered {status}")
            token = HttpSession.csrf_token(page)
            wait_for(lambda: run_log.exists(), what="the slow runner's startup run")
            time.sleep(1.0)  # the service's startup runs are over
            run_log_before = len(run_log.read_text().splitlines())
            pids = {"web": daphne.pid, "service": service.process.pid}
            viewer_set = asyncio.run(_session(result, port=port, session=session, token=token, pids=pids,
                                              data_dir=data_dir, progress=progress))
            _check(result, viewer_set, service_log=service.log, run_log_before=run_log_before, run_log=run_log,
                   data_dir=data_dir)
        finally:
            if daphne is not None:
                stop(daphne)
            service.stop(signal.SIGTERM)
    return result


def report(result: LoadResult) -> str:
    """The printed figures."""
    live = result.live_messages or [0]
    lines = [
        f"{result.viewers} viewers, {result.rate:g} requests/s for {result.seconds:g} s "
        f"({result.reindex_share:.0%} Reindex POSTs, the rest Status page Runs); load average {load_average()}",
        f"sent {result.requests:,} requests in {result.sent_seconds:.1f} s "
        f"({result.requests / result.sent_seconds if result.sent_seconds else 0:.1f}/s; latest {result.max_lag:.2f} s "
        f"behind its slot)",
        f"Reindex POSTs answered 302: {len(result.posts):,} of {result.reindexes:,}; from the click (queueing "
        f"included) p50 {statistics.median(result.posts or [0]):.0f} ms, p99 {percentile(result.posts, 0.99):.0f} ms",
        f"Reindex triggers: {dict(result.triggers)}; queue drained {result.drain_seconds:.1f} s after the last request",
        f"Runs: {result.runs_queued:,} queued a trigger, {result.runs_merged:,} already queued; the runner ran "
        f"{result.runs_logged:,}; "
        f"reply p50 {statistics.median(result.replies or [0]):.0f} ms, p99 {percentile(result.replies, 0.99):.0f} ms",
        f"live messages per viewer during the load: min {min(live):,}, median {statistics.median(live):,.0f}",
    ]
    for name, (start, peak, end) in result.rss.items():
        lines.append(f"{name} RSS: start {start:.1f} MB, peak {peak:.1f} MB, end {end:.1f} MB ({end - start:+.1f})")
    lines.append("no errors" if not result.failures else f"{len(result.failures)} failure(s):")
    lines += [f"  {failure}" for failure in result.failures[:50]]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--viewers", type=int, default=500)
    parser.add_argument("--rate", type=float, default=50.0, help="trigger requests per second, both paths")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--reindex-share", type=float, default=REINDEX_SHARE,
                        help=f"the fraction of requests that are Reindex POSTs (default {REINDEX_SHARE})")
    args = parser.parse_args()
    if args.viewers < 1 or args.rate <= 0 or args.seconds <= 0:
        parser.error("--viewers, --rate and --seconds must be positive")
    if not 0 <= args.reindex_share <= 1:
        parser.error("--reindex-share must be between 0 and 1")
    started = time.monotonic()
    result = web_load(viewers=args.viewers, rate=args.rate, seconds=args.seconds, reindex_share=args.reindex_share,
                      progress=True)
    print(report(result))
    print(f"total {time.monotonic() - started:.0f} s")
    sys.exit(1 if result.failures else 0)


if __name__ == "__main__":
    main()
