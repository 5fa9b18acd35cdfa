"""Two real service nodes on one PostgreSQL database with `tcp://*:PORT`: one primary, failover on SIGKILL
within FailoverStaleSeconds + one heartbeat, on SIGTERM at the standby's next heartbeat, clients follow the new
primary, and a paused (SIGSTOP) old primary that wakes claims, runs and records nothing (fencing): the new term's
runner records stay as it wrote them. No trigger is lost or run twice."""
from __future__ import annotations

import re
import signal
import time

import pytest

from tests.cluster.nodes import (
    HEARTBEAT,
    PINGER,
    PRODUCER,
    STALE,
    assert_exactly_once,
    assert_woken_node_did_nothing,
    background,
    holder,
    interrupted_by_stop,
    json_lines,
    produced,
    query,
    runs,
    two_nodes,
)
from tests.processes import manage, wait_for

pytestmark = pytest.mark.slow

# Process start-up and the test's own polling add to the bound the nodes promise.
TAKEOVER_SLACK = 2.0

# The Cluster page as an admin sees it, rendered by the real view against the cluster's database.
CLUSTER_PAGE = """
from django.contrib.auth.models import User
from django.test import Client
client = Client()
client.force_login(User.objects.create_superuser("page-admin", password="x"))
response = client.get("/administration/cluster", HTTP_HOST="127.0.0.1")
assert response.status_code == 200, response.status_code
print(response.content.decode())
"""


def _cluster_page(cluster: dict) -> str:
    return manage(cluster["dir"], "shell", "--no-imports", "-c", CLUSTER_PAGE, DATABASE_URL=cluster["url"]).stdout


def test_the_standby_takes_over_a_killed_primary_and_clients_follow(cluster: dict) -> None:
    a, b = two_nodes(cluster)
    pinger = background(cluster, PINGER, log="pinger.log")
    count = 120
    producer = background(cluster, PRODUCER, str(count), log="producer.log")

    def pings() -> list[dict]:
        return json_lines(cluster, "pinger.log")

    wait_for(lambda: any(p.get("node") == "svc-a" for p in pings()), what="the client to reach svc-a")
    wait_for(lambda: len(runs(cluster)) >= 10, timeout=30, what="triggers to flow")
    a.kill()
    killed = time.time()
    wait_for(lambda: holder(cluster) == "svc-b", timeout=STALE + HEARTBEAT + TAKEOVER_SLACK,
             what="svc-b to take over within FailoverStaleSeconds + one heartbeat")
    took_over = time.time() - killed
    wait_for(lambda: any(p.get("node") == "svc-b" for p in pings()), timeout=10,
             what="the same client to reach the new primary")
    assert pinger.poll() is None, "the client was restarted"
    assert producer.wait(timeout=120) == 0, (cluster["dir"] / "producer.log").read_text()[-2000:]
    rows = assert_exactly_once(cluster, produced(cluster))
    assert {row[3] for row in rows} <= {"svc-a", "svc-b"} and any(row[3] == "svc-b" for row in rows)
    ((from_node, to_node, reason),) = query(
        cluster, "SELECT from_node, to_node, reason FROM indexer_failover WHERE to_node = 'svc-b'")
    assert from_node == "svc-a" and "stopped renewing" in reason
    assert took_over <= STALE + HEARTBEAT + TAKEOVER_SLACK
    page = _cluster_page(cluster)
    new_primary = page.split('data-node="svc-b"', 1)[1].split("</tr>", 1)[0]
    assert '<span class="tag ok">primary</span>' in new_primary, new_primary
    assert "primary" not in page.split('data-node="svc-a"', 1)[1].split("</tr>", 1)[0]
    assert "stopped renewing" in page, "the page does not show the failover's reason"
    b.stop()


