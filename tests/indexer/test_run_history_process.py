"""A real `runindexer` records its runs: who or what started each, its result and its own log lines, under the
primary lease's token; and the history survives a restart, with a run cut short by SIGKILL failed as interrupted."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.processes import ServiceProcess, manage, migrate, shell, wait_for

pytestmark = pytest.mark.slow

SLOW_RUNNER = "tests.indexer.slow_runner.SlowRunner"
SLOW = "Test Slow"

HISTORY = """
import json
from indexer.models import RunHistory
print(json.dumps([
    {"id": r.id, "result": r.result, "by": r.triggered_by, "trigger": r.trigger_id, "token": r.lease_token,
     "error": r.error, "log": [line["message"] for line in r.log]}
    for r in RunHistory.objects.filter(runner="Test Slow").order_by("id")
]))
"""


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    migrate(tmp_path)
    manage(tmp_path, "settings", "set", "Service.TriggerPollSeconds", "1")
    return tmp_path


def history(data_dir: Path) -> list[dict]:
    return json.loads(shell(data_dir, HISTORY))


def service(data_dir: Path, *, seconds: str) -> ServiceProcess:
    return ServiceProcess(data_dir, PROGET_EXTRA_RUNNERS=SLOW_RUNNER, PROGET_TEST_RUN_LOG=str(data_dir / "runs.log"),
                          PROGET_TEST_RUN_SECONDS=seconds)


def test_runindexer_records_scheduled_and_triggered_runs_with_their_log_lines(data_dir: Path) -> None:
    node = service(data_dir, seconds="0.2").start()
    try:
        wait_for(lambda: [run["result"] for run in history(data_dir)] == ["ok"], what="the scheduled run's record")
        manage(data_dir, "messenger", "run", SLOW)
        wait_for(lambda: [run["result"] for run in history(data_dir)] == ["ok", "ok"], what="the triggered run")
    finally:
        node.stop()
    scheduled, triggered = history(data_dir)
    assert (scheduled["by"], scheduled["trigger"]) == ("schedule", None)
    assert triggered["by"] == "cli" and triggered["trigger"] is not None
    for run in (scheduled, triggered):
        assert run["token"] == 1, "written under the primary lease's token"
        steps = [line for line in run["log"] if line.startswith("test slow runner step")]
        assert steps == [f"test slow runner step {n}" for n in range(10)]
        assert run["log"][-1] == "task runner Test Slow finished: worked 0.2 s"


def test_a_run_cut_short_by_sigkill_is_failed_as_interrupted_at_the_next_start(data_dir: Path) -> None:
    node = service(data_dir, seconds="60").start()
    wait_for(lambda: [run["result"] for run in history(data_dir)] == ["running"], what="the run's row")
    node.kill()
    node = service(data_dir, seconds="0.1").start()
    try:
        wait_for(lambda: [run["result"] for run in history(data_dir)] == ["failed", "ok"],
                 what="the interrupted run failed and its rerun recorded")
    finally:
        node.stop()
    cut, rerun = history(data_dir)
    assert cut["error"].startswith("interrupted: service node ")
    assert cut["error"].endswith(" stopped while it was running")
    assert rerun["by"] == "schedule (again: its previous run was interrupted)" and rerun["token"] == 2
