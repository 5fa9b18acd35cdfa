"""Helpers for the real-process cluster tests: service nodes on 127.0.0.2/127.0.0.3 with `tcp://*:PORT` on one
PostgreSQL database, background clients (a trigger producer, a long-lived pinger) and the exactly-once check."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections import Counter

import psycopg

from tests.processes import ROOT, ServiceProcess, node_env, wait_for

SLOW_RUNNER = "tests.indexer.slow_runner.SlowRunner"
HEARTBEAT, STALE = 1, 3
IPS = {"svc-a": "127.0.0.2", "svc-b": "127.0.0.3"}

# Asks for ARGV[1] runs of the slow runner, as the Run button does, or fewer if file ARGV[2] (optional) appears;
# one JSON line per request. A Run while one is still pending (e.g. while no primary answers) is that trigger again
# ("already queued"): see produced().
PRODUCER = """
import json, pathlib, sys, time
import django
django.setup()
from indexer.trigger_requests import trigger_request
stop = pathlib.Path(sys.argv[2]) if len(sys.argv) > 2 else None
for _ in range(int(sys.argv[1])):
    if stop is not None and stop.exists():
        break
    request = trigger_request(kind="runner.run", target="Test Slow", requested_by="producer")
    print(json.dumps({"id": request.trigger.id, "nudged": request.nudged, "message": request.message}), flush=True)
    time.sleep(0.03)
"""

# One long-lived client, as a web node holds one: pings through `tcp://*:PORT` and the resolver, never restarted.
# Like the status link of a web node, it re-reads the messenger settings and applies a changed key live.
PINGER = """
import asyncio, json, time
import django
django.setup()
from asgiref.sync import sync_to_async
from messenger.client import MessengerClient
from indexer.messenger_config import local_resolver_async, messenger_settings

async def follow_settings(client, config):
    while True:
        await asyncio.sleep(0.5)
        new = await sync_to_async(messenger_settings)()
        if (new.key, new.previous_keys) != (config.key, config.previous_keys):
            client.reconfigure(key=new.key, previous_keys=new.previous_keys)
            config = new

async def main():
    config = await sync_to_async(messenger_settings)()
    client = MessengerClient(endpoint=config.endpoint, key=config.key, previous_keys=config.previous_keys,
                             run_dir=config.run_dir, resolver=local_resolver_async, connect_timeout=1,
                             request_timeout=1, keepalive_interval=0.5, idle_timeout=2, backoff_min=0.1,
                             backoff_max=0.5)
    client.start()
    follower = asyncio.create_task(follow_settings(client, config))
    while not follower.done():
        try:
            reply = await client.request("ping", timeout=1)
            print(json.dumps({"t": time.time(), "node": reply["node"]}), flush=True)
        except Exception as exc:
            print(json.dumps({"t": time.time(), "error": str(exc)}), flush=True)
        await asyncio.sleep(0.2)
    follower.result()

asyncio.run(main())
"""


def start_node(cluster: dict, name: str, *, run_seconds: float = 0.2) -> ServiceProcess:
    """Start service node `name` (its IP from IPS) with the slow runner (a run takes `run_seconds`); wait until it
    listens."""
    data_dir = cluster["dir"] / name
    data_dir.mkdir(mode=0o700, exist_ok=True)  # a node refuses a data dir others can enter
    node = ServiceProcess(data_dir, DATABASE_URL=cluster["url"], PROGET_NODE_NAME=name, PROGET_NODE_IP=IPS[name],
                          PROGET_EXTRA_RUNNERS=SLOW_RUNNER, PROGET_TEST_RUN_LOG=str(cluster["dir"] / "runs.log"),
                          PROGET_TEST_RUN_SECONDS=str(run_seconds))

    def listening() -> bool:
        with socket.socket() as probe:
            return probe.connect_ex((IPS[name], cluster["port"])) == 0

    node.start(ready=listening)
    cluster["processes"].append(node.process)
    return node


def query(cluster: dict, sql: str) -> list[tuple]:
    with psycopg.connect(cluster["url"]) as db:
        return db.execute(sql).fetchall()


def holder(cluster: dict) -> str | None:
    """The node holding the primary lease, if any."""
    rows = query(cluster, "SELECT holder FROM indexer_servicelease")
    return rows[0][0] if rows and rows[0][0] else None


def background(cluster: dict, code: str, *args: str, log: str) -> subprocess.Popen:
    """Run Python `code` with the cluster's settings in the background, its output in `log` (killed at teardown)."""
    process = subprocess.Popen([sys.executable, "-c", code, *args], cwd=ROOT,
                               # It knows the slow runner, as a web node configured like the service does.
                               env=node_env(cluster["dir"], DATABASE_URL=cluster["url"],
                                            PROGET_EXTRA_RUNNERS=SLOW_RUNNER),
                               stdout=(cluster["dir"] / log).open("w"), stderr=subprocess.STDOUT)
    cluster["processes"].append(process)
    return process


