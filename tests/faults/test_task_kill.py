"""SIGKILL of the service node in the middle of a task: the slow test runner, and a feed reindex.

After the restart the interrupted trigger and run are failed with the reason (the trigger never re-run,
never left running), the runner is not shown running, the next request runs, and the simple API only ever
serves fully indexed files.
"""
from __future__ import annotations

import contextlib
import hashlib
import re
import sqlite3
import time
from collections import Counter
from pathlib import Path

import pytest

from feeds.indexing import WRITE_BATCH
from indexer.triggers import interrupted_reason
from tests.faults.support import FEED, not_due_yet, query, trigger_rows
from tests.feeds.builders import wheel
from tests.feeds.servers import daphne_serving
from tests.indexer.test_service_process import runs, service_env
from tests.processes import ServiceProcess, manage, spawn, wait_for

pytestmark = pytest.mark.slow

NODE = "svc-fault"
# More files than one write batch of the indexer, so a reindex commits rows before it is done.
FILES = WRITE_BATCH + 100


def _runner_status(data_dir: Path, runner: str) -> tuple[str, str]:
    """(state, the rest of its line) of `runner` as `manage.py messenger status` prints it."""
    status = manage(data_dir, "messenger", "status").stdout
    (line,) = [line.strip() for line in status.splitlines() if line.strip().startswith(runner)]
    state, _, rest = line[len(runner):].strip().partition(" ")
    return state, rest.strip()


def _run_marks(data_dir: Path) -> list[str]:
    """When the slow runner's run under way began, as the database holds it (other runners come and go)."""
    rows = query(data_dir, "SELECT running_since FROM indexer_runnerrecord"
                           " WHERE name = 'Test Slow' AND running_since IS NOT NULL")
    return [since for (since,) in rows]


def test_a_runner_killed_mid_run_fails_its_trigger_and_run_with_the_reason_and_the_next_run_works(
    node: Path,
) -> None:
    data = node
    not_due_yet(data, "Test Slow")
    service = ServiceProcess(data, PROGET_NODE_NAME=NODE, **service_env(data, PROGET_TEST_RUN_SECONDS="60"))
    service.start()
    try:
        manage(data, "messenger", "run", "Test Slow")
        wait_for(lambda: bool(runs(data)), what="the slow run to start")
        ((first, state, _),) = trigger_rows(data)
        assert state == "running"
        wait_for(lambda: bool(_run_marks(data)), what="the run's mark (written beside the run)")
        (started,) = _run_marks(data)
        service.kill()
        assert trigger_rows(data)[0][1] == "running", "a crash cannot finish anything"

        service.env["PROGET_TEST_RUN_SECONDS"] = "0.2"
        service.start()
        wait_for(lambda: trigger_rows(data)[0][1] != "running", what="the interrupted trigger to be failed")
        ((_, state, result),) = trigger_rows(data)
        assert (state, result) == ("failed", interrupted_reason(NODE))
        # The run itself is on record as interrupted, from when it started, and no longer as under way.
        state, rest = _runner_status(data, "Test Slow")
        assert state == "failed" and rest.startswith("last failed "), (state, rest)
        assert query(data, "SELECT last_started_at, last_result, last_error, running_since FROM indexer_runnerrecord"
                     " WHERE name = 'Test Slow'") == [(started, "failed", interrupted_reason(NODE), None)]

        manage(data, "messenger", "run", "Test Slow")
        wait_for(lambda: [row[1] for row in trigger_rows(data)] == ["failed", "done"], what="the next run")
        second = trigger_rows(data)[1][0]
        assert runs(data) == Counter({first: 1, second: 1}), "the interrupted trigger was re-run"
        state, rest = _runner_status(data, "Test Slow")
        assert state == "idle" and rest.startswith("last ok "), (state, rest)
        assert _run_marks(data) == []
    finally:
        service.stop()


def _indexed(data_dir: Path) -> list[tuple[str, str, str, str]]:
    return query(data_dir, "SELECT filename, project, sha256, index_error FROM feeds_packagefile")


def _frozen_mid_index(data_dir: Path, *, after: int = 1, timeout: float = 30) -> sqlite3.Connection:
    """Take the database's write lock once `after` rows are indexed: the indexer stops at its next write, however
    busy the machine, so the kill that follows lands mid-reindex. Returns the connection holding the lock."""
    db = sqlite3.connect(data_dir / "proget.sqlite3", isolation_level=None, timeout=timeout)
    deadline = time.monotonic() + timeout
    while db.execute("SELECT count(*) FROM feeds_packagefile").fetchone()[0] < after:
        assert time.monotonic() < deadline, "the reindex did not get going"
        time.sleep(0.002)
    db.execute("BEGIN IMMEDIATE")
    return db


def _served_projects(base: str) -> set[str]:
    import urllib.request

    with urllib.request.urlopen(f"{base}/pypi/{FEED}/simple/", timeout=10) as response:
        return set(re.findall(r'<a href="[^"]*">([^<]+)</a>', response.read().decode()))


def test_a_reindex_killed_midway_serves_only_whole_rows_and_the_next_reindex_completes(node: Path) -> None:
    data = node
    not_due_yet(data, "Feed Indexing")
    folder = data / "packages" / FEED
    for number in range(FILES):
        wheel(folder, f"pkg-{number}", "1.0")
    service = ServiceProcess(data, PROGET_NODE_NAME=NODE).start()
    with daphne_serving(data, log=data / "daphne.log") as base:
        try:
            # Not waited for: the reindex may be well under way before a manage.py command has even exited.
            request = spawn(data, "messenger", "reindex", FEED, log=data / "reindex.log")
            with contextlib.closing(_frozen_mid_index(data)) as lock:
                service.kill()  # while the indexer waits for the lock, at its next row
                lock.execute("ROLLBACK")
            assert request.wait(timeout=30) == 0, (data / "reindex.log").read_text()
            rows = _indexed(data)
            assert 0 < len(rows) < FILES, f"the kill missed the reindex ({len(rows)} rows)"
            for filename, _, sha256, error in rows:  # every row written is whole: it matches its file
                assert error == "" and sha256 == hashlib.sha256((folder / filename).read_bytes()).hexdigest()
            assert _served_projects(base) == {project for _, project, _, _ in rows}

            service.start()
            wait_for(lambda: trigger_rows(data)[0][1] != "running", what="the interrupted trigger to be failed")
            ((_, state, result),) = trigger_rows(data)
            assert (state, result) == ("failed", interrupted_reason(NODE))
            manage(data, "messenger", "reindex", FEED)
            wait_for(lambda: [row[1] for row in trigger_rows(data)] == ["failed", "done"], timeout=60,
                     what="the next reindex to finish")
            assert len(_indexed(data)) == FILES
            assert _served_projects(base) == {f"pkg-{number}" for number in range(FILES)}
        finally:
            service.stop()
