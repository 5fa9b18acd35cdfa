"""A real daphne web node keeps its registry row fresh while no request comes, so an idle node is not stale."""
from __future__ import annotations

import contextlib
import sqlite3
import time
import urllib.request
from pathlib import Path

import pytest

from tests.processes import manage, migrate, start_daphne, stop, wait_for

pytestmark = pytest.mark.slow


def _heartbeats(data_dir: Path) -> list[str]:
    with contextlib.closing(sqlite3.connect(data_dir / "proget.sqlite3", timeout=10)) as db:
        return [at for (at,) in db.execute("SELECT heartbeat_at FROM indexer_node WHERE kind = 'web'")]


def test_an_idle_web_node_beats_every_heartbeat_interval_without_requests(tmp_path: Path) -> None:
    migrate(tmp_path)
    manage(tmp_path, "settings", "set", "Runners.ServiceHeartbeat.IntervalSeconds", "1")
    daphne, port = start_daphne(tmp_path, log=tmp_path / "daphne.log")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as response:
            assert response.status == 200
        wait_for(lambda: bool(_heartbeats(tmp_path)), what="the web node to register")
        seen = set(_heartbeats(tmp_path))
        deadline = time.monotonic() + 20
        while len(seen) < 4:  # three more beats, and not one request since the first
            assert time.monotonic() < deadline, f"beats seen: {sorted(seen)}\n{(tmp_path / 'daphne.log').read_text()}"
            time.sleep(0.2)
            seen.update(_heartbeats(tmp_path))
        assert len(_heartbeats(tmp_path)) == 1  # one web node, beating
        assert "Traceback" not in (tmp_path / "daphne.log").read_text()
    finally:
        stop(daphne)
