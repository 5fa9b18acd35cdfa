"""Trigger Dispatch: claims pending triggers and starts what they ask for; also run at once on a `trigger.nudge`.

A claimed trigger is finished exactly once: by the run it started, or at once with the reason it cannot run.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from asgiref.sync import sync_to_async

from indexer.models import Trigger
from indexer.runner import RunContext, Runner, Scheduler, State
from indexer.runner_registry import targeted_kind
from indexer.triggers import trigger_claim, trigger_finish, trigger_release

logger = logging.getLogger(__name__)

# Pending triggers looked at per pass: enough to find one for every idle runner behind a queue for a busy one.
CLAIM_SCAN_LIMIT = 500


def _runner_and_target(kind: str, target: str) -> tuple[str, str | None]:
    """Which runner a trigger asks for, and the target (e.g. a feed) it is limited to."""
    targeted = targeted_kind(kind)
    return (target, None) if targeted is None else (targeted.runner, target)


def _refusal(trigger: Trigger, *, runner_names: Sequence[str]) -> str | None:
    """Why the trigger cannot run here, or None."""
    targeted = targeted_kind(trigger.kind)
    runner = trigger.target if targeted is None else targeted.runner
    if runner not in runner_names:
        return f"unknown runner {runner!r} (known: {', '.join(runner_names)})"
    return None if targeted is None else targeted.refusal(trigger.target)


def triggers_claim_runnable(
    *, node: str, runner_names: Sequence[str], busy: Iterable[str] = (), trigger_id: int | None = None
) -> tuple[list[Trigger], list[str]]:
    """Claim pending triggers for `node`; fail at once those naming no known runner or feed.

    At most one trigger per runner is claimed, none for a `busy` runner: those stay pending until
    the runner is free, so a reindex asked for while indexing runs is queued, not refused.
    Returns the triggers to start, and one line for each trigger failed here.
    """
    taken = set(busy)

    def accept(kind: str, target: str) -> bool:
        runner, _ = _runner_and_target(kind, target)
        if runner in taken:
            return False
        if runner in runner_names:
            taken.add(runner)
        return True

    runnable, refused = [], []
    for trigger in trigger_claim(node=node, trigger_id=trigger_id, limit=CLAIM_SCAN_LIMIT, accept=accept):
        reason = _refusal(trigger, runner_names=runner_names)
        if reason is None:
            runnable.append(trigger)
        else:
            trigger_finish(trigger_id=trigger.id, node=node, ok=False, result=reason)
            refused.append(f"trigger {trigger.id} failed: {reason}")
    return runnable, refused


async def triggers_dispatch(*, scheduler: Scheduler, trigger_id: int | None = None) -> list[str]:
    """Claim pending triggers (or just `trigger_id`) and start their runs; one line per claimed trigger.

    A started run finishes its trigger with its result. A trigger whose runner turned out to be busy
    (or the service began stopping) goes back to pending and starts when the runner is free.
    A stopping service claims nothing: pending triggers wait for the next start.
    """
    if scheduler.stopping:
        return []
    busy = [state.name for state in scheduler.states() if state.state is State.RUNNING]
    runnable, outcomes = await sync_to_async(triggers_claim_runnable)(
        node=scheduler.node, runner_names=scheduler.names, busy=busy, trigger_id=trigger_id
    )
    for trigger in runnable:
        runner, target = _runner_and_target(trigger.kind, trigger.target)
        start = scheduler.run_now(runner, target=target, trigger_id=trigger.id)
        if start.started:
            outcomes.append(f"trigger {trigger.id} ({trigger.kind} {trigger.target}): {start.message}")
        else:
            await sync_to_async(trigger_release)(trigger_id=trigger.id, node=scheduler.node)
            outcomes.append(f"trigger {trigger.id} ({trigger.kind} {trigger.target}) waits: {start.message}")
    for line in outcomes:
        logger.info("%s", line)
    return outcomes


class TriggerDispatch(Runner):
    name = "Trigger Dispatch"
    interval_setting = "Service.TriggerPollSeconds"
    routine_log_level = logging.DEBUG

    async def run(self, ctx: RunContext) -> str:
        outcomes = await triggers_dispatch(scheduler=ctx.scheduler)
        return f"dispatched {len(outcomes)} trigger(s)" if outcomes else "no pending triggers"
