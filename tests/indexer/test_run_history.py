"""Run history: each run's row with who or what asked and its own log lines, the caps, pruning, recovery, fencing.

Runs go through the real Scheduler (run_once / run_now) with test runners; the database is the test's.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from cluster.lease import lease_acquire, term_join, term_leave, term_set
from cluster.models import ServiceLease
from indexer.models import RunHistory, Trigger
from indexer.run_history import (
    CAUSE_RUN_NOW,
    CAUSE_SCHEDULE,
    run_history_purge,
    run_history_recover_interrupted,
    run_history_trim,
)
from indexer.run_log import MAX_RUN_LOG_LINES, RunLog
from indexer.runner import RunContext, RunnerState, Scheduler
from indexer.tasks.node_message_cleanup import NodeMessageCleanup
from indexer.triggers import trigger_claim, trigger_create
from settings_store.services import setting_set
from tests.indexer.test_runners import Probe, run

pytestmark = pytest.mark.django_db

NODE = "n1"


@pytest.fixture(autouse=True)
def _info_logged() -> Iterator[None]:
    """The service logs at INFO (settings.LOGGING); the test process's root logger may be quieter."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.INFO)
    yield
    root.setLevel(level)


def talker(lines: int) -> Probe:
    """A runner that logs `lines` numbered lines, one of them from a worker thread, then says done."""

    async def body(ctx: RunContext) -> str:
        for number in range(lines - 1):
            ctx.logger.info("line %s", number)
        await sync_to_async(ctx.logger.warning)("line %s from a thread", lines - 1)
        return "talked"

    return Probe("Talker", body=body)


async def recorded(runner: str) -> None:
    """Wait until a run of `runner` has its row."""
    exists = sync_to_async(RunHistory.objects.filter(runner=runner).exists)
    while not await exists():
        await asyncio.sleep(0.01)


def messages(run: RunHistory) -> list[str]:
    return [line["message"] for line in run.log]


def test_a_scheduled_run_is_recorded_with_its_own_log_lines() -> None:
    run(Scheduler([talker(3), Probe("Quiet")], node=NODE).run_once)
    talked = RunHistory.objects.get(runner="Talker")
    assert (talked.result, talked.message, talked.error, talked.node) == ("ok", "talked", "", NODE)
    assert talked.triggered_by == CAUSE_SCHEDULE and talked.trigger_id is None
    assert talked.finished_at >= talked.started_at and talked.duration >= 0
    assert messages(talked) == ["task runner Talker started", "line 0", "line 1", "line 2 from a thread",
                                "task runner Talker finished: talked"]
    assert talked.log[3]["level"] == "WARNING" and talked.log[3]["logger"] == "tests.indexer.test_runners"
    quiet = RunHistory.objects.get(runner="Quiet")
    assert "line 0" not in messages(quiet), "another run's lines stay out"


def test_what_the_end_of_a_run_sets_off_is_not_part_of_its_log() -> None:
    def on_change(state: RunnerState) -> None:  # called in the run's task, as the service dispatches triggers
        if state.last_result:
            logging.getLogger("tests").warning("dispatching what waited for %s", state.name)

    run(Scheduler([Probe("Ends")], node=NODE, on_change=on_change).run_once)
    assert messages(RunHistory.objects.get())[-1] == "task runner Ends finished: Ends run 1"


def test_concurrent_runs_keep_their_own_lines() -> None:
    async def chatty(ctx: RunContext) -> str:
        for number in range(20):
            ctx.logger.info("%s says %s", ctx.runner_name, number)
            await asyncio.sleep(0)
        return "ok"

    run(Scheduler([Probe("A", body=chatty), Probe("B", body=chatty)], node=NODE).run_once)
    for name in ("A", "B"):
        said = [m for m in messages(RunHistory.objects.get(runner=name)) if " says " in m]
        assert said == [f"{name} says {n}" for n in range(20)]


def test_a_failed_run_keeps_its_error_and_traceback() -> None:
    async def boom(ctx: RunContext) -> str:
        raise ValueError("disk on fire")

    run(Scheduler([Probe("Boom", body=boom)], node=NODE).run_once)
    failed = RunHistory.objects.get()
    assert (failed.result, failed.error) == ("failed", "ValueError: disk on fire")
    (logged,) = [line for line in failed.log if line["level"] == "ERROR"]
    assert logged["message"].startswith("task runner Boom failed") and "Traceback" in logged["message"]


def test_a_triggered_run_names_who_asked_and_run_now_says_so() -> None:
    probe = Probe("Asked")
    scheduler = Scheduler([probe], node=NODE)
    trigger = trigger_create(kind=Trigger.Kind.RUNNER_RUN, target="Asked", requested_by="alice (API key 3)")
    trigger_claim(node=NODE)

    async def scenario() -> None:
        assert scheduler.run_now("Asked", trigger_id=trigger.id).started
        await scheduler.wait_idle()
        assert scheduler.run_now("Asked").started
        await scheduler.wait_idle()
        assert scheduler.run_now("Asked", requested_by="bob (API key 4)").started
        await scheduler.wait_idle()

    run(scenario)
    by_trigger, by_hand, by_bob = RunHistory.objects.order_by("id")
    assert (by_trigger.triggered_by, by_trigger.trigger_id) == ("alice (API key 3)", trigger.id)
    assert (by_hand.triggered_by, by_hand.trigger_id) == (CAUSE_RUN_NOW, None)
    assert by_bob.triggered_by == "run now (a messenger request) by bob (API key 4)"


