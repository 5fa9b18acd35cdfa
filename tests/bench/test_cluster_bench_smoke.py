"""Smoke tests for the node-level benches: each runs end to end at a small size and prints its report.

As for bench/messenger.py, no target is checked (the figures are the benches' business); what is checked is that
the script runs its real processes, measures every row it promises and ends with its summary line. The cluster
benches need the machine's PostgreSQL and Redis (the `pg_database_url` / `redis_url` fixtures: skipped without
them, failed under PROGET_REQUIRE_SERVICES=1); the bench makes its own fresh database on that server.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
# The small runs take 30-90 s on a 2-core machine; the slack is for a loaded CI runner.
RUN_TIMEOUT = 300

pytestmark = pytest.mark.slow


def _run(script: str, *args: str, **env: str) -> str:
    environment = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    result = subprocess.run([sys.executable, str(BENCH / script), *args], env={**environment, **env},
                            capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    return result.stdout


def test_failover_bench_measures_each_form_and_prints_the_references(pg_database_url: str, redis_url: str) -> None:
    out = _run("failover.py", "--runs", "1", "--profile", "fast", DATABASE_URL=pg_database_url, REDIS_URL=redis_url)

    lines = out.splitlines()
    for form in ("kill", "freeze", "stop"):
        run = next(line for line in lines if line.split()[:2] == [form, "1"])
        assert len(re.findall(r"\b\d+\.\d s\b", run)) == 4, out  # (a) lease, (b) health, (c) viewers, (d) click
    # The viewers on the Redis web nodes live through the whole run (redis-py's 5 s read timeout once closed them).
    assert "viewer was closed" not in out, out
    assert any(line.startswith("worst of (b)-(d)") and "the commercial 300 s" in line for line in lines), out
    assert "targets met:" in lines[-1], out


def test_fanout_bench_spreads_viewers_over_two_web_nodes(pg_database_url: str, redis_url: str) -> None:
    out = _run("status_fanout.py", "--web-nodes", "2", "--viewers", "2,20", "--quick",
               DATABASE_URL=pg_database_url, REDIS_URL=redis_url)

    rows = [line.split() for line in out.splitlines()]
    assert [row[0] for row in rows if row and row[0] in {"2", "20", "web-1", "web-2"}] == [
        "2", "web-1", "web-2", "20", "web-1", "web-2"], out
    assert "one status stream per web node (2): 2 -> met" in out, out
    assert "viewer(s) closed" not in out or " 0 viewer(s) closed" in out, out
    assert "targets met:" in out.splitlines()[-1], out
