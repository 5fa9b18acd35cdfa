"""Two real service nodes on one PostgreSQL database with `tcp://*:PORT`: one primary, failover on SIGKILL
within FailoverStaleSeconds + one heartbeat, clients follow the new primary, and a paused (SIGSTOP) old
primary that wakes claims and runs nothing (fencing). No trigger is lost or run twice."""
from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.processes import ROOT, ServiceProcess, free_port, manage, node_env, wait_for

pytestmark = pytest.mark.slow

SLOW_RUNNER = "tests.indexer.slow_runner.SlowRunner"
HEARTBEAT, STALE = 1, 3
# Process start-up and the test's own polling add to the bound the nodes promise.
TAKEOVER_SLACK = 2.0
IPS = {"svc-a": "127.0.0.2", "svc-b": "127.0.0.3"}

PRODUCER = """
import sys, time
import django
django.setup()
from indexer.trigger_requests import trigger_request
for _ in range(int(sys.argv[1])):
    trigger_request(kind="runner.run", target="Test Slow", requested_by="producer")
    time.sleep(0.03)
"""

# One long-lived client, as a web node holds one: pings through `tcp://*:PORT` and the resolver, never restarted.
PINGER = """
import asyncio, json, time
import django
django.setup()
from asgiref.sync import sync_to_async
from messenger.client import MessengerClient
from messenger.config import local_resolver, messenger_settings

async def main():
    config = await sync_to_async(messenger_settings)()
    client = MessengerClient(endpoint=config.endpoint, key=config.key, run_dir=config.run_dir,
                             resolver=local_resolver, connect_timeout=1, request_timeout=1,
                             keepalive_interval=0.5, idle_timeout=2, backoff_min=0.1, backoff_max=0.5)
    client.start()
    while True:
        try:
            reply = await client.request("ping", timeout=1)
            print(json.dumps({"t": time.time(), "node": reply["node"]}), flush=True)
        except Exception as exc:
            print(json.dumps({"t": time.time(), "error": str(exc)}), flush=True)
        await asyncio.sleep(0.2)

asyncio.run(main())
"""


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


def _node(cluster: dict, name: str) -> ServiceProcess:
    data_dir = cluster["dir"] / name
    data_dir.mkdir(exist_ok=True)
    node = ServiceProcess(data_dir, DATABASE_URL=cluster["url"], PROGET_NODE_NAME=name, PROGET_NODE_IP=IPS[name],
                          PROGET_EXTRA_RUNNERS=SLOW_RUNNER, PROGET_TEST_RUN_LOG=str(cluster["dir"] / "runs.log"),
                          PROGET_TEST_RUN_SECONDS="0.2")

    def listening() -> bool:
        with socket.socket() as probe:
            return probe.connect_ex((IPS[name], cluster["port"])) == 0

    node.start(ready=listening)
    cluster["processes"].append(node.process)
    return node


def _query(cluster: dict, sql: str) -> list[tuple]:
    with psycopg.connect(cluster["url"]) as db:
        return db.execute(sql).fetchall()


def _holder(cluster: dict) -> str | None:
    rows = _query(cluster, "SELECT holder FROM indexer_servicelease")
    return rows[0][0] if rows and rows[0][0] else None


def _background(cluster: dict, code: str, *args: str, log: str) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", code, *args], cwd=ROOT,
                               env=node_env(cluster["dir"], DATABASE_URL=cluster["url"]),
                               stdout=(cluster["dir"] / log).open("w"), stderr=subprocess.STDOUT)
    cluster["processes"].append(process)
    return process


def _two_nodes(cluster: dict) -> tuple[ServiceProcess, ServiceProcess]:
    a = _node(cluster, "svc-a")
    wait_for(lambda: _holder(cluster) == "svc-a", what="svc-a to become primary")
    b = _node(cluster, "svc-b")
    time.sleep(2 * HEARTBEAT)  # b tries the lease at least once
    assert _holder(cluster) == "svc-a", "the standby took a fresh lease"
    assert "is now the primary" not in b.log.read_text()
    return a, b


def _runs(cluster: dict) -> list[tuple[int, int, float]]:
    """(trigger id, pid, unix time) of each trigger run the slow runner started."""
    log = cluster["dir"] / "runs.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return [(int(t), int(p), float(at)) for t, p, at in (line.split() for line in lines) if t != "-"]


