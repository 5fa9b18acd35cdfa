"""Claims under concurrency on the real PostgreSQL: triggers claimed exactly once, one lease holder per token."""
from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from tests.claim_race import CLAIMER, race
from tests.processes import manage

pytestmark = pytest.mark.slow

TRIGGERS = 300
PROCESSES = 3

LEASER = """
import json, os, pathlib, time
from cluster.lease import lease_acquire

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


def test_racing_processes_claim_each_of_300_triggers_exactly_once_on_postgres(
    tmp_path: Path, pg_database_url: str
) -> None:
    with psycopg.connect(pg_database_url) as db:
        db.execute("TRUNCATE indexer_trigger RESTART IDENTITY")
    manage(tmp_path, "shell", "-c", "from indexer.triggers import trigger_create as c\n"
           f"for i in range({TRIGGERS}): c(kind='runner.run', target=str(i), requested_by='race')",
           DATABASE_URL=pg_database_url)
    results = race(tmp_path, CLAIMER, "CLAIMED", processes=PROCESSES, DATABASE_URL=pg_database_url)
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
    results = race(tmp_path, LEASER, "HELD", processes=PROCESSES, DATABASE_URL=pg_database_url)
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
