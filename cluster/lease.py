"""The primary lease: which service node runs the task runners, with a fencing token, on the database's clock.

At most one node holds the lease at a time (a conditional UPDATE under a row lock decides); the token grows
each time ownership changes, and fenced writes (trigger claims and finishes, runner records) only apply under
the current one.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from django.db import connection, transaction
from django.db.models import DateTimeField, ExpressionWrapper, F, Q
from django.db.models.functions import Now

from cluster.models import LEASE_ID, Failover, ServiceLease
from settings_store.selectors import setting_get

logger = logging.getLogger(__name__)

HEARTBEAT_SETTING = "Service.HeartbeatSeconds"
STALE_SETTING = "Service.FailoverStaleSeconds"
# PostgreSQL ends a session idle this long inside a transaction that locked the lease row: a paused (SIGSTOP)
# holder caught mid-claim must not block a takeover; its transaction rolls back. Fenced transactions are a
# few quick statements from one thread, never idle this long (and below the 2 s minimum stale period).
LOCKED_IDLE_LIMIT_MS = 1000
# A takeover waits this long at most for the lease row's lock, then tries again at its next heartbeat.
LOCK_WAIT_LIMIT_MS = 3000
# A stale period shorter than two heartbeats would let one late renewal cost the primary its lease.
MIN_STALE_HEARTBEATS = 2


class TakeoverHook(Protocol):
    """What a takeover must also do in its transaction: the domains above the cluster register theirs at start-up
    (the indexer fails the triggers earlier terms left running), so the lease needs no import of them."""

    def __call__(self, *, token: int, previous_holder: str) -> object: ...


_takeover_hooks: list[TakeoverHook] = []


def on_takeover(hook: TakeoverHook) -> None:
    """Run `hook` inside every future takeover's transaction, after the Failover is recorded (once per hook)."""
    if hook not in _takeover_hooks:
        _takeover_hooks.append(hook)


class LeaseLost(RuntimeError):
    """A fenced write was refused: this node no longer holds the lease under the token it wrote with."""


@dataclass(frozen=True, kw_only=True)
class LeaseTiming:
    heartbeat: float  # seconds between renewals (and takeover attempts)
    stale: float  # seconds without a renewal after which a standby takes over

    @property
    def local_margin(self) -> float:
        """How long before the database's expiry the holder stops trusting its lease (self-fencing)."""
        return min(self.heartbeat, self.stale / 2)


def lease_timing() -> LeaseTiming:
    """The lease timing from Advanced Settings; a stale period under two heartbeats is raised to that."""
    heartbeat = float(setting_get(HEARTBEAT_SETTING))
    stale = float(setting_get(STALE_SETTING))
    if stale < MIN_STALE_HEARTBEATS * heartbeat:
        logger.warning("%s=%g is under %s x %s=%g; using %g", STALE_SETTING, stale, MIN_STALE_HEARTBEATS,
                       HEARTBEAT_SETTING, heartbeat, MIN_STALE_HEARTBEATS * heartbeat)
        stale = MIN_STALE_HEARTBEATS * heartbeat
    return LeaseTiming(heartbeat=heartbeat, stale=stale)


@dataclass(frozen=True, kw_only=True)
class LeaseHeld:
    """The lease as `node` holds it after a successful acquire or renew."""

    holder: str
    token: int
    expires_at: datetime  # on the database's clock
    acquired: bool  # True when this call took it (a new term), False for a renewal


