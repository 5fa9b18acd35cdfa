"""Separate processes racing on one database: the trigger claimer script and the harness that starts them together."""
from __future__ import annotations

import json
from pathlib import Path

from tests.processes import spawn, stop, wait_for

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


def race(tmp_path: Path, script: str, marker: str, *, processes: int, **env: str) -> dict[str, object]:
    """Run `script` in `processes` Django shells that start together; return each one's `marker` line (JSON)."""
    go = tmp_path / "go"
    racers = [
        spawn(tmp_path, "shell", "-c", script, log=tmp_path / f"racer{i}.log", CLAIM_NODE=f"node{i}",
              CLAIM_READY=str(tmp_path / f"ready{i}"), CLAIM_GO=str(go), **env)
        for i in range(processes)
    ]
    try:
        wait_for(lambda: all((tmp_path / f"ready{i}").exists() for i in range(processes)), timeout=60,
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
