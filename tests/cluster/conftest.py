"""The `cluster` fixture of the real-process service-node tests (helpers in tests/cluster/nodes.py)."""
from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.cluster.nodes import HEARTBEAT, STALE
from tests.processes import free_port, manage


@pytest.fixture
def cluster(tmp_path: Path, pg_database_url: str) -> Iterator[dict]:
    """A clean database (this module's), the settings for a fast failover, and a messenger port."""
    with psycopg.connect(pg_database_url) as db:
        db.execute("TRUNCATE indexer_trigger, indexer_servicelease, indexer_failover, indexer_node, "
                   "indexer_runnerrecord RESTART IDENTITY")
    port = free_port("127.0.0.2")
    for name, value in [("Service.MessengerEndpoint", f"tcp://*:{port}"), ("Service.HeartbeatSeconds", HEARTBEAT),
                        ("Service.FailoverStaleSeconds", STALE), ("Service.TriggerPollSeconds", 1)]:
        manage(tmp_path, "settings", "set", name, str(value), DATABASE_URL=pg_database_url)
    processes: list[subprocess.Popen] = []
    yield {"url": pg_database_url, "port": port, "dir": tmp_path, "processes": processes}
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGCONT)
            process.kill()
            process.wait()
