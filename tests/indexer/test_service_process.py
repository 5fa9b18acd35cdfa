"""The service node as a real process: nudge vs poll, exactly-once triggers under SIGKILL,
graceful SIGTERM, and messenger endpoint/key changes applied live."""
from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from messenger.client import MessengerClient
from messenger.crypto import generate_key, parse_key
from messenger.endpoint import parse_endpoint
from messenger.errors import MessengerUnavailable
from tests.processes import ROOT, ServiceProcess, free_port, manage, migrate, node_env, shell, wait_for

pytestmark = pytest.mark.slow

SLOW_RUNNER = "tests.indexer.slow_runner.SlowRunner"

TRIGGERS = """
import json
from indexer.models import Trigger
print(json.dumps([
    {"id": t.id, "state": t.state, "result": t.result, "created": t.created_at.timestamp(),
     "claimed": t.claimed_at.timestamp() if t.claimed_at else None,
     "finished": t.finished_at.timestamp() if t.finished_at else None}
    for t in Trigger.objects.order_by("id")
]))
"""


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    migrate(tmp_path)
    manage(tmp_path, "settings", "set", "Service.TriggerPollSeconds", "1")
    return tmp_path


def service_env(data_dir: Path, **extra: str) -> dict[str, str]:
    return {"PROGET_EXTRA_RUNNERS": SLOW_RUNNER, "PROGET_TEST_RUN_LOG": str(data_dir / "runs.log"), **extra}


def triggers(data_dir: Path) -> list[dict]:
    return json.loads(shell(data_dir, TRIGGERS))


def runs(data_dir: Path) -> Counter:
    """How often the slow runner started for each trigger id."""
    log = data_dir / "runs.log"
    lines = log.read_text().split("\n") if log.exists() else []
    return Counter(int(line.split()[0]) for line in lines if line and not line.startswith("-"))


def all_finished(data_dir: Path, count: int | None) -> bool:
    """Whether there are `count` triggers (None: any number) and all of them finished."""
    rows = triggers(data_dir)
    finished = all(row["state"] in {"done", "failed"} for row in rows)
    return finished and (count is None or len(rows) == count)


def test_nudge_starts_a_trigger_without_waiting_for_the_poll(data_dir: Path) -> None:
    manage(data_dir, "settings", "set", "Service.TriggerPollSeconds", "300")
    service = ServiceProcess(data_dir, **service_env(data_dir)).start()
    try:
        result = manage(data_dir, "messenger", "run", "Test Slow", **service_env(data_dir))
        assert "Test Slow started" in result.stdout
        wait_for(lambda: all_finished(data_dir, 1), timeout=10, what="the trigger to finish")
        (row,) = triggers(data_dir)
        assert row["state"] == "done" and row["claimed"] - row["created"] < 2.0
    finally:
        service.stop()


def test_a_run_queued_behind_a_busy_runner_starts_as_soon_as_the_run_before_ends(data_dir: Path) -> None:
    manage(data_dir, "settings", "set", "Service.TriggerPollSeconds", "300")  # the poll cannot be what starts them
    seconds = 1.5
    env = service_env(data_dir, PROGET_TEST_RUN_SECONDS=str(seconds))
    service = ServiceProcess(data_dir, **env).start()
    try:
        # Each Run finds the runner busy (its first scheduled run, then the first Run) and queues; the second is
        # asked for once the first runs, as a Run of a runner that already has one pending adds nothing.
        manage(data_dir, "messenger", "run", "Test Slow", **env)
        wait_for(lambda: triggers(data_dir)[0]["state"] == "running", what="the first Run to start")
        manage(data_dir, "messenger", "run", "Test Slow", **env)
        wait_for(lambda: all_finished(data_dir, 2), timeout=20, what="both Runs to finish")
        starts = [float(line.split()[2]) for line in (data_dir / "runs.log").read_text().splitlines()]
        assert len(starts) >= 2 and [row["state"] for row in triggers(data_dir)] == ["done", "done"]
        gaps = [later - earlier - seconds for earlier, later in zip(starts, starts[1:], strict=False)]
        assert all(gap < 1.0 for gap in gaps), f"a queued Run waited {max(gaps):.2f} s after the run before it"
    finally:
        service.stop()


def test_without_the_messenger_a_queued_trigger_starts_within_one_poll(data_dir: Path) -> None:
    result = manage(data_dir, "messenger", "run", "Test Slow", **service_env(data_dir))
    assert "queued — the service is not reachable (not running" in result.stdout
    service = ServiceProcess(data_dir, **service_env(data_dir)).start()
    try:
        wait_for(lambda: all_finished(data_dir, 1), timeout=10, what="the queued trigger to run")
        # A second one, written while the service runs but never nudged: the 1 s poll takes it.
        shell(data_dir, "from indexer.triggers import trigger_create as c;"
                        "c(kind='runner.run', target='Test Slow', requested_by='test')")
        created = time.time()
        wait_for(lambda: all_finished(data_dir, 2), timeout=10, what="the poll to claim the trigger")
        row = triggers(data_dir)[1]
        assert row["state"] == "done" and row["claimed"] - created < 2.5
    finally:
        service.stop()
    assert runs(data_dir) == Counter({row["id"]: 1 for row in triggers(data_dir)})


