"""The primary lease on the embedded database: acquire, renew, takeover, release, fencing, failover records."""
from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from cluster import lease
from cluster.lease import LeaseLost, lease_acquire, lease_get, lease_release
from cluster.models import LEASE_ID, Failover, Node, ServiceLease
from cluster.primary import primary_address
from indexer.messenger_config import local_resolver
from indexer.models import Trigger
from indexer.triggers import trigger_claim, trigger_create, trigger_finish

pytestmark = pytest.mark.django_db

STALE = 10.0


def _expire() -> None:
    ServiceLease.objects.filter(pk=LEASE_ID).update(expires_at=timezone.now() - timedelta(seconds=1))


def _trigger() -> Trigger:
    return trigger_create(kind="runner.run", target="Feed Indexing", requested_by="test")


def test_the_first_node_takes_the_lease_and_the_second_waits() -> None:
    held = lease_acquire(node="a", token=None, stale_seconds=STALE)
    assert held is not None and held.acquired and held.token == 1
    assert lease_acquire(node="b", token=None, stale_seconds=STALE) is None
    renewed = lease_acquire(node="a", token=1, stale_seconds=STALE)
    assert renewed is not None and not renewed.acquired and renewed.token == 1
    assert renewed.expires_at >= held.expires_at
    (first,) = Failover.objects.all()
    assert (first.from_node, first.to_node, first.token) == ("", "a", 1)
    assert first.reason == "first primary of the cluster"


def test_a_stale_lease_is_taken_over_with_a_new_token_and_the_old_terms_triggers_failed() -> None:
    lease_acquire(node="a", token=None, stale_seconds=STALE)
    claimed = trigger_claim(node="a", fencing_token=1)
    assert claimed == [] or claimed  # nothing pending yet
    running = _trigger()
    (row,) = trigger_claim(node="a", fencing_token=1)
    assert row.id == running.id and row.claim_token == 1
    _expire()
    held = lease_acquire(node="b", token=None, stale_seconds=STALE)
    assert held is not None and held.acquired and held.token == 2
    running.refresh_from_db()
    assert running.state == Trigger.State.FAILED and "interrupted" in running.result
    failover = Failover.objects.first()
    assert (failover.from_node, failover.to_node, failover.token) == ("a", "b", 2)
    assert "a stopped renewing the lease" in failover.reason
    # The old holder's renewal fails: it learns it lost the lease.
    assert lease_acquire(node="a", token=1, stale_seconds=STALE) is None


def test_an_old_token_can_neither_claim_nor_finish() -> None:
    lease_acquire(node="a", token=None, stale_seconds=STALE)
    claimed_by_a = _trigger()
    trigger_claim(node="a", fencing_token=1)
    _expire()
    lease_acquire(node="b", token=None, stale_seconds=STALE)
    pending = _trigger()
    assert trigger_claim(node="a", fencing_token=1) == []
    pending.refresh_from_db()
    assert pending.state == Trigger.State.PENDING and pending.claimed_by == ""
    # Even a finish of a trigger it still "runs" is refused (here: one made to look running again).
    Trigger.objects.filter(id=claimed_by_a.id).update(state=Trigger.State.RUNNING)
    with pytest.raises(LeaseLost):
        trigger_finish(trigger_id=claimed_by_a.id, node="a", ok=True, result="done", fencing_token=1)
    assert Trigger.objects.get(id=claimed_by_a.id).state == Trigger.State.RUNNING
    (taken,) = trigger_claim(node="b", fencing_token=2)
    assert taken.id == pending.id and taken.claim_token == 2
    assert trigger_finish(trigger_id=taken.id, node="b", ok=True, result="done", fencing_token=2)


def test_a_restarted_node_takes_its_own_lease_back_at_once_and_a_release_hands_it_over() -> None:
    lease_acquire(node="a", token=None, stale_seconds=STALE)
    again = lease_acquire(node="a", token=None, stale_seconds=STALE)  # a new process of node a
    assert again is not None and again.acquired and again.token == 2
    assert "restarted" in Failover.objects.first().reason
    assert lease_acquire(node="b", token=None, stale_seconds=STALE) is None
    assert lease_release(node="a", token=2)
    held = lease_acquire(node="b", token=None, stale_seconds=STALE)
    assert held is not None and held.token == 3
    assert "released" in Failover.objects.first().reason


def test_the_process_term_fences_calls_that_pass_no_token() -> None:
    lease_acquire(node="a", token=None, stale_seconds=STALE)
    _trigger()
    lease.term_join(node="a")
    try:
        assert trigger_claim(node="a") == []  # taking part, but no term yet
        lease.term_set(node="a", token=1, trusted_until=time.monotonic() - 1)
        assert trigger_claim(node="a") == []  # the term is no longer trusted (a pause)
        lease.term_set(node="a", token=1, trusted_until=time.monotonic() + 60)
        (row,) = trigger_claim(node="a")
        assert row.claim_token == 1
        lease.term_end(node="a", reason="test")
        with pytest.raises(LeaseLost):
            trigger_finish(trigger_id=row.id, node="a", ok=True, result="x")
    finally:
        lease.term_leave(node="a")
    # Outside any lease (tests, runindexer --once) nothing is fenced.
    assert trigger_finish(trigger_id=row.id, node="a", ok=True, result="x")


def test_star_resolves_to_the_lease_holders_registered_ip() -> None:
    assert primary_address() is None
    Node.objects.create(name="a", kind="service", ip="127.0.0.2")
    Node.objects.create(name="b", kind="service", ip="127.0.0.3")
    lease_acquire(node="a", token=None, stale_seconds=STALE)
    assert primary_address() == "127.0.0.2"
    _expire()
    lease_acquire(node="b", token=None, stale_seconds=STALE)
    assert primary_address() == "127.0.0.3" == local_resolver()
    assert lease_get().holder == "b"


def test_without_a_registered_primary_the_resolver_falls_back_to_this_machine(settings) -> None:
    settings.NODE_IP = ""
    assert local_resolver() == "127.0.0.1"
    settings.NODE_IP = "127.0.0.9"
    assert local_resolver() == "127.0.0.9"
