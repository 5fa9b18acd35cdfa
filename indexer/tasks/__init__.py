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

# In the order the Service Status page lists them; runners named in INDEXER_EXTRA_RUNNERS come after.
BUILT_IN_RUNNERS: tuple[type[Runner], ...] = (
    FeedIndexing, DropPathMonitor, FeedIntegrity, FeedRetention, TriggerDispatch, ServiceHeartbeat, NodeMessageCleanup,
)


def _extra_runner_classes() -> list[type[Runner]]:
    """The runners named (as dotted paths) in the Django setting INDEXER_EXTRA_RUNNERS."""
    return [import_string(path) for path in getattr(settings, "INDEXER_EXTRA_RUNNERS", ())]


def default_runners(*, heartbeat: Heartbeat | None = None) -> list[Runner]:
    """Every runner of a service node: the built-in ones, then those named in INDEXER_EXTRA_RUNNERS."""
    built_in = [ServiceHeartbeat(heartbeat=heartbeat) if runner is ServiceHeartbeat else runner()
                for runner in BUILT_IN_RUNNERS]
    return [*built_in, *(runner() for runner in _extra_runner_classes())]


def runner_names() -> list[str]:
    """The names of the runners a service node with this configuration has, without building them."""
    return [runner.name for runner in (*BUILT_IN_RUNNERS, *_extra_runner_classes())]