def _triggers(cluster: dict) -> list[tuple]:
    return _query(cluster, "SELECT id, state, result, claimed_by, extract(epoch FROM claimed_at) "
                           "FROM indexer_trigger ORDER BY id")


def _assert_exactly_once(cluster: dict, count: int) -> list[tuple]:
    def all_finished() -> bool:
        rows = _triggers(cluster)
        return len(rows) == count and all(row[1] in {"done", "failed"} for row in rows)

    wait_for(all_finished, timeout=90, what="every trigger to finish")
    rows = _triggers(cluster)
    started = Counter(trigger_id for trigger_id, _, _ in _runs(cluster))
    assert max(started.values()) == 1, "a trigger ran twice"
    for trigger_id, state, result, _, _ in rows:
        if state == "done":
            assert started[trigger_id] == 1, (trigger_id, state, result)
        else:
            assert result, (trigger_id, state)
    done = sum(row[1] == "done" for row in rows)
    assert done >= count * 3 // 4, f"only {done} of {count} done"
    return rows


def test_the_standby_takes_over_a_killed_primary_and_clients_follow(cluster: dict) -> None:
    a, b = _two_nodes(cluster)
    pinger = _background(cluster, PINGER, log="pinger.log")
    count = 120
    producer = _background(cluster, PRODUCER, str(count), log="producer.log")

    def pings() -> list[dict]:
        return [json.loads(line) for line in (cluster["dir"] / "pinger.log").read_text().splitlines()
                if line.startswith("{")]

    wait_for(lambda: any(p.get("node") == "svc-a" for p in pings()), what="the client to reach svc-a")
    wait_for(lambda: len(_runs(cluster)) >= 10, timeout=30, what="triggers to flow")
    a.kill()
    killed = time.time()
    wait_for(lambda: _holder(cluster) == "svc-b", timeout=STALE + HEARTBEAT + TAKEOVER_SLACK,
             what="svc-b to take over within FailoverStaleSeconds + one heartbeat")
    took_over = time.time() - killed
    wait_for(lambda: any(p.get("node") == "svc-b" for p in pings()), timeout=10,
             what="the same client to reach the new primary")
    assert pinger.poll() is None, "the client was restarted"
    assert producer.wait(timeout=120) == 0, (cluster["dir"] / "producer.log").read_text()[-2000:]
    rows = _assert_exactly_once(cluster, count)
    assert {row[3] for row in rows} <= {"svc-a", "svc-b"} and any(row[3] == "svc-b" for row in rows)
    ((from_node, to_node, reason),) = _query(
        cluster, "SELECT from_node, to_node, reason FROM indexer_failover WHERE to_node = 'svc-b'")
    assert from_node == "svc-a" and "stopped renewing" in reason
    assert took_over <= STALE + HEARTBEAT + TAKEOVER_SLACK
    b.stop()


def test_a_paused_primary_that_wakes_claims_and_runs_nothing(cluster: dict) -> None:
    a, b = _two_nodes(cluster)
    count = 100
    producer = _background(cluster, PRODUCER, str(count), log="producer.log")
    wait_for(lambda: len(_runs(cluster)) >= 5, timeout=30, what="triggers to flow")
    a.process.send_signal(signal.SIGSTOP)
    wait_for(lambda: _holder(cluster) == "svc-b", timeout=STALE + HEARTBEAT + TAKEOVER_SLACK + 1,
             what="svc-b to take over from the paused svc-a")
    woke = time.time()
    a.process.send_signal(signal.SIGCONT)
    wait_for(lambda: "steps down from primary" in a.log.read_text(), timeout=10,
             what="the woken svc-a to step down")
    assert producer.wait(timeout=120) == 0, (cluster["dir"] / "producer.log").read_text()[-2000:]
    rows = _assert_exactly_once(cluster, count)
    assert a.process.poll() is None, "the old primary should live on as a standby"
    late_runs = [run for run in _runs(cluster) if run[1] == a.process.pid and run[2] >= woke]
    assert late_runs == [], "the old primary ran tasks after it woke"
    late_claims = [row for row in rows if row[3] == "svc-a" and row[4] is not None and row[4] >= woke]
    assert late_claims == [], "the old primary claimed triggers after it woke"
    assert any(row[3] == "svc-b" for row in rows)
    assert _holder(cluster) == "svc-b"
    a.stop()
    b.stop()
