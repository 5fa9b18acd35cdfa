"""Claims under concurrency on the real PostgreSQL: triggers claimed exactly once, one lease holder per token."""
from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from tests.processes import manage, spawn, stop, wait_for

pytestmark = pytest.mark.slow

TRIGGERS = 300
PROCESSES = 3

# Each process runs two threads claiming in small batches; on PostgreSQL (READ COMMITTED) a claimer that
# lost every row of its batch to another gets [] while rows are still pending, so it goes on until none are.
CLAIMER = """
import json, os, pathlib, threading, time
from django.db import connection
from indexer.triggers import trigger_claim, triggers_pending_count

node = os.environ["CLAIM_NODE"]
claims = {}

def claim(name):
    mine = claims[name] = []
    while triggers_pending_count():
        mine += [t.id for t in trigger_claim(node=name, limit=2)]
        time.sleep(0.001)
    connection.close()

pathlib.Path(os.environ["CLAIM_READY"]).touch()
while not pathlib.Path(os.environ["CLAIM_GO"]).exists():
    time.sleep(0.002)
threads = [threading.Thread(target=claim, args=(f"{node}-{i}",)) for i in range(2)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print("CLAIMED", json.dumps(claims))
"""

LEASER = """
import json, os, pathlib, time
from indexer.lease import lease_acquire

pathlib.Path(os.environ["CLAIM_READY"]).touch()
while not pathlib.Path(os.environ["CLAIM_GO"]).exists():
    time.sleep(0.002)
tokens, token = [], None
for _ in range(20):
    held = lease_acquire(node=os.environ["CLAIM_NODE"], token=token, stale_seconds=30)
    token = held.token if held else token
    tokens.append(held.token if held else None)
print("HELD", json.dumps(tokens))
"""


def _race(tmp_path: Path, url: str, script: str, marker: str) -> dict[str, object]:
    go = tmp_path / "go"
    racers = [
        spawn(tmp_path, "shell", "-c", script, log=tmp_path / f"racer{i}.log", DATABASE_URL=url,
              CLAIM_NODE=f"node{i}", CLAIM_READY=str(tmp_path / f"ready{i}"), CLAIM_GO=str(go))
        for i in range(PROCESSES)
    ]
    try:
        wait_for(lambda: all((tmp_path / f"ready{i}").exists() for i in range(PROCESSES)), timeout=60,
                 what="the racers to start")
        go.touch()
        for racer in racers:
            racer.wait(timeout=90)
    finally:
        for racer in racers:
            stop(racer)
    results = {}
    for i, racer in enumerate(racers):
        log = (tmp_path / f"racer{i}.log").read_text()
        assert racer.returncode == 0, log
        line = next(line for line in log.splitlines() if line.startswith(marker))
        results[f"node{i}"] = json.loads(line[len(marker) + 1:])
    return results


def test_racing_processes_claim_each_of_300_triggers_exactly_once_on_postgres(
    tmp_path: Path, pg_database_url: str
) -> None:
    with psycopg.connect(pg_database_url) as db:
        db.execute("TRUNCATE indexer_trigger RESTART IDENTITY")
    manage(tmp_path, "shell", "-c", "from indexer.triggers import trigger_create as c\n"
           f"for i in range({TRIGGERS}): c(kind='runner.run', target=str(i), requested_by='race')",
           DATABASE_URL=pg_database_url)
    results = _race(tmp_path, pg_database_url, CLAIMER, "CLAIMED")
    claims = {name: ids for per_process in results.values() for name, ids in per_process.items()}
    everything = [trigger_id for ids in claims.values() for trigger_id in ids]
    assert len(claims) == 2 * PROCESSES
    assert sorted(everything) == list(range(1, TRIGGERS + 1)), "each trigger is claimed exactly once"
    assert sum(1 for ids in claims.values() if ids) >= 2, "the claimers did not overlap"
    with psycopg.connect(pg_database_url) as db:
        owners = dict(db.execute("SELECT id, claimed_by FROM indexer_trigger WHERE state = 'running'").fetchall())
    assert owners == {trigger_id: node for node, ids in claims.items() for trigger_id in ids}


def test_racing_nodes_get_one_lease_holder_and_one_token_on_postgres(tmp_path: Path, pg_database_url: str) -> None:
    with psycopg.connect(pg_database_url) as db:
        db.execute("DELETE FROM indexer_servicelease")
        db.execute("DELETE FROM indexer_failover")
    results = _race(tmp_path, pg_database_url, LEASER, "HELD")
    winners = {node for node, tokens in results.items() if any(tokens)}
    assert len(winners) == 1, results
    (winner,) = winners
    # The winner took it once (token 1) and then renewed it; the others never got it.
    assert results[winner] == [1] * 20, results
    with psycopg.connect(pg_database_url) as db:
        holder, token = db.execute("SELECT holder, token FROM indexer_servicelease").fetchone()
        failovers = db.execute("SELECT to_node, token FROM indexer_failover ORDER BY token").fetchall()
    assert holder == winner
    assert (holder, token) == (winner, 1)
    assert failovers == [(winner, 1)], "one failover record per change of ownership"
