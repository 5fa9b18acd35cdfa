"""Trigger latency: time from `trigger_create` to the task's start inside a real service node.

Runs a real `runindexer` (with the test slow runner loaded) on a temp data dir and measures, in one
run, the two paths a trigger can take: the messenger nudge (trigger_request: create, then
trigger.nudge) and the poll-only fallback (create only; Trigger Dispatch finds it on its poll).
Also reports the idle service's RSS.

    .venv/bin/python bench/trigger_latency.py [--nudged 200] [--polled 20] [--poll-seconds 1]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import django  # noqa: E402

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proget_web.settings")
# The bench drives the ORM straight from its event loop: nothing else runs there to be blocked.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
os.environ.setdefault("PROGET_DATA_DIR", tempfile.mkdtemp(prefix="bench-trigger-"))
django.setup()

from indexer.messenger_config import messenger_settings  # noqa: E402
from indexer.triggers import trigger_create, trigger_get  # noqa: E402
from messenger.client import MessengerClient  # noqa: E402
from tests.processes import ServiceProcess, manage  # noqa: E402

SLOW_RUNNER = "tests.indexer.slow_runner.SlowRunner"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def starts(run_log: Path) -> dict[int, float]:
    """Trigger id -> when the runner started it, from the slow runner's log."""
    result = {}
    for line in run_log.read_text().splitlines() if run_log.exists() else []:
        trigger, _pid, at = line.split()
        if trigger != "-":
            result[int(trigger)] = float(at)
    return result


async def measure(count: int, *, client: MessengerClient | None, run_log: Path) -> list[float]:
    """Create `count` triggers one after the other, nudging each through `client` (None: poll only).

    Returns create-to-start latencies in ms. Each trigger waits for the previous one to be done and
    the service to settle, so a run ending never picks up the next trigger early.
    """
    latencies = []
    for _ in range(count):
        created = time.time()
        trigger = trigger_create(kind="runner.run", target="Test Slow", requested_by="bench")
        if client is not None:
            await client.request("trigger.nudge", {"id": trigger.id})
        deadline = time.monotonic() + 30
        while (started := starts(run_log).get(trigger.id)) is None or trigger_get(
            trigger_id=trigger.id
        ).state != "done":
            if time.monotonic() > deadline:
                raise SystemExit(f"trigger {trigger.id} did not finish within 30 s")
            await asyncio.sleep(0.001)
        latencies.append((started - created) * 1000)
        await asyncio.sleep(0.05)
    return latencies


async def measure_both(args: argparse.Namespace, run_log: Path) -> tuple[list[float], list[float]]:
    """Nudged through one long-lived messenger client (as a web process holds it), then poll only."""
    config = messenger_settings()
    client = MessengerClient(endpoint=config.endpoint, key=config.key, run_dir=config.run_dir)
    try:
        nudged = await measure(args.nudged, client=client, run_log=run_log)
    finally:
        await client.close()
    return nudged, await measure(args.polled, client=None, run_log=run_log)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nudged", type=int, default=200, help="triggers measured through the nudge")
    parser.add_argument("--polled", type=int, default=20, help="triggers measured through the poll only")
    parser.add_argument("--poll-seconds", type=int, default=1, help="Service.TriggerPollSeconds (min 1)")
    args = parser.parse_args()

    data_dir = Path(os.environ["PROGET_DATA_DIR"])
    run_log = data_dir / "runs.log"
    manage(data_dir, "migrate", "--no-input")
    manage(data_dir, "settings", "set", "Service.TriggerPollSeconds", str(args.poll_seconds))
    django.setup()
    service = ServiceProcess(
        data_dir, DJANGO_ALLOW_ASYNC_UNSAFE="", PROGET_EXTRA_RUNNERS=SLOW_RUNNER,
        PROGET_TEST_RUN_LOG=str(run_log), PROGET_TEST_RUN_SECONDS="0.002",
    ).start()
    try:
        time.sleep(3)
        idle_rss = rss_mb(service.process.pid)
        nudged, polled = asyncio.run(measure_both(args, run_log))
    finally:
        service.stop()

    rows = [("nudge (messenger)", nudged, "p50 <= 10 ms, p99 <= 50 ms"), ("poll only (fallback)", polled, "-")]
    print(f"trigger_create -> task start in the service, poll every {args.poll_seconds} s")
    print(f"{'path':<22} {'n':>5} {'p50 ms':>9} {'p99 ms':>9} {'mean ms':>9}  target")
    for name, values, target in rows:
        print(f"{name:<22} {len(values):>5} {statistics.median(values):>9.2f} {percentile(values, 0.99):>9.2f} "
              f"{statistics.fmean(values):>9.2f}  {target}")
    ratio = statistics.median(polled) / statistics.median(nudged)
    print(f"poll-only p50 / nudge p50: {ratio:.0f}x")
    met = statistics.median(nudged) <= 10 and percentile(nudged, 0.99) <= 50
    print(f"nudge target (p50 <= 10 ms, p99 <= 50 ms): {'met' if met else 'NOT met'}")
    print(f"idle service RSS: {idle_rss:.1f} MB (target <= 100 MB): {'met' if idle_rss <= 100 else 'NOT met'}")


if __name__ == "__main__":
    main()
