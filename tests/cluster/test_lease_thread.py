"""The primary lease is renewed on its own thread and database connection: a real service node whose shared
database thread is stuck (here: on a table lock the test holds) keeps renewing its lease (issue 12, item 4).

The lock is on the runner records, which the shared thread writes when a run starts and which nothing under the
lease row's lock touches (a stuck trigger claim would hold that row, a database-level wait no thread avoids)."""
from __future__ import annotations

import psycopg
import pytest

from tests.cluster.nodes import HEARTBEAT, holder, query, start_node
from tests.processes import wait_for

pytestmark = pytest.mark.slow

# Renewals to see while the shared thread is stuck: more than one, so a renewal already under way is not enough.
RENEWALS = 3


def _renewed_at(cluster: dict) -> float:
    return query(cluster, "SELECT extract(epoch FROM renewed_at) FROM indexer_servicelease")[0][0]


def _waiting_on_a_lock(cluster: dict) -> bool:
    """Whether a session of this database (the service's shared thread) waits for a lock."""
    rows = query(cluster, "SELECT count(*) FROM pg_stat_activity "
                          "WHERE datname = current_database() AND wait_event_type = 'Lock'")
    return rows[0][0] > 0


def test_the_lease_is_renewed_while_the_shared_database_thread_is_stuck(cluster: dict) -> None:
    start_node(cluster, "svc-a")
    wait_for(lambda: holder(cluster) == "svc-a", what="svc-a to become primary")
    [(token,)] = query(cluster, "SELECT token FROM indexer_servicelease")
    with psycopg.connect(cluster["url"]) as blocker:
        # The next run (Trigger Dispatch runs every second) records its start on the shared thread: stuck there.
        blocker.execute("LOCK TABLE indexer_runnerrecord IN ACCESS EXCLUSIVE MODE")
        wait_for(lambda: _waiting_on_a_lock(cluster), timeout=5, what="the shared thread to wait for the lock")
        stuck_at = _renewed_at(cluster)
        wait_for(lambda: _renewed_at(cluster) >= stuck_at + RENEWALS * HEARTBEAT, timeout=(RENEWALS + 2) * HEARTBEAT,
                 what="lease renewals while the shared thread is stuck")
        assert _waiting_on_a_lock(cluster), "the shared thread was no longer stuck"
        blocker.rollback()
    assert query(cluster, "SELECT holder, token FROM indexer_servicelease") == [("svc-a", token)]
