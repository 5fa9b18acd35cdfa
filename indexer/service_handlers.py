"""The service node's answers to messenger requests: decode the body, call the node, return JSON.

Bodies come from peers that proved the key, but are still checked: a malformed one gets an ERROR
reply (code BAD_REQUEST) naming what was expected; a runner name no runner has gets UNKNOWN_RUNNER.
"""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from asgiref.sync import sync_to_async

from indexer.runner import UnknownRunner
from indexer.tasks.trigger_dispatch import triggers_dispatch
from indexer.triggers import trigger_whereabouts
from messenger.errors import RequestRefused
from messenger.messages import (
    BAD_REQUEST,
    CONFIG_CHANGED,
    PING,
    RUNNER_PAUSE,
    RUNNER_RESUME,
    RUNNER_RUN,
    SERVICE_RESTART,
    STATUS_SNAPSHOT,
    STATUS_SUBSCRIBE,
    TRIGGER_NUDGE,
    UNKNOWN_RUNNER,
)
from messenger.server import RequestContext

if TYPE_CHECKING:
    from indexer.service import ServiceNode

# The Status page shows the last 200 log lines on open; a caller may ask for fewer, never more.
SNAPSHOT_MAX_LOGS = 200
# Who asked for a run, as a trigger stores it (Trigger.requested_by).
REQUESTED_BY_MAX = 150


def _text(body: dict, field: str) -> str:
    value = body.get(field)
    if not isinstance(value, str) or not value:
        raise RequestRefused(f"'{field}' must be a non-empty string", code=BAD_REQUEST)
    return value


def _requested_by(body: dict) -> str:
    """Who asked for a run, as the web node names them (optional; for the run history)."""
    value = body.get("by", "")
    if not isinstance(value, str):
        raise RequestRefused("'by' must be a string", code=BAD_REQUEST)
    return value[:REQUESTED_BY_MAX]


class ServiceHandlers:
    """Request and stream handlers bound to one ServiceNode."""

    def __init__(self, *, node: ServiceNode) -> None:
        self.node = node

    def requests(self) -> dict:
        return {
            PING: self.ping,
            STATUS_SNAPSHOT: self.status_snapshot,
            TRIGGER_NUDGE: self.trigger_nudge,
            RUNNER_RUN: self.runner_run,
            RUNNER_PAUSE: self.runner_pause,
            RUNNER_RESUME: self.runner_resume,
            SERVICE_RESTART: self.service_restart,
            CONFIG_CHANGED: self.config_changed,
        }

    def streams(self) -> dict:
        return {STATUS_SUBSCRIBE: self.status_subscribe}

    def ping(self, body: dict, ctx: RequestContext) -> dict:
        info = self.node.info()
        return {key: info[key] for key in ("node", "version", "uptime", "fingerprint", "role", "leaseToken")}

    def snapshot(self, *, max_logs: int = SNAPSHOT_MAX_LOGS) -> dict:
        return {"service": self.node.info(), **self.node.hub.snapshot(max_logs=max_logs)}

    async def status_snapshot(self, body: dict, ctx: RequestContext) -> dict:
        logs = body.get("logs", SNAPSHOT_MAX_LOGS)
        if not isinstance(logs, int) or isinstance(logs, bool) or logs < 0:
            raise RequestRefused("'logs' must be a whole number", code=BAD_REQUEST)
        return self.snapshot(max_logs=min(logs, SNAPSHOT_MAX_LOGS))

    async def status_subscribe(self, body: dict, ctx: RequestContext) -> AsyncIterator[dict]:
        """A snapshot first, then batches of events; events already in the snapshot are skipped by seq."""
        async with self.node.hub.subscribe() as subscription:
            snapshot = self.snapshot()
            yield {"snapshot": snapshot}
            async for batch in subscription:
                events = [event for event in batch["events"] if event["seq"] > snapshot["seq"]]
                if events or batch.get("dropped"):
                    yield {**batch, "events": events}

    async def trigger_nudge(self, body: dict, ctx: RequestContext) -> dict:
        trigger_id = body.get("id")
        if not isinstance(trigger_id, int) or isinstance(trigger_id, bool) or trigger_id < 1:
            raise RequestRefused("'id' must be a trigger id", code=BAD_REQUEST)
        outcomes = await triggers_dispatch(scheduler=self.node.scheduler, trigger_id=trigger_id)
        if not outcomes:
            outcomes = [await sync_to_async(trigger_whereabouts)(trigger_id=trigger_id)]
        return {"outcomes": outcomes}

    async def runner_run(self, body: dict, ctx: RequestContext) -> dict:
        try:
            start = self.node.scheduler.run_now(_text(body, "name"), requested_by=_requested_by(body))
        except UnknownRunner as exc:
            raise RequestRefused(str(exc), code=UNKNOWN_RUNNER) from None
        return {"started": start.started, "message": start.message}

    async def runner_pause(self, body: dict, ctx: RequestContext) -> dict:
        return await self._set_paused(body, paused=True)

    async def runner_resume(self, body: dict, ctx: RequestContext) -> dict:
        return await self._set_paused(body, paused=False)

    async def _set_paused(self, body: dict, *, paused: bool) -> dict:
        scheduler = self.node.scheduler
        try:
            state = await (scheduler.pause if paused else scheduler.resume)(_text(body, "name"))
        except UnknownRunner as exc:
            raise RequestRefused(str(exc), code=UNKNOWN_RUNNER) from None
        return state.as_json()

    async def service_restart(self, body: dict, ctx: RequestContext) -> dict:
        # Reply first: the restart closes this very connection.
        asyncio.get_running_loop().call_soon(lambda: self.node.stop(restart=True))
        return {"restarting": True}

    async def config_changed(self, body: dict, ctx: RequestContext) -> dict:
        # Applying may move the messenger to another endpoint and close this connection: reply first.
        self.node.apply_settings_soon()
        return {"accepted": True, "knownVersion": self.node.settings_version}
