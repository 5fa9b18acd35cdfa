"""Asking the service to do something: write the durable Trigger first, then nudge it through the messenger.

The nudge is best effort: when the messenger is down the trigger stays pending and Trigger Dispatch
claims it on its next poll. Nothing is lost and nothing runs twice.
"""
from __future__ import annotations

from dataclasses import dataclass

from indexer.models import Trigger
from indexer.triggers import trigger_create
from messenger.config import service_call
from messenger.errors import MessengerError, MessengerUnavailable

# A nudge is a courtesy: the page or command waits this long at most, then the poll takes over.
NUDGE_TIMEOUT = 2.0


@dataclass(frozen=True, kw_only=True)
class TriggerRequest:
    trigger: Trigger
    nudged: bool
    message: str  # one line for the user: what the service said, or why it is queued


def trigger_request(*, kind: str, target: str, requested_by: str) -> TriggerRequest:
    """Create a trigger and nudge the service; raises TriggerError for a bad kind or target."""
    trigger = trigger_create(kind=kind, target=target, requested_by=requested_by)
    try:
        reply = service_call("trigger.nudge", body={"id": trigger.id}, timeout=NUDGE_TIMEOUT)
    except MessengerUnavailable as exc:
        return TriggerRequest(trigger=trigger, nudged=False, message=_queued(trigger, exc.reason))
    except MessengerError as exc:
        return TriggerRequest(trigger=trigger, nudged=False, message=_queued(trigger, str(exc)))
    return TriggerRequest(trigger=trigger, nudged=True, message="; ".join(reply.get("outcomes") or []))


def _queued(trigger: Trigger, reason: str) -> str:
    return (f"trigger {trigger.id} queued — the service is not reachable ({reason}); "
            "it will run when the service is back")
