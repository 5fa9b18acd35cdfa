"""A task runner for bench/status_fanout.py: logs INFO lines at a steady rate for a while, then ends.

Loaded into a real `runindexer` through the documented extension point
PROGET_EXTRA_RUNNERS=bench.log_runner.LogRunner. Each run reads the file named by PROGET_BENCH_LOG_PLAN
("<lines per second> <seconds>"); without that file the run logs nothing (so the scheduler's own first run at
startup is a no-op). Lines are paced against a fixed schedule (line i at start + i / rate), so the rate does not
drift with the loop's wake-up delays; each goes through the service's normal logging, and so through the status
hub's handler with `at` = the record's creation time.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path

from indexer.runner import RunContext, Runner

# The bench tells its log lines from everything else the service logs by this logger name.
LOGGER_NAME = "bench.log_runner"
logger = logging.getLogger(LOGGER_NAME)


class LogRunner(Runner):
    name = "Bench Log"
    interval_setting = "Runners.FeedIntegrity.IntervalSeconds"  # a day by default: never runs on its own again

    async def run(self, ctx: RunContext) -> str:
        plan = Path(os.environ.get("PROGET_BENCH_LOG_PLAN", "/nonexistent"))
        try:
            rate, seconds = (float(value) for value in plan.read_text().split())
        except (OSError, ValueError):
            return "no plan: nothing logged"
        count = int(rate * seconds)
        start = time.monotonic()
        for line in range(count):
            if ctx.stopping:
                return f"stopped after {line} lines"
            delay = start + line / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            logger.info("bench line %d of %d", line, count)
        return f"logged {count} lines in {time.monotonic() - start:.2f} s"