def json_lines(cluster: dict, log: str) -> list[dict]:
    """The JSON lines a background client wrote to `log` so far."""
    path = cluster["dir"] / log
    lines = path.read_text().splitlines() if path.exists() else []
    return [json.loads(line) for line in lines if line.startswith("{")]


def two_nodes(cluster: dict, *, run_seconds: float = 0.2) -> tuple[ServiceProcess, ServiceProcess]:
    """svc-a (the primary) and svc-b (a standby that tried the lease at least once)."""
    a = start_node(cluster, "svc-a", run_seconds=run_seconds)
    wait_for(lambda: holder(cluster) == "svc-a", what="svc-a to become primary")
    b = start_node(cluster, "svc-b", run_seconds=run_seconds)
    time.sleep(2 * HEARTBEAT)  # b tries the lease at least once
    assert holder(cluster) == "svc-a", "the standby took a fresh lease"
    assert "is now the primary" not in b.log.read_text()
    return a, b


def runs(cluster: dict) -> list[tuple[int, int, float]]:
    """(trigger id, pid, unix time) of each trigger run the slow runner started."""
    log = cluster["dir"] / "runs.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return [(int(t), int(p), float(at)) for t, p, at in (line.split() for line in lines) if t != "-"]


def triggers(cluster: dict) -> list[tuple]:
    """(id, state, result, claimed_by, claimed_at as unix time) of every trigger."""
    return query(cluster, "SELECT id, state, result, claimed_by, extract(epoch FROM claimed_at) "
                          "FROM indexer_trigger ORDER BY id")


def produced(cluster: dict) -> int:
    """How many distinct triggers the PRODUCER's requests wrote (a Run of a pending runner adds none)."""
    return len({line["id"] for line in json_lines(cluster, "producer.log")})


def assert_exactly_once(cluster: dict, count: int, *, min_done: float = 0.75) -> list[tuple]:
    """Wait for the `count` triggers to finish; none ran twice, a failed one says why, `min_done` of them done."""
    def all_finished() -> bool:
        rows = triggers(cluster)
        return len(rows) == count and all(row[1] in {"done", "failed"} for row in rows)

    wait_for(all_finished, timeout=90, what="every trigger to finish")
    rows = triggers(cluster)
    started = Counter(trigger_id for trigger_id, _, _ in runs(cluster))
    assert max(started.values()) == 1, "a trigger ran twice"
    for trigger_id, state, result, _, _ in rows:
        if state == "done":
            assert started[trigger_id] == 1, (trigger_id, state, result)
        else:
            assert result, (trigger_id, state)
    done = sum(row[1] == "done" for row in rows)
    assert done >= count * min_done, f"only {done} of {count} done"
    return rows


def interrupted_by_stop(cluster: dict) -> list[tuple]:
    """Runner records that say a service node's stop cut their run short."""
    return query(cluster, "SELECT name FROM indexer_runnerrecord WHERE last_error = 'interrupted: service stopping'")


def assert_woken_node_did_nothing(cluster: dict, rows: list[tuple], name: str, pid: int, woke: float) -> None:
    """Node `name` (process `pid`), woken at `woke` after its lease passed on, ran and claimed nothing since; `rows`
    are the triggers (see triggers())."""
    late_runs = [run for run in runs(cluster) if run[1] == pid and run[2] >= woke]
    assert late_runs == [], f"{name} ran tasks after it woke"
    late_claims = [row for row in rows if row[3] == name and row[4] is not None and row[4] >= woke]
    assert late_claims == [], f"{name} claimed triggers after it woke"
