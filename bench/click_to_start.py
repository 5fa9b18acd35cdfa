"""Click to start: from a user's click in the browser to the task's start inside the service node.

Starts, on a temp data dir, a real `runindexer` (with the test slow runner loaded through PROGET_EXTRA_RUNNERS, as
bench/trigger_latency.py does) and a real daphne, creates the feed `bench` (`manage.py feeds create bench`) and logs
in once over HTTP (CSRF token + session cookie). Then, one click at a time, each after the previous task finished and
the service settled (so the runner is always idle when clicked):

- Reindex button: POST /feeds/bench/reindex (the feed page's form, CSRF token included). The view writes a Trigger,
  nudges the service through the messenger and redirects. Start = the trigger's `claimed_at`, written by the service
  in the step that claims the trigger and calls the scheduler's run_now for Feed Indexing.
  Measured only if that page answers (it is checked first; the output says which paths ran).
- Run button on the Service Status page: {"action": "run", "runner": "Test Slow"} over ws/administration/service:
  a Trigger, then a nudge over the web process's long-lived nudge connection (indexer.nudges), the reply going out
  before the nudge. Start = the slow runner's own start line in its run log.
- Reference, poll only (what happens without the nudge, as in bench/trigger_latency.py): a feed.reindex trigger
  written straight to the database; Trigger Dispatch finds it on its poll (Service.TriggerPollSeconds, 1 s here).

Latency = start in the service - the moment just before the bench sent the click (same machine, same clock);
the HTTP response time of the POST is shown too. Targets for a click: p50 <= 25 ms, p99 <= 100 ms. Ratios are
poll-only p50 / click p50. The 2-core VM is shared and noisy: compare ratios, not absolute times. The script is a
report: it always exits 0 and ends with `targets met: X/Y`.

    .venv/bin/python bench/click_to_start.py                  # 100 clicks per path, 20 polled (~1 min)
    .venv/bin/python bench/click_to_start.py --quick          # 20 clicks per path, 5 polled (< 40 s)
    .venv/bin/python bench/click_to_start.py --clicks 300 --path ws-run
"""
from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import django  # noqa: E402

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proget_web.settings")
os.environ.setdefault("PROGET_DATA_DIR", tempfile.mkdtemp(prefix="bench-click-"))
django.setup()

from bench.wsclient import HttpSession, WebSocket  # noqa: E402
from indexer.models import Trigger  # noqa: E402
from indexer.triggers import trigger_create  # noqa: E402
from tests.processes import ServiceProcess, manage, shell, start_daphne, stop  # noqa: E402

HOST = "127.0.0.1"
PASSWORD = "bench-click-pw"
FEED = "bench"
SLOW_RUNNER = "tests.indexer.slow_runner.SlowRunner"
SLOW_RUNNER_NAME = "Test Slow"
SOCKET_PATH = "/ws/administration/service"
TARGET_P50_MS = 25.0
TARGET_P99_MS = 100.0
# After a task finished: lets the runner record its run and the service go quiet before the next click.
SETTLE_SECONDS = 0.05
WARMUP_CLICKS = 5
TASK_TIMEOUT = 30.0
FINISHED = (Trigger.State.DONE, Trigger.State.FAILED)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def wait_trigger_finished(trigger_id: int) -> Trigger:
    deadline = time.monotonic() + TASK_TIMEOUT
    while True:
        trigger = Trigger.objects.get(id=trigger_id)
        if trigger.state in FINISHED:
            return trigger
        if time.monotonic() > deadline:
            raise SystemExit(f"trigger {trigger_id} did not finish within {TASK_TIMEOUT:g} s")
        time.sleep(0.002)


def last_trigger_id() -> int:
    last = Trigger.objects.order_by("-id").values_list("id", flat=True).first()
    return last or 0


def reindex_clicks(session: HttpSession, token: str, count: int) -> dict[str, list[float]]:
    """POST /feeds/bench/reindex `count` times; ms per click: start (click -> claimed_at), response (click -> HTTP
    response), created (click -> the trigger's created_at, written by the view), nudge (created_at -> claimed_at)."""
    times: dict[str, list[float]] = {"start": [], "response": [], "created": [], "nudge": []}
    for _ in range(count):
        before = last_trigger_id()
        clicked = time.time()
        status, _, _ = session.request("POST", f"/feeds/{FEED}/reindex", form={"csrfmiddlewaretoken": token})
        answered = time.time()
        if status != 302:
            raise SystemExit(f"POST /feeds/{FEED}/reindex answered {status}")
        created = Trigger.objects.filter(id__gt=before, kind=Trigger.Kind.FEED_REINDEX).order_by("id").first()
        if created is None:
            raise SystemExit("the reindex POST wrote no trigger")
        trigger = wait_trigger_finished(created.id)
        if trigger.claimed_at is None:
            raise SystemExit(f"trigger {trigger.id} finished unclaimed: {trigger.result}")
        claimed, created_at = trigger.claimed_at.timestamp(), trigger.created_at.timestamp()
        times["start"].append((claimed - clicked) * 1000)
        times["response"].append((answered - clicked) * 1000)
        times["created"].append((created_at - clicked) * 1000)
        times["nudge"].append((claimed - created_at) * 1000)
        time.sleep(SETTLE_SECONDS)
    return times


