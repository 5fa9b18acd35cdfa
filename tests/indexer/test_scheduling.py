"""Scheduling decisions with a fake clock: when a runner is due, when it runs next, how long the loop sleeps."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from indexer.scheduling import is_due, next_run_at, seconds_until_next

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def test_a_runner_that_never_ran_is_due_now() -> None:
    assert next_run_at(last_started_at=None, interval=MINUTE, now=NOW) == NOW
    assert is_due(last_started_at=None, interval=MINUTE, now=NOW)


def test_next_run_is_one_interval_after_the_last_start() -> None:
    last = NOW - timedelta(seconds=20)
    assert next_run_at(last_started_at=last, interval=MINUTE, now=NOW) == last + MINUTE


def test_due_exactly_at_the_interval_and_not_a_moment_before() -> None:
    last = NOW - MINUTE
    assert is_due(last_started_at=last, interval=MINUTE, now=NOW)
    assert not is_due(last_started_at=last, interval=MINUTE, now=NOW - timedelta(microseconds=1))
    assert is_due(last_started_at=last, interval=MINUTE, now=NOW + timedelta(hours=5))


def test_a_paused_runner_is_never_due() -> None:
    assert not is_due(last_started_at=None, interval=MINUTE, now=NOW, paused=True)
    assert not is_due(last_started_at=NOW - timedelta(days=30), interval=MINUTE, now=NOW, paused=True)


def test_a_last_start_in_the_future_makes_the_runner_due_now() -> None:
    # The clock went back an hour: waiting for it to catch up would stall the runner for that hour.
    future = NOW + timedelta(hours=1)
    assert next_run_at(last_started_at=future, interval=MINUTE, now=NOW) == NOW
    assert is_due(last_started_at=future, interval=MINUTE, now=NOW)


def test_sleep_until_the_earliest_next_run() -> None:
    runs = [NOW + timedelta(seconds=30), NOW + timedelta(seconds=7), None]
    assert seconds_until_next(runners_next_runs=runs, now=NOW, max_sleep=60) == 7


def test_sleep_is_zero_when_something_is_overdue() -> None:
    runs = [NOW - timedelta(seconds=5), NOW + timedelta(seconds=7)]
    assert seconds_until_next(runners_next_runs=runs, now=NOW, max_sleep=60) == 0


def test_sleep_is_capped_and_nothing_scheduled_sleeps_the_cap() -> None:
    assert seconds_until_next(runners_next_runs=[NOW + timedelta(hours=2)], now=NOW, max_sleep=60) == 60
    assert seconds_until_next(runners_next_runs=[None, None], now=NOW, max_sleep=60) == 60
    assert seconds_until_next(runners_next_runs=[], now=NOW, max_sleep=2.5) == 2.5


@given(
    offsets=st.lists(st.one_of(st.none(), st.floats(min_value=-1e6, max_value=1e6)), max_size=10),
    max_sleep=st.floats(min_value=0, max_value=3600),
)
def test_sleep_never_overshoots_a_due_runner(offsets: list[float | None], max_sleep: float) -> None:
    runs = [None if offset is None else NOW + timedelta(seconds=offset) for offset in offsets]
    sleep = seconds_until_next(runners_next_runs=runs, now=NOW, max_sleep=max_sleep)
    assert 0 <= sleep <= max_sleep
    woken = NOW + timedelta(seconds=sleep)
    # Waking after `sleep` seconds never skips past an earlier next run by more than rounding.
    assert all(when is None or woken <= max(when, NOW) + timedelta(microseconds=1) for when in runs)
