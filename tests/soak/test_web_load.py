"""Load (issue 7): 500 signed-in Service Status viewers plus 50 trigger requests/s for 60 s on a real daphne and a
real runindexer: no errors.

The machinery and the exact meaning of "no errors" are in bench/web_load.py (its docstring): every viewer stays
open, gets live messages and no error; every Reindex POST is a 302 to the feed page within 30 s of its click and its
trigger runs exactly once; every Run is answered with its trigger (a new one, or the runner's pending one: "already
queued"), and every Run trigger is run and logged by the runner exactly once; web and service RSS end within 50 MB
of their start. PROGET_SOAK_LONG=1 runs
10 minutes instead of 60 s.
"""
from __future__ import annotations

import os

import pytest

from bench.web_load import RSS_GROWTH_MB, report, web_load
from tests.soak.support import LONG

VIEWERS = 500
RATE = 50.0
SECONDS = 600.0 if LONG else 60.0


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="samples RSS from /proc")
def test_500_viewers_and_50_trigger_requests_per_second_without_errors() -> None:
    result = web_load(viewers=VIEWERS, rate=RATE, seconds=SECONDS)

    table = report(result)
    print(table)
    assert result.failures == [], table
    assert result.requests == result.total == int(RATE * SECONDS), table
    assert result.sent_seconds <= SECONDS + 5, table  # the schedule was kept: 50/s, not fewer
    assert len(result.posts) == result.reindexes > 0 and result.triggers == {"done": result.reindexes}, table
    assert result.runs_queued > 0 and result.runs_logged >= len(result.run_triggers) > 0, table
    assert len(result.live_messages) == VIEWERS and min(result.live_messages) > 0, table
    assert set(result.rss) == {"web", "service"}, table
    assert all(end - start <= RSS_GROWTH_MB for start, _, end in result.rss.values()), table