def test_log_lines_over_the_cap_keep_head_and_tail_and_count_the_rest() -> None:
    setting_set(name="Service.RunHistoryLogLines", value="10", actor="test", source="test")
    run(Scheduler([talker(50)], node=NODE).run_once)
    talked = RunHistory.objects.get()
    total = 50 + 2  # its lines and the scheduler's started and finished lines
    assert len(talked.log) == 10 and (talked.log_dropped, talked.log_dropped_at) == (total - 10, 5)
    assert messages(talked)[:5] == ["task runner Talker started", "line 0", "line 1", "line 2", "line 3"]
    assert messages(talked)[5:] == ["line 46", "line 47", "line 48", "line 49 from a thread",
                                    "task runner Talker finished: talked"]


def test_a_run_log_over_its_memory_bound_keeps_the_first_and_last_lines() -> None:
    log = RunLog()
    total = MAX_RUN_LOG_LINES * 3 + 1
    for number in range(total):
        log.add({"message": str(number)})
    kept = log.kept(limit=7)
    assert [line["message"] for line in kept.lines] == ["0", "1", "2", "3", str(total - 3), str(total - 2),
                                                          str(total - 1)]
    assert (kept.dropped, kept.dropped_at) == (total - 7, 4)
    log.close()
    log.add({"message": "after the end"})
    assert log.kept(limit=MAX_RUN_LOG_LINES).lines[-1]["message"] == str(total - 1), "closed: nothing more is kept"


def test_each_runner_keeps_its_latest_runs_only() -> None:
    setting_set(name="Service.RunHistoryRuns", value="3", actor="test", source="test")
    probe, other = Probe("Often", every=timedelta(0)), Probe("Other")
    scheduler = Scheduler([probe, other], node=NODE)
    run(scheduler.run_once)
    for _ in range(4):
        run(scheduler.run_once)
    kept = list(RunHistory.objects.filter(runner="Often").order_by("id").values_list("message", flat=True))
    assert kept == ["Often run 3", "Often run 4", "Often run 5"]
    assert RunHistory.objects.filter(runner="Other").count() == 1, "another runner's runs are not counted"
    assert run_history_trim(runner="Often", keep=1) == 2


def test_node_message_cleanup_deletes_runs_older_than_the_retention() -> None:
    now = timezone.now()
    for days in (20, 13, 0):
        RunHistory.objects.create(runner="Old", started_at=now - timedelta(days=days), result="ok")
    run(Scheduler([NodeMessageCleanup()], node=NODE).run_once)
    assert sorted(RunHistory.objects.filter(runner="Old").values_list("started_at", flat=True)) == [
        now - timedelta(days=13), now]
    cleanup = RunHistory.objects.get(runner=NodeMessageCleanup.name)
    assert "deleted 1 run(s) of the run history" in cleanup.message
    assert run_history_purge(older_than=now + timedelta(seconds=1)) == 3


def test_runs_left_running_are_failed_as_interrupted_when_a_term_begins() -> None:
    RunHistory.objects.create(runner="Cut", started_at=timezone.now(), node="gone-node")
    RunHistory.objects.create(runner="Cut", started_at=timezone.now(), node="n1", result="ok")
    assert run_history_recover_interrupted(node="n2") == 1  # no lease in this process: unfenced
    cut = RunHistory.objects.get(node="gone-node")
    assert (cut.result, cut.error) == ("failed", "interrupted: service node gone-node stopped while it was running")


def test_a_node_without_the_lease_records_nothing_and_a_lost_term_finishes_nothing() -> None:
    release = asyncio.Event()

    async def waits(ctx: RunContext) -> str:
        await release.wait()
        return "finished late"

    term_join(node=NODE)
    try:
        run(Scheduler([Probe("Fenced")], node=NODE).run_once)
        assert not RunHistory.objects.exists(), "not the primary: no row"

        held = lease_acquire(node=NODE, token=None, stale_seconds=60)
        term_set(node=NODE, token=held.token, trusted_until=float("inf"))
        scheduler = Scheduler([Probe("Late", body=waits)], node=NODE)

        async def scenario() -> None:
            assert scheduler.run_now("Late").started
            await asyncio.wait_for(recorded("Late"), timeout=5)
            # Another node took the lease over (a new term) while this one was, say, paused.
            await sync_to_async(ServiceLease.objects.update)(holder="n2", token=held.token + 1)
            release.set()
            await scheduler.wait_idle()

        run(scenario)
        late = RunHistory.objects.get(runner="Late")
        assert (late.result, late.lease_token) == ("running", held.token), "the old term's finish is fenced out"
    finally:
        term_leave(node=NODE)
