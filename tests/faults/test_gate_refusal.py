"""A claimed trigger whose run is refused at the scheduler's gate (the primary lease not trusted at that instant,
as right after a database outage) goes back to pending and runs once later; it is never failed unrun."""
from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from indexer.models import RunnerRecord, Trigger
from indexer.runner import RunContext, Scheduler
from indexer.tasks.trigger_dispatch import triggers_dispatch
from indexer.triggers import trigger_create, trigger_get
from tests.indexer.test_runners import Probe, run

pytestmark = pytest.mark.django_db


def test_a_run_refused_at_the_gate_puts_its_trigger_back_and_the_next_dispatch_runs_it_once() -> None:
    trusted = False

    async def gate(ctx: RunContext) -> None:
        if not trusted:
            raise RuntimeError(f"{ctx.node} does not hold the primary lease; {ctx.runner_name} not run")

    probe = Probe("Gated")
    scheduler = Scheduler([probe], node="n1", gate=gate)
    trigger = trigger_create(kind=Trigger.Kind.RUNNER_RUN, target="Gated", requested_by="bob")
    seen: list[tuple[str, str]] = []

    async def scenario() -> None:
        nonlocal trusted
        await triggers_dispatch(scheduler=scheduler)
        await scheduler.wait_idle()
        row = await sync_to_async(trigger_get)(trigger_id=trigger.id)
        seen.append((row.state, scheduler.state("Gated").last_error))
        trusted = True
        await triggers_dispatch(scheduler=scheduler)
        await scheduler.wait_idle()

    run(scenario)
    ((state, error),) = seen
    assert state == Trigger.State.PENDING and error == "RuntimeError: n1 does not hold the primary lease; Gated not run"
    row = trigger_get(trigger_id=trigger.id)
    assert (row.state, probe.runs) == (Trigger.State.DONE, 1)
    assert RunnerRecord.objects.get(name="Gated").last_result == RunnerRecord.Result.OK
