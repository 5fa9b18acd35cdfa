"""Service Heartbeat: tells the node registry and the status viewers this node is alive, and its role.

Like every runner it runs on the primary only. Lease renewal and failover detection are not done here:
a standby schedules no runners, so the service node keeps the lease in its own loop (indexer.service,
every Service.HeartbeatSeconds, on standbys too). The registry update is a callable the node passes in.
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
