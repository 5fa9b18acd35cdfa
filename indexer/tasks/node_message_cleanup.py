"""Node Message Cleanup: deletes finished triggers past their retention and fails long-dead claims.

A trigger still claimed after the whole retention period belongs to a node that is gone: it is failed, never re-run.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from asgiref.sync import sync_to_async
from django.utils import timezone

from indexer.runner import RunContext, Runner
from indexer.triggers import triggers_purge, triggers_recover_interrupted
from proget_web.advanced_settings.selectors import setting_get

RETENTION_SETTING = "Service.TriggerRetentionDays"


def triggers_clean_up(*, now: datetime) -> str:
    """Fail claims and delete finished triggers older than the retention period; say how many."""
    cutoff = now - timedelta(days=setting_get(RETENTION_SETTING))
    recovered = triggers_recover_interrupted(older_than=cutoff)
    purged = triggers_purge(older_than=cutoff)
    return f"deleted {purged} finished trigger(s), failed {recovered} abandoned one(s)"


class NodeMessageCleanup(Runner):
    name = "Node Message Cleanup"
    interval_setting = "Runners.NodeMessageCleanup.IntervalSeconds"

    async def run(self, ctx: RunContext) -> str:
        return await sync_to_async(triggers_clean_up)(now=timezone.now())
