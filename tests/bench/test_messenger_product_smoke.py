"""Smoke test for bench/messenger_product.py: the quick run completes and prints its report (no target checked)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "messenger_product.py"
# `--quick --transport unix` takes ~30 s on a 2-core machine; the slack is for a loaded CI runner.
QUICK_RUN_TIMEOUT = 150


@pytest.mark.slow
def test_quick_run_prints_the_batch_and_nudge_rows() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--transport", "unix"],
        capture_output=True, text=True, timeout=QUICK_RUN_TIMEOUT, check=False,
    )

    assert result.returncode == 0, result.stderr
    out = result.stdout
    for events in (1, 50, 500):
        assert f"[unix] status batches of {events} events" in out, out
    for row in ("requests/s", "p50", "p99"):
        assert f"[unix] nudges from 8 processes at once, {row}" in out, out
    assert "targets met:" in out.splitlines()[-1], out
    assert "Traceback" not in result.stderr, result.stderr
