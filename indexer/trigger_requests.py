"""Asking the service to do something: the one core behind every Run and Reindex.

The feed page, the JSON API, `manage.py messenger run|reindex` and the Service Status page's Run all come here.
The target is checked first (a runner this cluster has, a feed that exists): a bad one is refused and nothing is
queued. Then the durable Trigger is written, then the service is nudged. The nudge is best effort: when the
messenger is down the trigger stays pending and Trigger Dispatch claims it on its next poll. Nothing is lost and
nothing runs twice. A Run of a runner that already has a pending Run adds nothing: it answers with that trigger
(one pending run per runner is all a runner can use).
"""
from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from indexer.messenger_config import service_call
from indexer.models import RunnerRecord, Trigger
from indexer.nudges import trigger_nudge
from indexer.runner_registry import targeted_kind
from indexer.tasks import runner_names
from indexer.triggers import TriggerError, trigger_create
from messenger.errors import MessengerError, MessengerUnavailable
from messenger.messages import TRIGGER_NUDGE, UNKNOWN_RUNNER

# A nudge is a courtesy: the page or command waits this long at most, then the poll takes over.
NUDGE_TIMEOUT = 2.0


@dataclass(frozen=True, kw_only=True)
class TriggerRequest:
    trigger: Trigger
    nudged: bool  # the service was reached (or, not waiting, the nudge is on its way over an open connection)
    message: str  # one line for the user: what the service said, or why it is queued
    already_queued: bool = False  # a Run that found a pending Run of the same runner and added nothing


def known_runner_names() -> list[str]:
    """The runners of this configuration, then any other a service node has recorded (e.g. its extra runners)."""
    configured = runner_names()
    recorded = RunnerRecord.objects.exclude(name__in=configured).order_by("name").values_list("name", flat=True)
    return [*configured, *recorded]


@transaction.atomic
def trigger_queue(*, kind: str, target: str, requested_by: str) -> tuple[Trigger, bool]:
    """Store a pending trigger for a known runner or an existing feed; raises TriggerError otherwise.

    Returns (trigger, already_queued): a Run of a runner with a pending Run returns that one, adding nothing.
    """
    name = target.strip()
    if kind == Trigger.Kind.RUNNER_RUN and name:
        known = known_runner_names()
        if name not in known:
            raise TriggerError(f"unknown runner {name!r} (known: {', '.join(known)})", code=UNKNOWN_RUNNER)
        pending = Trigger.objects.filter(kind=kind, target=name, state=Trigger.State.PENDING).order_by("id").first()
        if pending is not None:
            return pending, True
    elif name and (targeted := targeted_kind(kind)) is not None and (refusal := targeted.refusal(name)):
        raise TriggerError(refusal, code=targeted.unknown_code)
    return trigger_create(kind=kind, target=target, requested_by=requested_by), False


def trigger_request(*, kind: str, target: str, requested_by: str, wait: bool = True) -> TriggerRequest:
    """Queue a trigger (trigger_queue), then nudge the service; raises TriggerError for a bad kind or target.

    wait=True (commands, the API): one request, and the message says what the service answered.
    wait=False (pages): the nudge goes over this process's open connection (indexer.nudges) and the caller
    answers at once; only while that connection is down does it wait (NUDGE_TIMEOUT at most) for the attempt.
    """
    trigger, already_queued = trigger_queue(kind=kind, target=target, requested_by=requested_by)
    if wait:
        try:
            reply = service_call(TRIGGER_NUDGE, body={"id": trigger.id}, timeout=NUDGE_TIMEOUT)
        except MessengerError as exc:
            reason = exc.reason if isinstance(exc, MessengerUnavailable) else str(exc)
            return _queued(trigger, reason, already_queued=already_queued)
        message = "; ".join(reply.get("outcomes") or [])
    else:
        sent = trigger_nudge(trigger_id=trigger.id, wait=NUDGE_TIMEOUT)
        if not sent.reachable:
            return _queued(trigger, sent.reason, already_queued=already_queued)
        message = "; ".join((sent.reply or {}).get("outcomes") or []) or _sent_line(trigger)
    if already_queued:
        message = f"already queued (trigger {trigger.id}): {message}"
    return TriggerRequest(trigger=trigger, nudged=True, message=message, already_queued=already_queued)


def _sent_line(trigger: Trigger) -> str:
    return f"trigger {trigger.id} sent to the service"


def _queued(trigger: Trigger, reason: str, *, already_queued: bool) -> TriggerRequest:
    message = (f"trigger {trigger.id} queued — the service is not reachable ({reason}); "
               "it will run when the service is back")
    if already_queued:
        message = f"already queued: {message}"
    return TriggerRequest(trigger=trigger, nudged=False, message=message, already_queued=already_queued)
