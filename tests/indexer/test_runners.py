"""The Scheduler and the runners: failures, progress, pause, run now, run once, stop, and trigger dispatch.

Runners here use intervals of milliseconds and the scheduler's own clock, so the whole module runs in seconds.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from django.utils import timezone

from feeds.runners.feed_indexing import FeedIndexing
from indexer.models import RunnerRecord, Trigger
from indexer.runner import INTERRUPTED_BY_STOP, RunContext, Runner, RunnerState, Scheduler, State, UnknownRunner
from indexer.tasks import default_runners
from indexer.tasks.trigger_dispatch import TriggerDispatch, triggers_dispatch
from indexer.triggers import trigger_claim, trigger_create, trigger_finish, trigger_get, triggers_pending_count

pytestmark = pytest.mark.django_db

FAST = timedelta(milliseconds=50)
Body = Callable[[RunContext], Awaitable[str]]


class Probe(Runner):
    """A runner with a fixed interval that counts its runs and runs `body` (default: say which run it is)."""

    interval_setting = "(fixed in the test)"

    def __init__(self, name: str = "Probe", *, every: timedelta = timedelta(hours=1), body: Body | None = None):
        self.name = name
        self.every = every
        self.body = body
        self.runs = 0

    def interval(self) -> timedelta:
        return self.every

    async def run(self, ctx: RunContext) -> str:
        self.runs += 1
        return await self.body(ctx) if self.body else f"{self.name} run {self.runs}"


def run(scenario: Callable[[], Awaitable[object]]) -> object:
    """Run an async scenario; the scheduler's database calls come back to this thread (and the test's transaction)."""

    async def main() -> object:
        return await scenario()

    return async_to_sync(main)()


async def until(predicate: Callable[[], bool], *, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def ran_recently(*names: str) -> None:
    """Record a run that just started, so these runners are not due."""
    for name in names:
        RunnerRecord.objects.create(name=name, last_started_at=timezone.now(), last_result="ok")


def test_a_runner_that_raises_is_logged_shown_and_the_loop_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    async def boom(ctx: RunContext) -> str:
        raise ValueError("disk on fire")

    failing, healthy = Probe("Boom", every=FAST, body=boom), Probe("Healthy", every=FAST)
    scheduler = Scheduler([failing, healthy], node="n1")

    async def scenario() -> None:
        loop = asyncio.create_task(scheduler.run_forever())
        await until(lambda: failing.runs >= 3 and healthy.runs >= 3)
        await scheduler.stop(timeout=1)
        await loop

    run(scenario)
    state = scheduler.state("Boom")
    assert (state.state, state.last_result, state.last_error) == (State.FAILED, "failed", "ValueError: disk on fire")
    assert state.next_run_at == state.last_started_at + FAST, "due again one interval after the failed run"
    record = RunnerRecord.objects.get(name="Boom")
    assert (record.last_result, record.last_error) == ("failed", "ValueError: disk on fire")
    logged = [r for r in caplog.records if r.levelno == logging.ERROR and "Boom failed" in r.getMessage()]
    assert len(logged) >= 3 and logged[0].exc_info[0] is ValueError, "logged with its traceback"
    assert scheduler.state("Healthy").state == State.IDLE


def test_progress_reaches_on_change_in_order_also_from_a_worker_thread() -> None:
    changes: list[RunnerState] = []
    callers: set[int] = set()

    def on_change(state: RunnerState) -> None:
        changes.append(state)
        callers.add(threading.get_ident())

    async def body(ctx: RunContext) -> str:
        ctx.progress(50, "half way")
        await asyncio.to_thread(ctx.progress, 150, "from a worker thread")
        await asyncio.sleep(0)
        return "done it"

    run(Scheduler([Probe(body=body)], node="n1", on_change=on_change).run_once)
    seen = [(c.state, c.progress_percent, c.progress_message) for c in changes]
    assert seen == [
        (State.IDLE, None, ""),  # the interval was read
        (State.RUNNING, 0.0, "starting"),
        (State.RUNNING, 50.0, "half way"),
        (State.RUNNING, 100.0, "from a worker thread"),  # clamped
        (State.IDLE, None, ""),
    ]
    assert (changes[-1].last_result, changes[-1].last_message) == ("ok", "done it")
    assert len(callers) == 1, "on_change is always called on the event loop's thread"


def test_a_broken_on_change_callback_does_not_break_the_run() -> None:
    def on_change(state: RunnerState) -> None:
        raise RuntimeError("subscriber gone")

    probe = Probe()
    states = run(Scheduler([probe], node="n1", on_change=on_change).run_once)
    assert probe.runs == 1 and states[0].last_result == "ok"


def test_pause_is_persisted_across_a_new_scheduler_and_resume_too() -> None:
    probe = Probe()
    paused = run(lambda: Scheduler([probe], node="n1").pause("Probe"))
    assert (paused.state, paused.next_run_at) == (State.PAUSED, None)
    assert RunnerRecord.objects.get(name="Probe").paused

    states = run(Scheduler([probe], node="n1").run_once)
    assert probe.runs == 0 and states[0].state == State.PAUSED, "a paused runner is never due"

    run(lambda: Scheduler([probe], node="n1").resume("Probe"))
    states = run(Scheduler([probe], node="n1").run_once)
    assert probe.runs == 1 and states[0].state == State.IDLE


def test_run_now_while_running_is_a_no_op_that_says_so() -> None:
    RunnerRecord.objects.create(name="Gate", paused=True)
    trigger = trigger_create(kind=Trigger.Kind.RUNNER_RUN, target="Gate", requested_by="bob")

    async def scenario() -> tuple:
        gate = asyncio.Event()

        async def body(ctx: RunContext) -> str:
            await gate.wait()
            return "through"

        probe = Probe("Gate", body=body)
        scheduler = Scheduler([probe], node="n1")
        await scheduler.load()
        first = scheduler.run_now("Gate")  # runs even though paused: an explicit request
        await asyncio.sleep(0.01)
        second = scheduler.run_now("Gate")
        outcomes = await triggers_dispatch(scheduler=scheduler)
        running = scheduler.state("Gate").state
        gate.set()
        await scheduler.wait_idle()
        with pytest.raises(UnknownRunner, match="unknown runner 'Nope' \\(known: Gate\\)"):
            scheduler.run_now("Nope")
        return first, second, outcomes, running, probe.runs

    first, second, outcomes, running, runs = run(scenario)
    assert first.started and not second.started
    assert second.message == "Gate is already running"
    assert running == State.RUNNING and runs == 1
    # A trigger for a busy runner is not claimed: it stays queued until the runner is free.
    assert trigger_get(trigger_id=trigger.id).state == Trigger.State.PENDING
    assert outcomes == []


def test_run_once_runs_every_due_runner_once_and_records_it() -> None:
    ran_recently("Recent")
    first, second, recent = Probe("A"), Probe("B"), Probe("Recent")
    states = {s.name: s for s in run(Scheduler([first, second, recent], node="n1").run_once)}
    assert (first.runs, second.runs, recent.runs) == (1, 1, 0)
    assert (states["A"].last_result, states["A"].last_message) == ("ok", "A run 1")
    assert states["Recent"].next_run_at > timezone.now()
    assert RunnerRecord.objects.get(name="B").last_message == "B run 1"


def test_a_nudge_or_a_stop_wakes_the_sleeping_loop() -> None:
    ran_recently("Probe")
    probe = Probe()  # not due for an hour, and the loop may sleep for a minute
    scheduler = Scheduler([probe], node="n1", max_sleep=60)

    async def scenario() -> float:
        loop = asyncio.create_task(scheduler.run_forever())
        await asyncio.sleep(0.05)
        assert probe.runs == 0
        probe.every = timedelta(0)  # as if its interval setting changed
        scheduler.nudge()
        await until(lambda: probe.runs >= 1, timeout=2)
        probe.every = timedelta(hours=1)
        scheduler.nudge()
        await asyncio.sleep(0.05)
        began = time.monotonic()
        await scheduler.stop(timeout=1)
        await asyncio.wait_for(loop, timeout=2)
        return time.monotonic() - began

    assert run(scenario) < 1


def test_stop_cancels_a_runner_that_ignores_it_and_fails_its_trigger() -> None:
    trigger = trigger_create(kind=Trigger.Kind.RUNNER_RUN, target="Stubborn", requested_by="bob")

    async def ignore_stop(ctx: RunContext) -> str:
        await asyncio.sleep(3600)
        return "never"

    async def wind_down(ctx: RunContext) -> str:
        while not ctx.stopping:
            await asyncio.sleep(0.01)
        return "wound down"

    scheduler = Scheduler([Probe("Stubborn", body=ignore_stop), Probe("Polite", body=wind_down)], node="n1")

    async def scenario() -> float:
        await scheduler.load()
        await triggers_dispatch(scheduler=scheduler)
        scheduler.run_now("Polite")
        await asyncio.sleep(0.05)
        began = time.monotonic()
        await scheduler.stop(timeout=0.3)
        assert not scheduler.run_now("Polite").started, "nothing starts once stopping"
        return time.monotonic() - began

    assert 0.3 <= run(scenario) < 2
    stored = trigger_get(trigger_id=trigger.id)
    assert (stored.state, stored.result) == (Trigger.State.FAILED, INTERRUPTED_BY_STOP)
    assert (scheduler.state("Stubborn").state, scheduler.state("Stubborn").last_error) == (
        State.FAILED, INTERRUPTED_BY_STOP,
    )
    assert RunnerRecord.objects.get(name="Stubborn").last_error == INTERRUPTED_BY_STOP
    assert (scheduler.state("Polite").last_result, scheduler.state("Polite").last_message) == ("ok", "wound down")


def test_run_forever_first_fails_the_triggers_this_node_left_running() -> None:
    mine = trigger_create(kind=Trigger.Kind.RUNNER_RUN, target="Probe", requested_by="bob")
    trigger_claim(node="n1")
    other = trigger_create(kind=Trigger.Kind.RUNNER_RUN, target="Probe", requested_by="bob")
    trigger_claim(node="n2")
    probe = Probe()
    scheduler = Scheduler([probe], node="n1")

    async def scenario() -> None:
        loop = asyncio.create_task(scheduler.run_forever())
        await until(lambda: probe.runs == 1)
        await scheduler.stop(timeout=1)
        await loop

    run(scenario)
    stored = trigger_get(trigger_id=mine.id)
    assert (stored.state, stored.result) == (
        Trigger.State.FAILED, "interrupted: service node n1 stopped while it was running",
    )
    assert trigger_get(trigger_id=other.id).state == Trigger.State.RUNNING


def test_a_run_is_marked_while_under_way_and_run_forever_records_the_runs_earlier_terms_left_as_interrupted() -> None:
    """A scheduled run cut short by a crash runs again at once; a triggered one is only recorded."""
    crashed_at = timezone.now() - timedelta(minutes=5)
    RunnerRecord.objects.create(name="Crashed", last_started_at=crashed_at - timedelta(hours=1), last_result="ok",
                                last_message="fine", running_since=crashed_at, running_node="n1")
    RunnerRecord.objects.create(name="Requested", running_since=crashed_at, running_node="n1", running_trigger_id=7)
    RunnerRecord.objects.create(name="Elsewhere", running_since=crashed_at, running_node="n2", running_trigger_id=8)
    marks_seen = []
    release = asyncio.Event()

    async def look(ctx: RunContext) -> str:
        """Hold the run until its mark is in the database (it is written beside the run, not before it)."""
        while not (marks := [mark async for mark in RunnerRecord.objects.filter(
                name="Probe", running_since__isnull=False).values_list("running_since", "running_node")]):
            await asyncio.sleep(0.01)
        marks_seen.extend(marks)
        return "looked"

    async def held(ctx: RunContext) -> str:
        await release.wait()
        return "rerun"

    probe = Probe(body=look)
    crashed = Probe("Crashed", body=held)
    requested = Probe("Requested")
    scheduler = Scheduler([probe, crashed, requested, Probe("Elsewhere")], node="n1")

    async def scenario() -> None:
        loop = asyncio.create_task(scheduler.run_forever())
        await until(lambda: scheduler.state("Probe").last_result == "ok")
        # The interrupted run is on record from when it began, and runs again at once although not due for 55 min.
        await until(lambda: crashed.runs == 1)
        stored = await RunnerRecord.objects.aget(name="Crashed")
        assert (stored.last_started_at, stored.last_result, stored.last_error) == (
            crashed_at, "failed", "interrupted: service node n1 stopped while it was running",
        )
        release.set()
        await until(lambda: scheduler.state("Crashed").last_message == "rerun")
        await scheduler.stop(timeout=1)
        await loop

    run(scenario)
    # A run for a trigger is recorded too, but not repeated: its trigger is failed with the same reason.
    assert requested.runs == 0
    assert (scheduler.state("Requested").state, scheduler.state("Requested").last_started_at) == (
        State.FAILED, crashed_at,
    )
    assert marks_seen == [(scheduler.state("Probe").last_started_at, "n1")]
    assert RunnerRecord.objects.get(name="Probe").running_since is None  # cleared when the run was recorded
    # The primary it took over from: recorded too, with that node's name (only the primary runs tasks).
    elsewhere = RunnerRecord.objects.get(name="Elsewhere")
    assert (elsewhere.last_started_at, elsewhere.last_error, elsewhere.running_node) == (
        crashed_at, "interrupted: service node n2 stopped while it was running", "",
    )


def test_trigger_dispatch_runs_runner_triggers_and_fails_unknown_targets_with_a_reason() -> None:
    ran_recently("Probe", "Feed Indexing")
    ok = trigger_create(kind=Trigger.Kind.RUNNER_RUN, target="Probe", requested_by="bob")
    unknown_runner = trigger_create(kind=Trigger.Kind.RUNNER_RUN, target="Nope", requested_by="bob")
    unknown_feed = trigger_create(kind=Trigger.Kind.FEED_REINDEX, target="main", requested_by="bob")
    probe = Probe()
    scheduler = Scheduler([TriggerDispatch(), probe, FeedIndexing()], node="n1")

    states = {s.name: s for s in run(scheduler.run_once)}  # also waits for the runs the dispatch started
    assert probe.runs == 1
    done = trigger_get(trigger_id=ok.id)
    assert (done.state, done.result, done.claimed_by) == (Trigger.State.DONE, "Probe run 1", "n1")
    failed = trigger_get(trigger_id=unknown_runner.id)
    assert (failed.state, failed.result) == (
        Trigger.State.FAILED, "unknown runner 'Nope' (known: Trigger Dispatch, Probe, Feed Indexing)",
    )
    no_feed = trigger_get(trigger_id=unknown_feed.id)
    assert (no_feed.state, no_feed.result) == (Trigger.State.FAILED, "unknown feed 'main'")
    assert states["Trigger Dispatch"].last_message == "dispatched 3 trigger(s)"
    assert triggers_pending_count() == 0


def test_the_default_runners_all_run_once_on_an_empty_system() -> None:
    beats: list[str] = []
    old = trigger_create(kind=Trigger.Kind.RUNNER_RUN, target="Nope", requested_by="bob")
    trigger_claim(node="n0", trigger_id=old.id)
    trigger_finish(trigger_id=old.id, node="n0", ok=True, result="")
    Trigger.objects.filter(id=old.id).update(finished_at=timezone.now() - timedelta(days=8))

    def heartbeat() -> str:
        beats.append("beat")
        return "registry updated"

    states = {s.name: s for s in run(Scheduler(default_runners(heartbeat=heartbeat), node="n1").run_once)}
    assert {name: s.last_message for name, s in states.items()} == {
        "Feed Indexing": "no feeds configured",
        "Drop Path Monitor": "no feeds configured",
        "Feed Integrity": "no feeds configured",
        "Feed Retention": "no feeds configured",
        "Trigger Dispatch": "no pending triggers",
        "Service Heartbeat": "registry updated",
        "Node Message Cleanup":
            "deleted 1 finished trigger(s), failed 0 abandoned one(s); deleted 0 run(s) of the run history",
    }
    assert all(s.last_result == "ok" and s.interval for s in states.values())
    assert beats == ["beat"] and not Trigger.objects.exists()
