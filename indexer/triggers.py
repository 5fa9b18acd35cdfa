"""Durable triggers: create, claim (exactly once across service processes), finish, recover and purge.

Claiming is a conditional UPDATE (pending -> running) whose row count says who won, which holds on
SQLite and PostgreSQL alike; a trigger is only ever failed after an interruption, never re-run.
In a cluster, claims and finishes are also fenced by the primary lease's token (cluster.lease).
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from cluster.lease import LeaseLost, lease_fence, lease_guard
from indexer.models import TARGET_MAX_LENGTH, Trigger
from messenger.messages import BAD_REQUEST

logger = logging.getLogger(__name__)

FINISHED_STATES = (Trigger.State.DONE, Trigger.State.FAILED)


class TriggerError(ValueError):
    """A trigger that cannot be created: the message is for the user, `code` (BAD_REQUEST, UNKNOWN_RUNNER or
    UNKNOWN_FEED of messenger.messages, as the service's refusals) for callers."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


def interrupted_reason(node: str) -> str:
    """Why a trigger or task run left running by `node` was failed."""
    return f"interrupted: service node {node} stopped while it was running"


@transaction.atomic
def trigger_create(*, kind: str, target: str, requested_by: str) -> Trigger:
    """Store a pending trigger; raises TriggerError for an unknown kind or a bad target."""
    if kind not in Trigger.Kind.values:
        raise TriggerError(f"unknown trigger kind {kind!r} (expected one of {', '.join(Trigger.Kind.values)})",
                           code=BAD_REQUEST)
    target = target.strip()
    if not target:
        raise TriggerError("a trigger needs a target (a feed or runner name)", code=BAD_REQUEST)
    if len(target) > TARGET_MAX_LENGTH:
        raise TriggerError(f"a trigger target is at most {TARGET_MAX_LENGTH} characters", code=BAD_REQUEST)
    trigger = Trigger.objects.create(kind=kind, target=target, requested_by=requested_by)
    logger.info("trigger %s created: %s %s by %s", trigger.id, kind, target, requested_by)
    return trigger


@transaction.atomic
def trigger_claim(
    *, node: str, trigger_id: int | None = None, limit: int = 20,
    accept: Callable[[str, str], bool] | None = None, fencing_token: int | None = None,
) -> list[Trigger]:
    """Claim up to `limit` pending triggers (oldest first, or just `trigger_id`) for `node`.

    `accept(kind, target)` may pass over a trigger, which then stays pending (e.g. its runner is busy).
    Each row is taken by a conditional UPDATE; only the process whose UPDATE changed the row owns
    it, so two racing claimers never both get the same trigger. Returns the claimed rows.

    Fenced (with `fencing_token`, or this process's lease term): each UPDATE is also conditional on the
    lease still holding that token, and a node that is not the primary claims nothing (returns []).
    """
    try:
        fence = lease_fence(node=node, token=fencing_token, trusted=True, what="trigger claim")
    except LeaseLost as exc:
        logger.info("no triggers claimed: %s", exc)
        return []
    pending = Trigger.objects.filter(state=Trigger.State.PENDING)
    if trigger_id is not None:
        pending = pending.filter(id=trigger_id)
    rows = pending.order_by("created_at", "id").values_list("id", "kind", "target")[:limit]
    candidates = [id_ for id_, kind, target in rows if accept is None or accept(kind, target)]
    now = timezone.now()
    guard = lease_guard(node=node, token=fence) if fence is not None else Q()
    claimed = [
        candidate
        for candidate in candidates
        if Trigger.objects.filter(id=candidate, state=Trigger.State.PENDING).filter(guard).update(
            state=Trigger.State.RUNNING, claimed_by=node, claimed_at=now, claim_token=fence
        )
        == 1
    ]
    return list(Trigger.objects.filter(id__in=claimed).order_by("created_at", "id"))


def trigger_release(*, trigger_id: int, node: str) -> bool:
    """Put a trigger `node` claimed but could not start back to pending (it runs later, still once)."""
    released = Trigger.objects.filter(id=trigger_id, state=Trigger.State.RUNNING, claimed_by=node).update(
        state=Trigger.State.PENDING, claimed_by="", claimed_at=None
    )
    return released == 1


@transaction.atomic
def trigger_finish(
    *, trigger_id: int, node: str, ok: bool, result: str, fencing_token: int | None = None
) -> bool:
    """Finish a trigger that `node` is running; returns False (and changes nothing) otherwise.

    Fenced (with `fencing_token`, or this process's lease term): raises LeaseLost when `node` no longer
    holds the lease under that token, so the caller's transaction (the run record) is rolled back too.
    """
    fence = lease_fence(node=node, token=fencing_token, trusted=False, what=f"finishing trigger {trigger_id}")
    running = Trigger.objects.filter(id=trigger_id, state=Trigger.State.RUNNING, claimed_by=node)
    if fence is not None:
        running = running.filter(lease_guard(node=node, token=fence))
    finished = running.update(
        state=Trigger.State.DONE if ok else Trigger.State.FAILED, result=result, finished_at=timezone.now()
    )
    if not finished:
        logger.warning("trigger %s not finished: it is not running on node %s", trigger_id, node)
    return finished == 1


def _fail_running(which: Q) -> int:
    """Fail the running triggers matching `which`, each with the reason naming the node that held it."""
    running = Trigger.objects.filter(which, state=Trigger.State.RUNNING)
    now = timezone.now()
    recovered = 0
    for owner in running.values_list("claimed_by", flat=True).distinct():
        recovered += running.filter(claimed_by=owner).update(
            state=Trigger.State.FAILED, result=interrupted_reason(owner), finished_at=now
        )
    return recovered


def triggers_recover_fenced(*, token: int, previous_holder: str) -> int:
    """At a takeover under `token`: fail the triggers earlier terms left running (their finish is fenced).

    Those claimed under an older token, and those the previous holder claimed outside any lease.
    Runs inside lease_acquire's transaction, after the lease row is locked.
    """
    stale = Q(claim_token__lt=token)
    if previous_holder:
        stale |= Q(claimed_by=previous_holder, claim_token__isnull=True)
    recovered = _fail_running(stale)
    if recovered:
        logger.warning("marked %s trigger(s) left running by an earlier primary failed", recovered)
    return recovered


@transaction.atomic
def triggers_recover_interrupted(*, node: str | None = None, older_than: datetime | None = None) -> int:
    """Fail triggers left running by a node that stopped: `node`'s (at its startup) or claims older than a cutoff.

    They are marked failed with the reason, never re-run: nothing runs twice, nothing stays running forever.
    """
    if node is None and older_than is None:
        raise ValueError("give the node that restarted, a cutoff, or both")
    interrupted = Q()
    if node is not None:
        interrupted |= Q(claimed_by=node)
    if older_than is not None:
        interrupted |= Q(claimed_at__lt=older_than)
    recovered = _fail_running(interrupted)
    if recovered:
        logger.warning("marked %s interrupted trigger(s) failed", recovered)
    return recovered


@transaction.atomic
def triggers_purge(*, older_than: datetime) -> int:
    """Delete finished (done or failed) triggers that finished before `older_than`; returns how many."""
    deleted, _ = Trigger.objects.filter(state__in=FINISHED_STATES, finished_at__lt=older_than).delete()
    return deleted


def trigger_get(*, trigger_id: int) -> Trigger | None:
    """The trigger with that id, or None."""
    return Trigger.objects.filter(id=trigger_id).first()


def triggers_pending_count() -> int:
    """How many triggers wait for a service node."""
    return Trigger.objects.filter(state=Trigger.State.PENDING).count()


def trigger_whereabouts(*, trigger_id: int) -> str:
    """One line on where a trigger stands, for a nudge that did not start it itself."""
    trigger = trigger_get(trigger_id=trigger_id)
    if trigger is None:
        return f"trigger {trigger_id} does not exist"
    if trigger.state == Trigger.State.PENDING:
        return f"trigger {trigger_id} queued: it starts as soon as its task runner is free"
    return f"trigger {trigger_id} is {trigger.state} (claimed by {trigger.claimed_by or 'no node'})"
