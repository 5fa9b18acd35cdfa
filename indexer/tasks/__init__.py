"""The service node's own task runners, one module each, and the list a service node schedules.

That list is the domains' runners (indexer.runner_registry: feeds registers its four), then the service's own,
then those named in INDEXER_EXTRA_RUNNERS.
"""
from __future__ import annotations

from django.conf import settings
from django.utils.module_loading import import_string

from indexer.runner import Runner
from indexer.runner_registry import registered_runners
from indexer.tasks.heartbeat import Heartbeat, ServiceHeartbeat
from indexer.tasks.node_message_cleanup import NodeMessageCleanup
from indexer.tasks.trigger_dispatch import TriggerDispatch

# In the order the Service Status page lists them, after the domains' runners.
SERVICE_RUNNERS: tuple[type[Runner], ...] = (TriggerDispatch, ServiceHeartbeat, NodeMessageCleanup)


def _built_in_runner_classes() -> list[type[Runner]]:
    """The domains' runners, then the service's own."""
    return [*registered_runners(), *SERVICE_RUNNERS]


def _extra_runner_classes() -> list[type[Runner]]:
    """The runners named (as dotted paths) in the Django setting INDEXER_EXTRA_RUNNERS."""
    return [import_string(path) for path in getattr(settings, "INDEXER_EXTRA_RUNNERS", ())]


def default_runners(*, heartbeat: Heartbeat | None = None) -> list[Runner]:
    """Every runner of a service node: the built-in ones, then those named in INDEXER_EXTRA_RUNNERS."""
    built_in = [ServiceHeartbeat(heartbeat=heartbeat) if runner is ServiceHeartbeat else runner()
                for runner in _built_in_runner_classes()]
    return [*built_in, *(runner() for runner in _extra_runner_classes())]


def runner_names() -> list[str]:
    """The names of the runners a service node with this configuration has, without building them."""
    return [runner.name for runner in (*_built_in_runner_classes(), *_extra_runner_classes())]