def test_a_cleanly_stopped_primary_hands_over_at_the_next_heartbeat(cluster: dict) -> None:
    a, b = two_nodes(cluster)
    count = 100
    producer = background(cluster, PRODUCER, str(count), log="producer.log")
    wait_for(lambda: len(runs(cluster)) >= 5, timeout=30, what="triggers to flow")
    assert a.stop() == 0, a.log.read_text()[-3000:]
    stopped = time.time()
    wait_for(lambda: holder(cluster) == "svc-b", timeout=2 * HEARTBEAT + TAKEOVER_SLACK,
             what="svc-b to take over at its next heartbeat")
    assert time.time() - stopped <= 2 * HEARTBEAT + TAKEOVER_SLACK
    assert producer.wait(timeout=120) == 0, (cluster["dir"] / "producer.log").read_text()[-2000:]
    rows = assert_exactly_once(cluster, produced(cluster))
    assert any(row[3] == "svc-b" for row in rows)
    ((reason,),) = query(cluster, "SELECT reason FROM indexer_failover WHERE to_node = 'svc-b'")
    assert "released the lease" in reason, reason
    log = a.log.read_text()
    assert len(re.findall(r"svc-a steps down from primary \(lease token \d+\): service node stopping", log)) == 1, \
        log[-3000:]
    assert "Traceback" not in log, log[-3000:]
    b.stop()


def test_a_paused_primary_that_wakes_claims_and_runs_nothing(cluster: dict) -> None:
    a, b = two_nodes(cluster)
    count = 100
    producer = background(cluster, PRODUCER, str(count), log="producer.log")
    wait_for(lambda: len(runs(cluster)) >= 5, timeout=30, what="triggers to flow")
    a.process.send_signal(signal.SIGSTOP)
    wait_for(lambda: holder(cluster) == "svc-b", timeout=STALE + HEARTBEAT + TAKEOVER_SLACK + 1,
             what="svc-b to take over from the paused svc-a")
    woke = time.time()
    a.process.send_signal(signal.SIGCONT)
    wait_for(lambda: "steps down from primary" in a.log.read_text(), timeout=10,
             what="the woken svc-a to step down")
    assert producer.wait(timeout=120) == 0, (cluster["dir"] / "producer.log").read_text()[-2000:]
    rows = assert_exactly_once(cluster, produced(cluster))
    assert a.process.poll() is None, "the old primary should live on as a standby"
    assert_woken_node_did_nothing(cluster, rows, "svc-a", a.process.pid, woke)
    assert any(row[3] == "svc-b" for row in rows)
    assert holder(cluster) == "svc-b"
    a.stop()
    b.stop()


# Long enough that svc-a's first run is under way when it is paused, and svc-b's run outlasts svc-a's waking.
LONG_RUN_SECONDS = 12.0


def _slow_record(cluster: dict) -> tuple:
    """(running_node, running_since, last_started_at, last_result, last_error) of the slow runner's record."""
    rows = query(cluster, "SELECT running_node, running_since, last_started_at, last_result, last_error "
                          "FROM indexer_runnerrecord WHERE name = 'Test Slow'")
    return rows[0] if rows else (None,) * 5


def test_a_woken_primary_writes_nothing_into_the_new_terms_runner_records(cluster: dict) -> None:
    a, b = two_nodes(cluster, run_seconds=LONG_RUN_SECONDS)
    wait_for(lambda: _slow_record(cluster)[0] == "svc-a", what="svc-a's first run of the slow runner to be under way")
    a.process.send_signal(signal.SIGSTOP)
    wait_for(lambda: holder(cluster) == "svc-b", timeout=STALE + HEARTBEAT + TAKEOVER_SLACK + 1,
             what="svc-b to take over from the paused svc-a")
    # svc-b records svc-a's run as interrupted and starts the scheduled run again at once, under its own term.
    wait_for(lambda: _slow_record(cluster)[0] == "svc-b", what="svc-b's run of the slow runner to be under way")
    started = _slow_record(cluster)[1]
    a.process.send_signal(signal.SIGCONT)
    # Until svc-b's run ends, its record must keep saying so, whatever the woken svc-a does meanwhile.
    seen = []
    deadline = time.monotonic() + LONG_RUN_SECONDS + 30
    while (record := _slow_record(cluster))[2] != started or record[1] is not None:
        assert time.monotonic() < deadline, f"svc-b's run did not end: {record}"
        if record[1] != started or record[0] != "svc-b":
            seen.append(record)
        time.sleep(0.05)
    assert seen == [], f"the woken svc-a wrote into svc-b's runner record: {seen[:3]}"
    assert record[3:] == ("ok", ""), record
    assert interrupted_by_stop(cluster) == [], "the woken svc-a recorded its cancelled runs over the new term's records"
    log = a.log.read_text()
    assert log.count("steps down from primary") == 1, log[-3000:]
    assert "Traceback" not in log and "LeaseLost" not in log, log[-3000:]
    assert holder(cluster) == "svc-b" and a.process.poll() is None
    a.stop()
    b.stop()
