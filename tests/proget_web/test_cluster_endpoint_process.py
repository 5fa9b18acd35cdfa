"""A real `runindexer` node follows its own endpoint override (set as the Cluster page does) without a restart,
goes back to the cluster-wide endpoint when it is cleared, and registers again when its row is removed."""
from __future__ import annotations

import contextlib
import socket
import sqlite3
from pathlib import Path

import pytest

from tests.processes import ServiceProcess, free_port, manage, migrate, wait_for

pytestmark = pytest.mark.slow

NODE = "svc-x"
# What the Cluster page's form calls, from a process of the same machine (PROGET_NODE_NAME=NODE).
OVERRIDE = """
from administration.services import endpoint_override_change
print(endpoint_override_change(node={node!r}, value={value!r}, actor="admin").message)
"""


def _django(data_dir: Path, code: str, **env: str) -> str:
    return manage(data_dir, "shell", "--no-imports", "-c", code, **env).stdout.strip()


def _sql(data_dir: Path, query: str, *params: object) -> list[tuple]:
    """Read or write the node's SQLite database directly (a shell process per poll would be slow)."""
    with contextlib.closing(sqlite3.connect(data_dir / "proget.sqlite3", timeout=10)) as db, db:
        return db.execute(query, params).fetchall()


def _accepts(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _row(data_dir: Path) -> dict | None:
    """The node's registry row: its endpoint, the settings version it applied, and the current version."""
    rows = _sql(data_dir, "SELECT endpoint, settings_version FROM indexer_node WHERE name = ?", NODE)
    (version,) = _sql(data_dir, "SELECT version FROM advanced_settings_settingsversion")
    return {"endpoint": rows[0][0], "settings": rows[0][1], "now": version[0]} if rows else None


def _ping(data_dir: Path, **env: str) -> tuple[int, str]:
    result = manage(data_dir, "messenger", "ping", "--timeout", "3", check=False, **env)
    return result.returncode, result.stdout + result.stderr


def test_an_override_moves_a_running_node_and_clearing_it_moves_it_back(tmp_path: Path) -> None:
    cluster_port, own_port = free_port(), free_port()
    cluster, own = f"tcp://127.0.0.1:{cluster_port}", f"tcp://127.0.0.1:{own_port}"
    migrate(tmp_path)
    manage(tmp_path, "settings", "set", "Service.MessengerEndpoint", cluster)
    service = ServiceProcess(tmp_path, PROGET_NODE_NAME=NODE).start(ready=lambda: _accepts(cluster_port))
    pid = service.process.pid
    try:
        wait_for(lambda: (_row(tmp_path) or {}).get("endpoint") == cluster, timeout=20, what="the node to register")

        out = _django(tmp_path, OVERRIDE.format(node=NODE, value=own), PROGET_NODE_NAME=NODE)
        assert f"{NODE} now uses its own endpoint {own}; the service applies it now." in out
        wait_for(lambda: _accepts(own_port) and not _accepts(cluster_port), what="the node to move to its own port")
        code, out = _ping(tmp_path, PROGET_NODE_NAME=NODE)  # this node's processes follow the override
        assert code == 0 and f"pong from {NODE}" in out
        code, out = _ping(tmp_path, PROGET_NODE_NAME="another-node")  # other nodes keep the cluster-wide one
        assert code != 0 and "service not reachable" in out
        wait_for(lambda: (_row(tmp_path) or {}).get("endpoint") == own, what="the registry to show the new endpoint")

        out = _django(tmp_path, OVERRIDE.format(node=NODE, value=""), PROGET_NODE_NAME=NODE)
        assert f"{NODE} now uses the cluster-wide endpoint; the service applies it now." in out
        wait_for(lambda: _accepts(cluster_port) and not _accepts(own_port), what="the node to move back")
        code, out = _ping(tmp_path, PROGET_NODE_NAME="another-node")
        assert code == 0 and f"pong from {NODE}" in out

        # Removed from the registry while it runs (as after being stale): its next heartbeat registers it again.
        _sql(tmp_path, "DELETE FROM indexer_node WHERE name = ?", NODE)
        wait_for(lambda: _row(tmp_path) is not None, timeout=20, what="the node to register again")
        row = _row(tmp_path)
        assert row["endpoint"] == cluster and row["settings"] == row["now"]
        assert service.process.pid == pid and service.process.poll() is None
    finally:
        service.stop()
