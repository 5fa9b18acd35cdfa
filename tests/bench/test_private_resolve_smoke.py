"""Smoke test for bench/private_resolve.py: a tiny run with pip (always in the venv) completes and prints its table.

Benchmarks are never timed tests: this checks that the script runs end to end (a real daphne, a key and a password
against a private feed, the anonymous baseline), not that the target is met.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "private_resolve.py"
# Three packages, one round, three modes with pip: ~20 s on a 2-core machine; the slack is for a loaded CI runner.
SMOKE_TIMEOUT = 150


@pytest.mark.slow
def test_a_tiny_run_resolves_every_way_and_prints_the_table() -> None:
    result = subprocess.run([sys.executable, str(BENCH), "--client", "pip", "--rounds", "1", "--packages", "3"],
                            capture_output=True, text=True, timeout=SMOKE_TIMEOUT, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    for mode in ("anonymous", "key", "password"):
        assert f"| {mode} |" in result.stdout, result.stdout
    assert result.stdout.splitlines()[-1].startswith("target key <= 1.2x anonymous: "), result.stdout
