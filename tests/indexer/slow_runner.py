"""A task runner for process-level tests: records each start, then works for a while with progress.

Loaded into a real `runindexer` through PROGET_EXTRA_RUNNERS=tests.indexer.slow_runner.SlowRunner.
PROGET_TEST_RUN_LOG names the file that gets one line per start ("<trigger id or -> <pid> <unix time>");
PROGET_TEST_RUN_SECONDS says how long a run takes (default 0.02).
"""
from __future__ import annotations

import asyncio
import os
import time

from indexer.runner import RunContext, Runner

STEPS = 10


class SlowRunner(Runner):
    name = "Test Slow"
    interval_setting = "Runners.NodeMessageCleanup.IntervalSeconds"

    async def run(self, ctx: RunContext) -> str:
        with open(os.environ["PROGET_TEST_RUN_LOG"], "a") as log:
            log.write(f"{ctx.trigger_id or '-'} {os.getpid()} {time.time()}\n")
        seconds = float(os.environ.get("PROGET_TEST_RUN_SECONDS", "0.02"))
        for step in range(STEPS):
            if ctx.stopping:
                return f"stopped at step {step} of {STEPS}"
            ctx.progress(100 * step / STEPS, f"step {step}")
            ctx.logger.info("test slow runner step %s", step)
            await asyncio.sleep(seconds / STEPS)
        return f"worked {seconds} s"
