"""A saved setting reaches the other web processes at once by push (the Channels layer on Redis), not by their
poll: two real daphnes on one database, their heartbeat poll set far beyond the test. The page the admin saved on
shows its own web node applied at once."""
from __future__ import annotations

import contextlib
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.processes import manage, migrate, shell, start_daphne, stop, wait_for
from tests.web_clients import Browser

pytestmark = pytest.mark.slow

PASSWORD = "push-test-pw"
PAGE = "/administration/advanced-settings"
SETTING = "Service.TriggerPollSeconds"
# Web nodes re-record their settings version with each heartbeat: far beyond the test, so only a push is in time.
HEARTBEAT_SECONDS = "300"
# The push takes milliseconds; the rest is slack for two daphnes on 2 busy cores.
PUSH_BOUND = 2.0


def _applied(data_dir: Path) -> dict[str, int]:
    """Each web node's applied settings version, by node name."""
    with contextlib.closing(sqlite3.connect(data_dir / "proget.sqlite3", timeout=10)) as db:
        return dict(db.execute("SELECT name, settings_version FROM indexer_node WHERE kind = 'web'").fetchall())


def _version(data_dir: Path) -> int:
    with contextlib.closing(sqlite3.connect(data_dir / "proget.sqlite3", timeout=10)) as db:
        return db.execute("SELECT version FROM advanced_settings_settingsversion").fetchone()[0]


@pytest.fixture
def two_webs(tmp_path: Path, redis_url: str) -> Iterator[dict[str, int]]:
    migrate(tmp_path)
    manage(tmp_path, "settings", "set", "Runners.ServiceHeartbeat.IntervalSeconds", HEARTBEAT_SECONDS)
    shell(tmp_path, "from django.contrib.auth.models import User; "
                    f"User.objects.create_superuser('admin', 'admin@example.com', {PASSWORD!r})")
    processes, ports = [], {}
    try:
        for name in ("web-a", "web-b"):
            process, ports[f"{name} (web)"] = start_daphne(tmp_path, log=tmp_path / f"{name}.log",
                                                            PROGET_NODE_NAME=name, REDIS_URL=redis_url)
            processes.append(process)
        yield ports
    finally:
        for process in processes:
            stop(process)


def test_a_save_reaches_the_other_web_process_by_push(tmp_path: Path, two_webs: dict[str, int]) -> None:
    browsers = {name: Browser(port) for name, port in two_webs.items()}
    for browser in browsers.values():
        browser.login("admin", PASSWORD)  # a first request: the node registers and listens for pushes
    wait_for(lambda: set(_applied(tmp_path)) == set(two_webs), what="both web nodes to register")

    saver = browsers["web-a (web)"]
    status, _, _ = saver.post_form(PAGE, PAGE, {"name": SETTING, "value": "17"})
    assert status == 302
    version = _version(tmp_path)

    # The page the admin saved on: its own node has applied the new version already.
    _, _, page = saver.request("GET", PAGE)
    row = re.search(r'<tr data-node="web-a \(web\)">.*?</tr>', page, re.S)
    assert row and "applied" in row.group(0) and "not applied yet" not in row.group(0), row
    # The other web process: pushed, long before its next heartbeat would have recorded it.
    wait_for(lambda: _applied(tmp_path)["web-b (web)"] == version, timeout=PUSH_BOUND,
             what="web-b to apply the new settings version")
