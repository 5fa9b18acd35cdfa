"""Service Heartbeat: tells the node registry this node is alive (the cluster issue adds leases and failover).

The registry update is a callable the service node passes in, so this runner holds no cluster logic.
"""
from __future__ import annotations

import logging
from collections.abc import Callable

from asgiref.sync import sync_to_async

from indexer.runner import RunContext, Runner

# Updates this node's row in the node registry (a synchronous ORM call) and returns a one-line result.
Heartbeat = Callable[[], str]


class ServiceHeartbeat(Runner):
    name = "Service Heartbeat"
    interval_setting = "Runners.ServiceHeartbeat.IntervalSeconds"
    routine_log_level = logging.DEBUG

    def __init__(self, *, heartbeat: Heartbeat | None = None) -> None:
        self._heartbeat = heartbeat

    async def run(self, ctx: RunContext) -> str:
        if self._heartbeat is None:
            return "no node registry configured"
        return await sync_to_async(self._heartbeat)()