def polled_reindexes(count: int) -> list[float]:
    """The reference: a feed.reindex trigger written with no nudge; created -> claimed_at in ms."""
    latencies = []
    for _ in range(count):
        trigger = trigger_create(kind=Trigger.Kind.FEED_REINDEX, target=FEED, requested_by="bench")
        trigger = wait_trigger_finished(trigger.id)
        latencies.append((trigger.claimed_at.timestamp() - trigger.created_at.timestamp()) * 1000)
        time.sleep(SETTLE_SECONDS)
    return latencies


def run_log_starts(run_log: Path) -> list[float]:
    lines = run_log.read_text().splitlines() if run_log.exists() else []
    return [float(line.split()[2]) for line in lines]


async def ws_run_clicks(port: int, cookie: str, run_log: Path, count: int) -> tuple[list[float], list[float]]:
    """Run the slow runner from the Status page socket `count` times; (click -> start ms, click -> reply ms)."""
    ws = await WebSocket.connect(HOST, port, SOCKET_PATH, cookie=cookie)
    try:
        await ws.until(lambda m: m["type"] == "snapshot" and m["snapshot"], timeout=15)
        starts, replies = [], []
        for click in range(1, count + 1):
            seen = len(run_log_starts(run_log))
            ws.drain()  # nothing from the previous run may be taken for this one
            clicked = time.time()
            ws.send_json({"action": "run", "runner": SLOW_RUNNER_NAME, "id": click})
            reply, replied = await ws.until(lambda m, click=click: m.get("id") == click, timeout=10)
            if reply["type"] != "reply" or reply["result"].get("queued") is not False:
                raise SystemExit(f"Run was not sent to the service: {reply}")
            deadline = time.monotonic() + TASK_TIMEOUT
            while len(found := run_log_starts(run_log)) <= seen:
                if time.monotonic() > deadline:
                    raise SystemExit("the slow runner did not start")
                await asyncio.sleep(0.002)
            starts.append((found[seen] - clicked) * 1000)
            replies.append((replied - clicked) * 1000)
            # Its run takes PROGET_TEST_RUN_SECONDS (2 ms); wait for the end as the page shows it, then settle.
            await ws.until(lambda m: m["type"] == "events" and any(
                e.get("type") == "runner" and e.get("name") == SLOW_RUNNER_NAME and e.get("state") != "running"
                for e in m["events"]), timeout=TASK_TIMEOUT)
            await asyncio.sleep(SETTLE_SECONDS)
        return starts, replies
    finally:
        ws.close()


def reindex_available(session: HttpSession) -> tuple[str | None, str]:
    """(CSRF token, why) if the feed page and its reindex POST answer; (None, why not) otherwise."""
    try:
        status, _, page = session.request("GET", f"/feeds/{FEED}/")
        if status != 200:
            return None, f"GET /feeds/{FEED}/ answered {status}"
        token = session.csrf_token(page)
        before = last_trigger_id()
        status, _, _ = session.request("POST", f"/feeds/{FEED}/reindex", form={"csrfmiddlewaretoken": token})
    except (OSError, RuntimeError) as exc:
        return None, f"feed page not usable: {exc}"
    if status != 302 or not Trigger.objects.filter(id__gt=before, kind=Trigger.Kind.FEED_REINDEX).exists():
        return None, f"POST /feeds/{FEED}/reindex answered {status} and wrote no trigger"
    wait_trigger_finished(last_trigger_id())
    return token, "available"


