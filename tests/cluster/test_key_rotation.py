"""Rotating the messenger key across a running cluster under load fails no request (issue #6).

Two real service nodes (`tcp://*:PORT`, PostgreSQL), a long-lived client that follows the settings as a web
node's status link does, one-off calls in a loop (as the CLI makes them), a daphne web node's /health in a
loop (its own messenger call per request) and Run requests; the key is replaced three times while they run.
Every request must succeed, every trigger must run exactly once, and once the grace is over the retired keys
are refused.
"""
from __future__ import annotations

import time

import pytest

from messenger.crypto import generate_key, key_fingerprint, parse_key
from tests.cluster.nodes import (
    PINGER,
    PRODUCER,
    assert_exactly_once,
    background,
    json_lines,
    produced,
    query,
    two_nodes,
)
from tests.processes import manage, start_daphne, stop, wait_for

pytestmark = pytest.mark.slow

ROTATIONS = 3
# Short, so the test also sees the end of the grace: by then every client must have moved to the new key.
GRACE_SECONDS = 8
TRIGGERS = 60

# One-off calls in a loop, each with the settings read at the call, as `manage.py messenger ping` makes them.
ONE_OFF = """
import json, sys, time
import django
django.setup()
from indexer.messenger_config import service_call
deadline = time.time() + float(sys.argv[1])
while time.time() < deadline:
    try:
        reply = service_call("ping", timeout=2)
        print(json.dumps({"t": time.time(), "node": reply["node"]}), flush=True)
    except Exception as exc:
        print(json.dumps({"t": time.time(), "error": str(exc)}), flush=True)
    time.sleep(0.05)
"""

# A web node's /health (ARGV[1]) in a loop, anonymous (status words only): OK, or an error, one JSON line per request.
HEALTH = """
import json, sys, time, urllib.request
while True:
    try:
        with urllib.request.urlopen(sys.argv[1], timeout=5) as response:
            body = json.load(response)
        line = {} if body["serviceStatus"] == "OK" else {"error": "serviceStatus Error (the reason: web log)"}
    except Exception as exc:
        line = {"error": str(exc)}
    print(json.dumps({"t": time.time(), **line}), flush=True)
    time.sleep(0.1)
"""

# A client that only knows one key (ARGV[1], base64): the handshake's outcome, one JSON line.
OLD_KEY_CLIENT = """
import json, sys
import django
django.setup()
from indexer.messenger_config import messenger_settings, service_call
from messenger.crypto import parse_key
import dataclasses
config = dataclasses.replace(messenger_settings(), key=parse_key(sys.argv[1]), retired_keys=())
try:
    print(json.dumps({"node": service_call("ping", timeout=2, config=config)["node"]}))
except Exception as exc:
    print(json.dumps({"error": str(exc)}))
"""


def _errors(cluster: dict, log: str) -> list[dict]:
    return [line for line in json_lines(cluster, log) if "error" in line]


@pytest.mark.timeout(300)  # two nodes, four clients and seven manage.py runs on two busy cores
def test_rotating_the_key_three_times_under_load_fails_no_request(cluster: dict) -> None:
    url = cluster["url"]
    manage(cluster["dir"], "settings", "set", "Service.MessengerKeyGraceSeconds", str(GRACE_SECONDS),
           DATABASE_URL=url)
    first_key = manage(cluster["dir"], "settings", "get", "Service.MessengerKey", "--reveal",
                       DATABASE_URL=url).stdout.strip()
    a, b = two_nodes(cluster)
    (cluster["dir"] / "web").mkdir(mode=0o700)  # a node refuses a data dir others can enter
    web, port = start_daphne(cluster["dir"] / "web", log=cluster["dir"] / "web.log", DATABASE_URL=url)
    cluster["processes"].append(web)
    health = background(cluster, HEALTH, f"http://127.0.0.1:{port}/health", log="health.log")
    pinger = background(cluster, PINGER, log="pinger.log")
    # Generous: a Python process that sets up Django can take many seconds on two busy cores.
    wait_for(lambda: any("node" in p for p in json_lines(cluster, "pinger.log")), timeout=60,
             what="the long-lived client")
    one_off = background(cluster, ONE_OFF, "120", log="one_off.log")
    producer = background(cluster, PRODUCER, str(TRIGGERS), log="producer.log")
    for log in ("one_off.log", "health.log"):
        wait_for(lambda log=log: len(json_lines(cluster, log)) >= 3, timeout=60, what=f"{log} to fill")

    keys = [generate_key() for _ in range(ROTATIONS)]
    rotated_at = []
    for key in keys:
        rotated_at.append(time.time())
        manage(cluster["dir"], "settings", "set", "Service.MessengerKey", key, DATABASE_URL=url)
        time.sleep(1.5)
    assert producer.wait(timeout=120) == 0, (cluster["dir"] / "producer.log").read_text()[-2000:]
    # Keep the load on past the end of the first keys' grace: their connections must have moved by then.
    time.sleep(max(0.0, rotated_at[-1] + GRACE_SECONDS + 2 - time.time()))
    for process in (one_off, pinger, health):
        process.kill()

    pings = json_lines(cluster, "pinger.log")
    calls = json_lines(cluster, "one_off.log")
    assert _errors(cluster, "pinger.log") == [], f"the long-lived client failed (of {len(pings)} pings)"
    assert _errors(cluster, "one_off.log") == [], f"one-off calls failed (of {len(calls)} calls)"
    checks = json_lines(cluster, "health.log")
    assert _errors(cluster, "health.log") == [], f"the web node's /health failed (of {len(checks)} requests)"
    during = [p for p in pings if rotated_at[0] <= p["t"] <= rotated_at[-1] + GRACE_SECONDS]
    assert len(during) >= 10, f"the long-lived client pinged only {len(during)} times during the rotations"
    for name, lines in (("one-off calls", calls), ("/health requests", checks)):
        assert sum(rotated_at[0] <= line["t"] <= rotated_at[-1] + 1 for line in lines) >= 5, f"too few {name}"
    nudges = json_lines(cluster, "producer.log")
    assert len(nudges) == TRIGGERS and [n for n in nudges if not n["nudged"]] == []
    rows = assert_exactly_once(cluster, produced(cluster), min_done=1.0)
    assert {row[3] for row in rows} == {"svc-a"}

    final = key_fingerprint(parse_key(keys[-1]))
    assert query(cluster, "SELECT name, key_fingerprint FROM indexer_node WHERE kind = 'service' ORDER BY name") == [
        ("svc-a", final), ("svc-b", final)]
    # The grace is over: a client holding only a retired key is refused; the current key still works.
    for old in (first_key, *keys[:-1]):
        result = background(cluster, OLD_KEY_CLIENT, old, log="old_key.log")
        assert result.wait(timeout=30) == 0
        assert json_lines(cluster, "old_key.log") == [{"error": "key mismatch"}]
    result = background(cluster, OLD_KEY_CLIENT, keys[-1], log="new_key.log")
    assert result.wait(timeout=30) == 0 and json_lines(cluster, "new_key.log") == [{"node": "svc-a"}]
    a.stop()
    b.stop()
    stop(web)
