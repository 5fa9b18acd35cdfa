"""`tcp://*` is resolved without blocking the event loop (issue 12, item 7): a web process whose status link
keeps trying to reach the primary while the test holds a lock on the lease table (the resolver's lookup waits
for it) keeps its event loop turning, so its WebSockets keep flowing. Real process, real PostgreSQL lock."""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from indexer.messenger_config import local_resolver
from messenger.errors import MessengerError
from tests.processes import ROOT, free_port, manage, node_env, wait_for

pytestmark = pytest.mark.slow

# The web process's status link with one viewer, as daphne runs it, and a ticker that reports how late the loop
# turns: one JSON line per tick.
WEB_LOOP = """
import asyncio, json, time
import django
django.setup()
from proget_web.status.link import service_link

class Viewer:
    async def deliver(self, message):
        pass

async def main():
    service_link().join(Viewer())
    last = time.monotonic()
    while True:
        await asyncio.sleep(0.05)
        now = time.monotonic()
        print(json.dumps({"t": time.time(), "gap": now - last}), flush=True)
        last = now

asyncio.run(main())
"""
# How long the test holds the lock: the old resolver blocked the loop up to 2 s per connect attempt.
LOCKED_SECONDS = 3.0
# A loop that turns is late by a tick's scheduling at most; far below the old 2 s freeze.
MAX_GAP_SECONDS = 0.5


@pytest.fixture
def web_loop(tmp_path: Path, pg_database_url: str) -> Iterator[tuple[Path, str]]:
    port = free_port()  # nothing listens: every connect attempt resolves `tcp://*` again
    manage(tmp_path, "settings", "set", "Service.MessengerEndpoint", f"tcp://*:{port}", DATABASE_URL=pg_database_url)
    log = tmp_path / "web.log"
    process = subprocess.Popen([sys.executable, "-c", WEB_LOOP], cwd=ROOT, stdout=log.open("w"),
                               stderr=subprocess.STDOUT, env=node_env(tmp_path, DATABASE_URL=pg_database_url))
    try:
        yield log, pg_database_url
    finally:
        process.kill()
        process.wait()


def _ticks(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]


def _lookup_waits(db: psycopg.Connection) -> bool:
    """Whether another session (the web process's resolver) waits for the lock the test holds."""
    rows = db.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                      "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()").fetchall()
    return rows[0][0] > 0


def test_the_event_loop_keeps_turning_while_the_resolver_waits_for_the_database(
    web_loop: tuple[Path, str],
) -> None:
    log, url = web_loop
    wait_for(lambda: len(_ticks(log)) >= 5, what="the web process's loop to run")
    with psycopg.connect(url) as blocker, psycopg.connect(url, autocommit=True) as observer:
        blocker.execute("LOCK TABLE indexer_servicelease IN ACCESS EXCLUSIVE MODE")
        locked = time.time()
        wait_for(lambda: _lookup_waits(observer), timeout=5, what="a resolver lookup to wait for the lock")
        wait_for(lambda: _ticks(log)[-1]["t"] > locked + LOCKED_SECONDS, timeout=LOCKED_SECONDS + 5,
                 what="the loop to tick on")
        assert _lookup_waits(observer), "the lookup no longer waited: the test proved nothing"
        blocker.rollback()
    gaps = [tick["gap"] for tick in _ticks(log) if tick["t"] > locked]
    assert max(gaps) < MAX_GAP_SECONDS, f"the loop froze for {max(gaps):.2f} s"


def test_the_blocking_resolver_refuses_to_run_inside_an_event_loop() -> None:
    async def main() -> None:
        with pytest.raises(MessengerError, match="would block the event loop"):
            local_resolver()

    asyncio.run(main())
