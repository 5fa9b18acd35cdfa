"""What the runners keep in the database: reading their records, pausing, and recording runs.

A run is marked as under way when it begins; recording it when it ends clears the mark and finishes the
trigger that asked for it, in one transaction. A mark left by a crash becomes an interrupted run.
Every write about a run is fenced by the primary lease's token (cluster.lease.lease_fence): a primary that
lost its term (paused, then woken after a takeover) writes nothing into the records of the new term.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction

from cluster.lease import lease_fence
from indexer.models import RunnerRecord
from indexer.triggers import interrupted_reason, trigger_finish


def runner_records_read(*, names: Sequence[str]) -> dict[str, RunnerRecord]:
    """The stored records of the named runners (runners that never ran have none)."""
    return {record.name: record for record in RunnerRecord.objects.filter(name__in=names)}


@transaction.atomic
def runner_paused_set(*, name: str, paused: bool) -> None:
    """Persist whether runner `name` is paused."""
    RunnerRecord.objects.update_or_create(name=name, defaults={"paused": paused})


@transaction.atomic
def runner_run_begin(
    *, name: str, started_at: datetime, node: str, trigger_id: int | None, fencing_token: int | None = None,
) -> None:
    """Mark runner `name`'s run (for `trigger_id`, or scheduled) as under way on `node` since `started_at`.

    Fenced (with `fencing_token`, or this process's lease term): raises LeaseLost, writing nothing.
    """
    lease_fence(node=node, token=fencing_token, trusted=False, what=f"recording the start of {name}")
    RunnerRecord.objects.update_or_create(
        name=name, defaults={"running_since": started_at, "running_node": node, "running_trigger_id": trigger_id}
    )


@dataclass(frozen=True)
class InterruptedRun:
    runner: str
    scheduled: bool  # False: it ran for a trigger (which is failed, never run again)


@transaction.atomic
def runner_runs_recover_interrupted(*, node: str, fencing_token: int | None = None) -> list[InterruptedRun]:
    """Record every run still marked under way as failed, from when it began, naming the node that ran it.

    Call it as `node`'s term as primary begins, before its first run: only the primary runs tasks, so a mark
    left then is from an earlier term (this node before a crash, or the primary it took over from).
    Fenced like runner_run_begin.
    """
    lease_fence(node=node, token=fencing_token, trusted=False, what="recovering interrupted runs")
    records = list(RunnerRecord.objects.select_for_update().filter(running_since__isnull=False))
    for record in records:
        RunnerRecord.objects.filter(name=record.name).update(
            last_started_at=record.running_since, last_duration=None, last_message="",
            last_result=RunnerRecord.Result.FAILED, last_error=interrupted_reason(record.running_node),
            running_since=None, running_node="", running_trigger_id=None,
        )
    return [InterruptedRun(runner=record.name, scheduled=record.running_trigger_id is None) for record in records]


@transaction.atomic
def runner_run_record(
    *, name: str, started_at: datetime, duration: float, ok: bool, error: str, message: str,
    trigger_id: int | None, node: str, fencing_token: int | None = None,
) -> None:
    """Store a finished run and finish the trigger that asked for it, in one transaction.

    Fenced like runner_run_begin: a node that lost the lease meanwhile records neither (raises LeaseLost).
    """
    fence = lease_fence(node=node, token=fencing_token, trusted=False, what=f"recording the run of {name}")
    RunnerRecord.objects.update_or_create(
        name=name,
        defaults={
            "last_started_at": started_at,
            "last_duration": duration,
            "last_result": RunnerRecord.Result.OK if ok else RunnerRecord.Result.FAILED,
            "last_error": error,
            "last_message": message,
            "running_since": None,
            "running_node": "",
            "running_trigger_id": None,
        },
    )
    if trigger_id is not None:
        trigger_finish(trigger_id=trigger_id, node=node, ok=ok, result=message if ok else error, fencing_token=fence)
