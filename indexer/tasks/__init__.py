"""The service node's task runners, one module each, and the list a service node schedules."""
from __future__ import annotations

from django.conf import settings
from django.utils.module_loading import import_string

from indexer.runner import Runner
from indexer.tasks.drop_path_monitor import DropPathMonitor
from indexer.tasks.feed_indexing import FeedIndexing
from indexer.tasks.feed_integrity import FeedIntegrity
from indexer.tasks.feed_retention import FeedRetention
from indexer.tasks.heartbeat import Heartbeat, ServiceHeartbeat
from indexer.tasks.node_message_cleanup import NodeMessageCleanup
from indexer.tasks.trigger_dispatch import TriggerDispatch


def default_runners(*, heartbeat: Heartbeat | None = None) -> list[Runner]:
    """Every runner of a service node, in the order the Service Status page lists them.

    Runners named (as dotted paths) in the Django setting INDEXER_EXTRA_RUNNERS come last.
    """
    extra = [import_string(path)() for path in getattr(settings, "INDEXER_EXTRA_RUNNERS", ())]
    return [
        FeedIndexing(),
        DropPathMonitor(),
        FeedIntegrity(),
        FeedRetention(),
        TriggerDispatch(),
        ServiceHeartbeat(heartbeat=heartbeat),
        NodeMessageCleanup(),
        *extra,
    ]
