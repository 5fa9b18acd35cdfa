"""Node Message Cleanup: deletes finished triggers and run history past their retention, fails long-dead claims.

A trigger still claimed after the whole retention period belongs to a node that is gone: it is failed, never re-run.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from asgiref.sync import sync_to_async
from django.utils import timezone

from indexer.run_history import DAYS_SETTING, run_history_purge
from indexer.runner import RunContext, Runner
from indexer.triggers import triggers_purge, triggers_recover_interrupted
from settings_store.selectors import setting_get

RETENTION_SETTING = "Service.TriggerRetentionDays"


def triggers_clean_up(*, now: datetime) -> str:
    """Fail claims and delete finished triggers older than the retention period; say how many."""
    cutoff = now - timedelta(days=setting_get(RETENTION_SETTING))
    recovered = triggers_recover_interrupted(older_than=cutoff)
    purged = triggers_purge(older_than=cutoff)
    return f"deleted {purged} finished trigger(s), failed {recovered} abandoned one(s)"


def run_history_clean_up(*, now: datetime) -> str:
    """Delete the runs older than the run history's retention; say how many."""
    purged = run_history_purge(older_than=now - timedelta(days=setting_get(DAYS_SETTING)))
    return f"deleted {purged} run(s) of the run history"


class NodeMessageCleanup(Runner):
    name = "Node Message Cleanup"
    interval_setting = "Runners.NodeMessageCleanup.IntervalSeconds"

    async def run(self, ctx: RunContext) -> str:
        now = timezone.now()
        triggers = await sync_to_async(triggers_clean_up)(now=now)
        return f"{triggers}; {await sync_to_async(run_history_clean_up)(now=now)}"
