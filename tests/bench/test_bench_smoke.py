"""Smoke test for bench/messenger.py: the quick run completes and prints its report.

Benchmarks are never timed tests: this checks that the script runs end to end (servers in their own
processes, every measurement, the table, the summary line), not that any target is met.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "messenger.py"
# `--quick` takes well under 30 s on a 2-core machine; the slack is for a loaded CI runner.
QUICK_RUN_TIMEOUT = 110


@pytest.mark.slow
def test_quick_run_prints_the_table_and_the_summary() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH), "--quick"],
        capture_output=True,
        text=True,
        timeout=QUICK_RUN_TIMEOUT,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "measurement" in out and "| result" in out, out
    for transport in ("unix", "tcp"):
        for row in (
            "round trip p50 vs raw asyncio Protocol echo",
            "stream 512 B vs raw asyncio Protocol echo",
            "handshakes/s (connect+handshake+close), sequential",
            "RSS +1,000 idle connections, server",
        ):
            assert f"[{transport}] {row}" in out, out
    assert "targets met:" in out.splitlines()[-1], out
    assert "Traceback" not in result.stderr, result.stderr
