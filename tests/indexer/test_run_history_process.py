"""A real `runindexer` records its runs: who or what started each, its result and its own log lines, under the
primary lease's token; and the history survives a restart, with a run cut short by SIGKILL failed as interrupted."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from tests.processes import ServiceProcess, manage, migrate, wait_for

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


@dataclass(frozen=True)
class Node:
    """A node's data dir and the environment choosing its database (none: the embedded SQLite)."""

    dir: Path
    env: dict[str, str]


@pytest.fixture(params=["sqlite", "postgresql"])
def node(request: pytest.FixtureRequest, tmp_path: Path) -> Node:
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_database_url")  # one database per module: start each test clean
        with psycopg.connect(url) as db:
            db.execute("TRUNCATE indexer_trigger, indexer_servicelease, indexer_failover, indexer_node, "
                       "indexer_runnerrecord, indexer_runhistory RESTART IDENTITY")
        found = Node(dir=tmp_path, env={"DATABASE_URL": url})
    else:
        migrate(tmp_path)
        found = Node(dir=tmp_path, env={})
    manage(tmp_path, "settings", "set", "Service.TriggerPollSeconds", "1", **found.env)
    return found


def history(node: Node) -> list[dict]:
    return json.loads(manage(node.dir, "shell", "--no-imports", "-c", HISTORY, **node.env).stdout)


def service(node: Node, *, seconds: str) -> ServiceProcess:
    return ServiceProcess(node.dir, PROGET_EXTRA_RUNNERS=SLOW_RUNNER, PROGET_TEST_RUN_LOG=str(node.dir / "runs.log"),
                          PROGET_TEST_RUN_SECONDS=seconds, **node.env)


def test_runindexer_records_scheduled_and_triggered_runs_with_their_log_lines(node: Node) -> None:
    process = service(node, seconds="0.2").start()
    try:
        wait_for(lambda: [run["result"] for run in history(node)] == ["ok"], what="the scheduled run's record")
        manage(node.dir, "messenger", "run", SLOW, **node.env)
        wait_for(lambda: [run["result"] for run in history(node)] == ["ok", "ok"], what="the triggered run")
    finally:
        process.stop()
    scheduled, triggered = history(node)
    assert (scheduled["by"], scheduled["trigger"]) == ("schedule", None)
    assert triggered["by"] == "cli" and triggered["trigger"] is not None
    for run in (scheduled, triggered):
        assert run["token"] == 1, "written under the primary lease's token"
        steps = [line for line in run["log"] if line.startswith("test slow runner step")]
        assert steps == [f"test slow runner step {n}" for n in range(10)]
        assert run["log"][-1] == "task runner Test Slow finished: worked 0.2 s"


def test_a_run_cut_short_by_sigkill_is_failed_as_interrupted_at_the_next_start(node: Node) -> None:
    process = service(node, seconds="60").start()
    wait_for(lambda: [run["result"] for run in history(node)] == ["running"], what="the run's row")
    process.kill()
    process = service(node, seconds="0.1").start()
    try:
        wait_for(lambda: [run["result"] for run in history(node)] == ["failed", "ok"],
                 what="the interrupted run failed and its rerun recorded")
    finally:
        process.stop()
    cut, rerun = history(node)
    assert cut["error"].startswith("interrupted: service node ")
    assert cut["error"].endswith(" stopped while it was running")
    assert rerun["by"] == "schedule (again: its previous run was interrupted)" and rerun["token"] == 2