PRODUCER = """
import sys, time
import django
django.setup()
from indexer.trigger_requests import trigger_request
for _ in range(int(sys.argv[1])):
    trigger_request(kind="runner.run", target="Test Slow", requested_by="producer")
    time.sleep(0.02)
"""


@pytest.mark.parametrize("args", [("run", "No Such Runner"), ("reindex", "nofeed")])
def test_run_or_reindex_of_something_unknown_exits_non_zero_and_queues_nothing(data_dir: Path, args: tuple) -> None:
    result = manage(data_dir, "messenger", *args, check=False)
    assert result.returncode != 0
    assert f"unknown {'runner' if args[0] == 'run' else 'feed'} '{args[1]}'" in result.stderr + result.stdout
    assert triggers(data_dir) == []


def test_triggers_run_exactly_once_while_the_service_is_killed_and_restarted(data_dir: Path) -> None:
    count = 200
    service = ServiceProcess(data_dir, **service_env(data_dir)).start()
    producer_log = data_dir / "producer.log"
    producer = subprocess.Popen([sys.executable, "-c", PRODUCER, str(count)], cwd=ROOT,
                                env=node_env(data_dir, PROGET_EXTRA_RUNNERS=SLOW_RUNNER),
                                stdout=producer_log.open("w"), stderr=subprocess.STDOUT)
    try:
        for _ in range(3):
            time.sleep(1.5)
            service.kill()
            time.sleep(0.3)
            service.start()
        assert producer.wait(timeout=120) == 0, producer_log.read_text()[-2000:]
        wait_for(lambda: all_finished(data_dir, None), timeout=90, what="every trigger to finish")
    finally:
        producer.kill()
        service.stop()
    rows = triggers(data_dir)
    started = runs(data_dir)
    # A Run while one of the runner is still pending adds nothing, so there are at most `count` triggers.
    assert count // 10 <= len(rows) <= count
    assert max(started.values()) == 1, "a trigger ran twice"
    for row in rows:
        if row["state"] == "done":
            assert started[row["id"]] == 1, row
        else:
            assert row["result"], row
    done = sum(row["state"] == "done" for row in rows)
    assert done >= len(rows) // 2, f"only {done} of {len(rows)} done"


def test_sigterm_mid_task_leaves_no_trigger_running(data_dir: Path) -> None:
    # Ran a moment ago, so it is not due at startup: only the trigger starts it.
    shell(data_dir, "from django.utils import timezone; from indexer.models import RunnerRecord as R;"
                    "R.objects.create(name='Test Slow', last_started_at=timezone.now())")
    service = ServiceProcess(data_dir, **service_env(data_dir, PROGET_TEST_RUN_SECONDS="30")).start()
    manage(data_dir, "messenger", "run", "Test Slow")
    wait_for(lambda: bool(runs(data_dir)), what="the slow run to start")
    assert triggers(data_dir)[0]["state"] == "running"
    started = time.monotonic()
    assert service.stop(signal.SIGTERM) == 0
    assert time.monotonic() - started < 10
    (row,) = triggers(data_dir)
    assert row["state"] in {"done", "failed"} and row["result"], row
    assert not service.socket.exists()


async def ping_with(endpoint: str, key: bytes, run_dir: Path) -> dict:
    client = MessengerClient(endpoint=parse_endpoint(endpoint), key=key, run_dir=run_dir, connect_timeout=2)
    try:
        return await client.request("ping", timeout=3)
    finally:
        await client.close()


def test_endpoint_and_key_changes_apply_live(data_dir: Path) -> None:
    run_dir = data_dir / "run"
    old_key = parse_key(shell(data_dir, "from indexer.messenger_config import messenger_settings as m;"
                                        "import base64; print(base64.b64encode(m().key).decode())"))
    service = ServiceProcess(data_dir, **service_env(data_dir)).start()
    pid = service.process.pid
    try:
        tcp = f"tcp://127.0.0.1:{free_port()}"
        out = manage(data_dir, "settings", "set", "Service.MessengerEndpoint", tcp).stdout
        assert "the service applies it now" in out
        wait_for(lambda: not service.socket.exists(), what="the Unix socket to go away")
        assert asyncio.run(ping_with(tcp, old_key, run_dir))["node"]

        new_key_text = generate_key()
        manage(data_dir, "settings", "set", "Service.MessengerKey", new_key_text)
        new_key = parse_key(new_key_text)
        assert asyncio.run(ping_with(tcp, old_key, run_dir))["node"]  # still accepted: the rotation's grace
        manage(data_dir, "settings", "set", "Service.MessengerKeyGraceSeconds", "0")  # revoke it at once

        def old_key_refused() -> bool:
            try:
                asyncio.run(ping_with(tcp, old_key, run_dir))
            except MessengerUnavailable as exc:
                return exc.reason == "key mismatch"
            return False

        wait_for(old_key_refused, what="the old key to be refused with 'key mismatch'")
        assert asyncio.run(ping_with(tcp, new_key, run_dir))["node"]

        manage(data_dir, "settings", "set", "Service.MessengerEndpoint", "")
        wait_for(service.socket.exists, what="the Unix socket to come back")
        assert asyncio.run(ping_with("", new_key, run_dir))["node"]
        assert service.process.pid == pid and service.process.poll() is None
    finally:
        service.stop()
