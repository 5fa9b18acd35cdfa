"""Each task runner's recent runs in the database: a row written as a run begins and finished as it ends, bounded.

Writes are fenced like trigger writes: in a process that takes part in the primary lease (cluster.lease), a run's
row is written only while this node holds the lease, and finished only while it still holds it under the token
the run began with, so a node woken after losing the lease records nothing into the new primary's term.
Kept: Service.RunHistoryRuns runs per runner (older ones deleted as runs end), Service.RunHistoryDays days
(deleted by Node Message Cleanup), Service.RunHistoryLogLines log lines per run (indexer.run_log).
"""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from asgiref.sync import sync_to_async
from django.db import transaction
from django.utils import timezone

from cluster.lease import NOT_HELD, lease_fence, lease_guard, lease_holds, term_token
from indexer.models import RunHistory, Trigger
from indexer.run_log import RunLog, run_log_start
from indexer.triggers import interrupted_reason
from settings_store.selectors import setting_get

logger = logging.getLogger(__name__)

RUNS_SETTING = "Service.RunHistoryRuns"
DAYS_SETTING = "Service.RunHistoryDays"
LOG_LINES_SETTING = "Service.RunHistoryLogLines"

# Who or what started a run that no trigger asked for (a trigger's run names who asked for the trigger).
CAUSE_SCHEDULE = "schedule"
CAUSE_RERUN = "schedule (again: its previous run was interrupted)"
CAUSE_RUN_NOW = "run now (a messenger request)"
TRIGGERED_BY_MAX = RunHistory._meta.get_field("triggered_by").max_length


@transaction.atomic
def run_history_begin(
    *, runner: str, started_at: datetime, node: str, target: str | None, trigger_id: int | None, cause: str,
) -> RunHistory | None:
    """Write the row of a run that began on `node` (result "running"); None when this node is not the primary."""
    token = term_token(node=node, trusted=False)
    if token is NOT_HELD or (token is not None and not lease_holds(node=node, token=token)):
        logger.info("run of %s not recorded: %s does not hold the primary lease", runner, node)
        return None
    triggered_by = cause
    if trigger_id is not None:
        asked = Trigger.objects.filter(id=trigger_id).values_list("requested_by", flat=True).first()
        triggered_by = asked or f"trigger {trigger_id}"
    return RunHistory.objects.create(
        runner=runner, started_at=started_at, node=node, target=target or "", trigger_id=trigger_id,
        triggered_by=triggered_by[:TRIGGERED_BY_MAX], lease_token=token,
    )


@transaction.atomic
def run_history_finish(
    *, run: RunHistory, finished_at: datetime, duration: float, ok: bool, message: str, error: str, log: RunLog,
) -> bool:
    """Store how the run ended and its kept log lines, then delete its runner's runs beyond the count kept.

    Changes nothing (False) when the run's row is gone, already finished (recovered as interrupted), or when
    its term's lease is no longer held under the token it began with.
    """
    log.close()
    kept = log.kept(limit=int(setting_get(LOG_LINES_SETTING)))
    rows = RunHistory.objects.filter(id=run.id, result=RunHistory.Result.RUNNING)
    if run.lease_token is not None:
        rows = rows.filter(lease_guard(node=run.node, token=run.lease_token))
    finished = rows.update(
        finished_at=finished_at, duration=duration, message=message, error=error,
        result=RunHistory.Result.OK if ok else RunHistory.Result.FAILED,
        log=kept.lines, log_dropped=kept.dropped, log_dropped_at=kept.dropped_at,
    )
    if finished:
        run_history_trim(runner=run.runner, keep=int(setting_get(RUNS_SETTING)))
    return finished == 1


def run_history_trim(*, runner: str, keep: int) -> int:
    """Delete the runs of `runner` older than its `keep` latest; returns how many."""
    ids = RunHistory.objects.filter(runner=runner).order_by("-id").values_list("id", flat=True)
    newest_gone = list(ids[keep:keep + 1])
    if not newest_gone:
        return 0
    deleted, _ = RunHistory.objects.filter(runner=runner, id__lte=newest_gone[0]).delete()
    return deleted


@transaction.atomic
def run_history_purge(*, older_than: datetime) -> int:
    """Delete the runs that started before `older_than`; returns how many."""
    deleted, _ = RunHistory.objects.filter(started_at__lt=older_than).delete()
    return deleted


@transaction.atomic
def run_history_recover_interrupted(*, node: str, fencing_token: int | None = None) -> int:
    """Fail every run still recorded as running, naming the node that ran it; returns how many.

    Call it as `node`'s term as primary begins, before its first run; fenced as runner_runs_recover_interrupted.
    """
    lease_fence(node=node, token=fencing_token, trusted=False, what="recovering interrupted runs of the history")
    running = RunHistory.objects.filter(result=RunHistory.Result.RUNNING)
    recovered = 0
    for node in running.values_list("node", flat=True).distinct():
        recovered += running.filter(node=node).update(result=RunHistory.Result.FAILED, error=interrupted_reason(node))
    return recovered


class RunRecorder:
    """One run's history for the scheduler: collects its log from creation on, writes its row beside the run.

    Create it in the run's own asyncio task (its log is that task's); no failure here ever fails the run.
    """

    def __init__(self, *, runner: str, node: str, target: str | None, trigger_id: int | None, cause: str) -> None:
        self.log = run_log_start()
        self._begin = {"runner": runner, "node": node, "target": target, "trigger_id": trigger_id, "cause": cause}
        self._row: asyncio.Task[RunHistory | None] | None = None

    def begin(self, *, started_at: datetime) -> None:
        """Write the run's row in the background: the run does not wait for the database."""
        self._row = asyncio.create_task(self._write_begin(started_at))

    async def _write_begin(self, started_at: datetime) -> RunHistory | None:
        try:
            return await sync_to_async(run_history_begin)(started_at=started_at, **self._begin)
        except Exception as exc:
            logger.warning("could not record the start of %s in its history: %s", self._begin["runner"], exc)
            return None

    async def finish(self, *, ok: bool, message: str, error: str, duration: float) -> None:
        """Record how the run ended (nothing for a run that never began, or whose start was not recorded)."""
        run = await self._row if self._row is not None else None
        if run is None:
            return
        try:
            await sync_to_async(run_history_finish)(
                run=run, finished_at=timezone.now(), duration=duration, ok=ok, message=message, error=error,
                log=self.log,
            )
        except Exception as exc:
            logger.warning("could not record the end of %s in its history: %s", run.runner, exc)
