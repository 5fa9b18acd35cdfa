"""Smoke test for bench/upload_memory.py: the quick run completes against both servers and prints its report.

Not a timed test: it checks that the script runs end to end (both servers, every row, the summary line).
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "upload_memory.py"
# `--quick` takes ~15 s on a 2-core machine (two servers, a migrate, two 10 MB uploads each); slack for load.
QUICK_RUN_TIMEOUT = 110


@pytest.mark.slow
def test_quick_run_prints_every_row_and_the_summary() -> None:
    result = subprocess.run([sys.executable, str(BENCH), "--quick"], capture_output=True, text=True,
                            timeout=QUICK_RUN_TIMEOUT, check=False)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for row in ("peak RSS growth, authenticated 10 MB upload", "peak RSS growth, anonymous 10 MB upload",
                "time to refuse 300 MB announced (headers only)", "time to refuse anonymous 10 MB (headers only)"):
        assert row in out, out
    assert "targets met:" in out.splitlines()[-1], out
    assert "Traceback" not in result.stderr, result.stderr
