"""Asking the service to do something: write the durable Trigger first, then nudge it through the messenger.

The one core behind every Run and Reindex (the feed page, the API, `manage.py messenger`, the Service
Status page's WebSocket): the target is checked first (a runner this configuration has, a feed that
exists), so a bad one is refused and nothing is queued. The nudge is best effort: when the messenger is
down the trigger stays pending and Trigger Dispatch claims it on its next poll. Nothing is lost and
nothing runs twice.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from channels.db import database_sync_to_async

from indexer.models import Trigger
from indexer.tasks import runner_names
from indexer.tasks.feeds import feed_exists
from indexer.triggers import TriggerError, trigger_create
from messenger.config import service_call
from messenger.errors import MessengerError, MessengerUnavailable

# A nudge is a courtesy: the page or command waits this long at most, then the poll takes over.
NUDGE_TIMEOUT = 2.0
NUDGE = "trigger.nudge"

# How an async caller sends the nudge: (type, body, timeout) -> reply, e.g. the status link's request.
AsyncCall = Callable[..., Awaitable[dict]]


@dataclass(frozen=True, kw_only=True)
class TriggerRequest:
    trigger: Trigger
    nudged: bool
    message: str  # one line for the user: what the service said, or why it is queued


def trigger_queue(*, kind: str, target: str, requested_by: str) -> Trigger:
    """Store a pending trigger for a known runner or an existing feed; raises TriggerError otherwise."""
    name = target.strip()
    if kind == Trigger.Kind.RUNNER_RUN and name:
        known = runner_names()
        if name not in known:
            raise TriggerError(f"unknown runner {name!r} (known: {', '.join(known)})")
    elif kind == Trigger.Kind.FEED_REINDEX and name and not feed_exists(name=name):
        raise TriggerError(f"unknown feed {name!r}")
    return trigger_create(kind=kind, target=target, requested_by=requested_by)


def trigger_request(*, kind: str, target: str, requested_by: str) -> TriggerRequest:
    """Queue a trigger (trigger_queue) and nudge the service; raises TriggerError for a bad kind or target."""
    trigger = trigger_queue(kind=kind, target=target, requested_by=requested_by)
    try:
        reply = service_call(NUDGE, body={"id": trigger.id}, timeout=NUDGE_TIMEOUT)
    except MessengerError as exc:
        return _queued(trigger, exc)
    return _nudged(trigger, reply)


async def trigger_request_async(*, kind: str, target: str, requested_by: str, call: AsyncCall) -> TriggerRequest:
    """trigger_request for an event loop, nudging through `call` (an open messenger client, not a new one)."""
    trigger = await database_sync_to_async(trigger_queue)(kind=kind, target=target, requested_by=requested_by)
    try:
        reply = await call(NUDGE, {"id": trigger.id}, timeout=NUDGE_TIMEOUT)
    except MessengerError as exc:
        return _queued(trigger, exc)
    return _nudged(trigger, reply)


def _nudged(trigger: Trigger, reply: dict) -> TriggerRequest:
    return TriggerRequest(trigger=trigger, nudged=True, message="; ".join(reply.get("outcomes") or []))


def _queued(trigger: Trigger, exc: MessengerError) -> TriggerRequest:
    reason = exc.reason if isinstance(exc, MessengerUnavailable) else str(exc)
    message = (f"trigger {trigger.id} queued — the service is not reachable ({reason}); "
               "it will run when the service is back")
    return TriggerRequest(trigger=trigger, nudged=False, message=message)
