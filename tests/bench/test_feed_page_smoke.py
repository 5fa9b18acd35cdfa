"""Smoke test for bench/feed_page.py: a small run completes and prints a row per scenario.

Not a timed test: the exit status says whether the p50 target was met, which depends on the machine's load;
what is checked is that the script runs end to end (seed, real web server, login, every scenario answered 200).
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "feed_page.py"
# A migrate, 7,600 rows (page 150 exists), a web server and 3 x 10 requests: ~10 s on a 2-core machine; slack for load.
SMALL_RUN_TIMEOUT = 120
ROW = re.compile(r"^  (first page|deep page \(page 150\)|search q=project-0042) +p50 +[\d.]+ ms +p99 +[\d.]+ ms",
                 re.MULTILINE)


@pytest.mark.slow
def test_a_small_run_prints_every_scenario() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH), "--files", "7600", "--projects", "1000", "--requests", "5"],
        capture_output=True, text=True, timeout=SMALL_RUN_TIMEOUT, check=False)
    assert result.returncode in (0, 1), result.stderr  # 1: a p50 over the target, still a complete report
    assert "Traceback" not in result.stderr, result.stderr
    assert [match.group(1) for match in ROW.finditer(result.stdout)] == [
        "first page", "deep page (page 150)", "search q=project-0042"], result.stdout
