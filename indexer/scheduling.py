"""When task runners are due and how long the scheduler may sleep: pure functions of an injected `now`.

No clock, no sleeping and no database here, so every scheduling decision is tested with a fake clock.
"""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta


def next_run_at(*, last_started_at: datetime | None, interval: timedelta, now: datetime) -> datetime:
    """When a runner runs next: one interval after its last start; now if it never ran.

    A last start in the future (the clock went back) cannot be trusted, so the runner is due now
    rather than waiting for the clock to catch up.
    """
    if last_started_at is None or last_started_at > now:
        return now
    return last_started_at + interval


def is_due(*, last_started_at: datetime | None, interval: timedelta, now: datetime, paused: bool = False) -> bool:
    """Whether a runner should start at `now`; a paused runner is never due."""
    return not paused and now >= next_run_at(last_started_at=last_started_at, interval=interval, now=now)


def seconds_until_next(*, runners_next_runs: Iterable[datetime | None], now: datetime, max_sleep: float) -> float:
    """How long to sleep until the earliest next run (None: not scheduled), between 0 and `max_sleep`."""
    waits = [(when - now).total_seconds() for when in runners_next_runs if when is not None]
    return max(0.0, min([max_sleep, *waits]))