def row(name: str, values: list[float], target: str) -> str:
    return (f"{name:<44} {len(values):>5} {statistics.median(values):>8.2f} {percentile(values, 0.99):>8.2f} "
            f"{statistics.fmean(values):>8.2f} {max(values):>8.2f}  {target}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clicks", type=int, default=None, help="measured clicks per path (default 100)")
    parser.add_argument("--polled", type=int, default=None, help="poll-only reference triggers (default 20)")
    parser.add_argument("--path", choices=("auto", "reindex", "ws-run"), default="auto",
                        help="auto: the Reindex POST if /feeds/<feed>/reindex answers, and the Status page Run")
    parser.add_argument("--quick", action="store_true", help="20 clicks per path, 5 polled (< 40 s)")
    args = parser.parse_args()
    clicks = args.clicks or (20 if args.quick else 100)
    polled_count = args.polled or (5 if args.quick else 20)

    data_dir = Path(os.environ["PROGET_DATA_DIR"])
    run_log = data_dir / "runs.log"
    manage(data_dir, "migrate", "--no-input")
    shell(data_dir, "from django.contrib.auth.models import User; "
                    f"User.objects.create_superuser('admin', 'admin@example.com', {PASSWORD!r})")
    for name, value in [("Service.TriggerPollSeconds", "1"),  # the poll-only reference, as trigger_latency.py
                        ("Runners.FeedIndexing.IntervalSeconds", "86400"),  # no scheduled run in the way
                        ("Runners.NodeMessageCleanup.IntervalSeconds", "86400")]:  # the slow runner's interval
        manage(data_dir, "settings", "set", name, value)
    feed_created = manage(data_dir, "feeds", "create", FEED, check=False)
    service = ServiceProcess(
        data_dir, PROGET_EXTRA_RUNNERS=SLOW_RUNNER, PROGET_TEST_RUN_LOG=str(run_log), PROGET_TEST_RUN_SECONDS="0.002",
    ).start()
    daphne = None
    results: list[tuple[str, list[float], list[tuple[str, list[float]]]]] = []
    notes = []
    try:
        daphne, port = start_daphne(data_dir, log=data_dir / "daphne.log")
        session = HttpSession(HOST, port)
        session.login("admin", PASSWORD)
        time.sleep(2.0)  # the service's startup runs are over

        token, why = (None, "not asked for (--path ws-run)")
        if args.path in ("auto", "reindex"):
            if feed_created.returncode != 0:
                why = f"`manage.py feeds create {FEED}` failed: {feed_created.stderr.strip() or feed_created.stdout}"
            else:
                token, why = reindex_available(session)
        notes.append(f"POST /feeds/{FEED}/reindex: {'measured' if token else 'NOT measured - ' + why}")
        if token:
            reindex_clicks(session, token, WARMUP_CLICKS)
            times = reindex_clicks(session, token, clicks)
            results.append((f"POST /feeds/{FEED}/reindex -> claimed_at", times["start"], [
                ("  click -> trigger created_at (HTTP, Django)", times["created"]),
                ("  created_at -> claimed_at (nudge, claim)", times["nudge"]),
                ("  click -> HTTP response (302)", times["response"])]))
        if args.path in ("auto", "ws-run") or token is None:
            cookie = session.cookie_header()
            asyncio.run(ws_run_clicks(port, cookie, run_log, WARMUP_CLICKS))
            starts, replies = asyncio.run(ws_run_clicks(port, cookie, run_log, clicks))
            results.append((f"Status page WS run '{SLOW_RUNNER_NAME}' -> its start", starts,
                            [("  click -> WS reply", replies)]))
            notes.append("Status page WebSocket Run: measured")
        polled = polled_reindexes(polled_count)
    finally:
        if daphne is not None:
            stop(daphne)
        service.stop(signal.SIGTERM)

    print("click (just before the request is sent) -> task start in the service; ms; poll every 1 s")
    for note in notes:
        print(f"  {note}")
    print(f"{'path':<44} {'n':>5} {'p50':>8} {'p99':>8} {'mean':>8} {'max':>8}  target")
    met = total = 0
    for name, starts, _ in results:
        print(row(name, starts, f"p50 <= {TARGET_P50_MS:g}, p99 <= {TARGET_P99_MS:g}"))
    for _, _, parts in results:
        for label, values in parts:
            print(row(label, values, "info"))
    print(row("reference: poll only (trigger, no nudge)", polled, "-"))
    for name, starts, _ in results:
        p50, p99 = statistics.median(starts), percentile(starts, 0.99)
        print(f"{name}: poll-only p50 / click p50 = {statistics.median(polled) / p50:.0f}x; "
              f"p50 {p50:.1f} ms ({'met' if p50 <= TARGET_P50_MS else 'NOT met'}), "
              f"p99 {p99:.1f} ms ({'met' if p99 <= TARGET_P99_MS else 'NOT met'})")
        met += (p50 <= TARGET_P50_MS) + (p99 <= TARGET_P99_MS)
        total += 2
    print(f"targets met: {met}/{total}")


if __name__ == "__main__":
    main()