def _limit_locked_transaction() -> None:
    """On PostgreSQL, bound how long this transaction may wait for, or sit idle on, the lease row's lock."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL idle_in_transaction_session_timeout = {LOCKED_IDLE_LIMIT_MS}")
            cursor.execute(f"SET LOCAL lock_timeout = {LOCK_WAIT_LIMIT_MS}")


def _ensure_row() -> None:
    if not ServiceLease.objects.filter(pk=LEASE_ID).exists():
        ServiceLease.objects.bulk_create([ServiceLease(pk=LEASE_ID)], ignore_conflicts=True)


def _expiry(stale_seconds: float) -> ExpressionWrapper:
    return ExpressionWrapper(Now() + timedelta(seconds=stale_seconds), output_field=DateTimeField())


def _takeover_reason(lease: ServiceLease, *, node: str) -> str:
    if not lease.holder:
        return "first primary of the cluster"
    if lease.holder == node:
        return f"node {node} restarted (its previous process no longer renews the lease)"
    if lease.released:
        return f"{lease.holder} released the lease (stopped cleanly)"
    renewed = lease.renewed_at.isoformat(timespec="seconds") if lease.renewed_at else "never"
    return f"{lease.holder} stopped renewing the lease (last renewal {renewed}, expired {lease.expires_at})"


@transaction.atomic
def lease_acquire(*, node: str, token: int | None, stale_seconds: float) -> LeaseHeld | None:
    """Renew the lease `node` holds under `token`, or take it over; None when another node holds it.

    Taken when nobody holds it, it expired or was released (on the database's clock), or — with
    `token` None, i.e. from a process that never held it — when it names `node` itself (a restart).
    A takeover increments the token, records a Failover and runs the takeover hooks (on_takeover).
    """
    _limit_locked_transaction()
    _ensure_row()
    # The row lock serialises acquirers, and orders a takeover after any fenced write in progress.
    lease = ServiceLease.objects.select_for_update().get(pk=LEASE_ID)
    mine = ServiceLease.objects.filter(pk=LEASE_ID, holder=node)
    if token is not None and lease.holder == node and lease.token == token:
        mine.filter(token=token).update(renewed_at=Now(), expires_at=_expiry(stale_seconds), released=False)
        return LeaseHeld(holder=node, token=token, expires_at=_reread().expires_at, acquired=False)
    takeover = Q(holder="") | Q(expires_at__isnull=True) | Q(expires_at__lt=Now()) | Q(released=True)
    if token is None:
        takeover |= Q(holder=node)
    taken = ServiceLease.objects.filter(takeover, pk=LEASE_ID, token=lease.token).update(
        holder=node, token=F("token") + 1, acquired_at=Now(), renewed_at=Now(),
        expires_at=_expiry(stale_seconds), released=False,
    )
    if taken != 1:
        return None
    new = _reread()
    reason = _takeover_reason(lease, node=node)
    Failover.objects.create(at=new.acquired_at, from_node=lease.holder, to_node=node, token=new.token, reason=reason)
    for hook in _takeover_hooks:
        hook(token=new.token, previous_holder=lease.holder)
    logger.warning("%s is now the primary (lease token %s): %s", node, new.token, reason)
    return LeaseHeld(holder=node, token=new.token, expires_at=new.expires_at, acquired=True)


def _reread() -> ServiceLease:
    return ServiceLease.objects.get(pk=LEASE_ID)


@transaction.atomic
def lease_release(*, node: str, token: int) -> bool:
    """Give the lease up at a clean stop so a standby takes over at its next attempt, not after the stale period."""
    released = ServiceLease.objects.filter(pk=LEASE_ID, holder=node, token=token).update(
        released=True, expires_at=Now()
    )
    return released == 1


def lease_get() -> ServiceLease | None:
    """The lease row (None before any service node started)."""
    return ServiceLease.objects.filter(pk=LEASE_ID).first()


def lease_holds(*, node: str, token: int) -> bool:
    """Whether `node` holds the lease under `token`; locks the row until the caller's transaction ends.

    Call inside transaction.atomic before a fenced write: a takeover then waits until that write commits
    (and then fails what it left running), so no write slips in between the check and a takeover.
    """
    _limit_locked_transaction()
    return ServiceLease.objects.select_for_update().filter(pk=LEASE_ID, holder=node, token=token).exists()


def lease_guard(*, node: str, token: int) -> Q:
    """A filter for a fenced UPDATE: true only while `node` still holds the lease under `token`."""
    from django.db.models import Exists

    return Q(Exists(ServiceLease.objects.filter(pk=LEASE_ID, holder=node, token=token)))


# -- this process's term ---------------------------------------------------------------------------
# The service node records here the token it holds and until when it trusts it (monotonic clock), so the
# trigger functions fence their writes without every caller passing the token around.


class _NotHeld:
    """Marker: this process takes part in the lease for that node, but does not hold it now."""


NOT_HELD = _NotHeld()


@dataclass(kw_only=True)
class _Term:
    token: int | None = None
    trusted_until: float = 0.0  # time.monotonic()


_terms: dict[str, _Term] = {}
_terms_lock = threading.Lock()


def term_join(*, node: str) -> None:
    """This process takes part in the lease as `node`: from now on its trigger writes are fenced."""
    with _terms_lock:
        _terms.setdefault(node, _Term())


def term_leave(*, node: str) -> None:
    """This process stops taking part in the lease (its writes are no longer fenced)."""
    with _terms_lock:
        _terms.pop(node, None)


def term_set(*, node: str, token: int, trusted_until: float) -> None:
    """`node` holds the lease under `token`; trust it until `trusted_until` (time.monotonic())."""
    with _terms_lock:
        _terms[node] = _Term(token=token, trusted_until=trusted_until)


def term_end(*, node: str, reason: str) -> None:
    """`node` no longer holds the lease (it lost it, or a fenced write was refused): its writes are refused.

    The service node logs the step-down itself, once, when it stops its runners (indexer.service).
    """
    with _terms_lock:
        term = _terms.get(node)
        if term is None or term.token is None:
            return
        logger.debug("%s no longer writes under lease token %s: %s", node, term.token, reason)
        _terms[node] = _Term()


def term_token(*, node: str, trusted: bool = True) -> int | None | _NotHeld:
    """The token to fence `node`'s writes with: None outside any lease, NOT_HELD when not (or no longer) primary.

    With `trusted`, a holder stops trusting its term at `trusted_until` even before it learns it lost the
    lease: after a pause (SIGSTOP, a stalled loop) it claims and starts nothing until it has renewed.
    Without it (finishing work already started), the database's check alone decides.
    """
    with _terms_lock:
        term = _terms.get(node)
        if term is None:
            return None
        if term.token is None or (trusted and time.monotonic() >= term.trusted_until):
            return NOT_HELD
        return term.token


def term_trusted(*, node: str) -> bool:
    """Whether this process may start work as `node` now (always, outside any lease)."""
    return term_token(node=node) is not NOT_HELD


def lease_fence(*, node: str, token: int | None, trusted: bool, what: str) -> int | None:
    """The token that fences `what`, a write by `node`: `token` if given, else this process's term's.

    None means unfenced (no lease in this process: tests, `runindexer --once`). Otherwise the lease row is
    checked and locked until the caller's transaction ends (call inside transaction.atomic); raises LeaseLost,
    and ends the process's term, when `node` does not (or no longer) hold the lease under that token.
    `trusted` as in term_token: True for starting work, False for recording work already started.
    """
    if token is None:
        current = term_token(node=node, trusted=trusted)
        if current is NOT_HELD:
            raise LeaseLost(f"{what} refused: {node} does not hold the primary lease")
        if current is None:
            return None
        token = current
    if not lease_holds(node=node, token=token):
        reason = f"{what} refused: the primary lease is no longer held under token {token}"
        term_end(node=node, reason=reason)
        raise LeaseLost(reason)
    return token
