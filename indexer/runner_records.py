"""What the runners keep in the database: reading their records, pausing, and recording a finished run.

Recording a run and finishing the trigger that asked for it happen in one transaction.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from django.db import transaction

from indexer.models import RunnerRecord
from indexer.triggers import trigger_finish


def runner_records_read(*, names: Sequence[str]) -> dict[str, RunnerRecord]:
    """The stored records of the named runners (runners that never ran have none)."""
    return {record.name: record for record in RunnerRecord.objects.filter(name__in=names)}


@transaction.atomic
def runner_paused_set(*, name: str, paused: bool) -> None:
    """Persist whether runner `name` is paused."""
    RunnerRecord.objects.update_or_create(name=name, defaults={"paused": paused})


@transaction.atomic
def runner_run_record(
    *, name: str, started_at: datetime, duration: float, ok: bool, error: str, message: str,
    trigger_id: int | None, node: str,
) -> None:
    """Store a finished run and finish the trigger that asked for it, in one transaction."""
    RunnerRecord.objects.update_or_create(
        name=name,
        defaults={
            "last_started_at": started_at,
            "last_duration": duration,
            "last_result": RunnerRecord.Result.OK if ok else RunnerRecord.Result.FAILED,
            "last_error": error,
            "last_message": message,
        },
    )
    if trigger_id is not None:
        trigger_finish(trigger_id=trigger_id, node=node, ok=ok, result=message if ok else error)
