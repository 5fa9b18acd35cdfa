"""Durable triggers: validation, claiming exactly once (also with racing claimers), finishing, recovery, purge."""
from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from indexer.models import Trigger
from indexer.triggers import (
    TriggerError,
    trigger_claim,
    trigger_create,
    trigger_finish,
    trigger_get,
    trigger_release,
    trigger_whereabouts,
    triggers_pending_count,
    triggers_purge,
    triggers_recover_interrupted,
)
from messenger.messages import BAD_REQUEST
from tests.claim_race import CLAIMER, race
from tests.processes import manage

pytestmark = pytest.mark.django_db

RUN = Trigger.Kind.RUNNER_RUN
REINDEX = Trigger.Kind.FEED_REINDEX


def make(target: str = "Feed Indexing", kind: str = RUN) -> Trigger:
    return trigger_create(kind=kind, target=target, requested_by="alice")


# -- create ------------------------------------------------------------------------------------


def test_create_stores_a_pending_trigger() -> None:
    trigger = trigger_create(kind=REINDEX, target="  main  ", requested_by="alice")
    stored = trigger_get(trigger_id=trigger.id)
    assert stored is not None
    assert (stored.kind, stored.target, stored.requested_by, stored.state) == (REINDEX, "main", "alice", "pending")
    assert stored.created_at is not None and stored.claimed_by == "" and stored.finished_at is None
    assert triggers_pending_count() == 1


@pytest.mark.parametrize(
    ("kind", "target", "message"),
    [
        ("feed.delete", "main", "unknown trigger kind 'feed.delete'"),
        (RUN, "", "needs a target"),
        (RUN, "   ", "needs a target"),
        (REINDEX, "x" * 201, "at most 200 characters"),
    ],
)
def test_create_refuses_bad_input_and_stores_nothing(kind: str, target: str, message: str) -> None:
    with pytest.raises(TriggerError, match=message) as refused:
        trigger_create(kind=kind, target=target, requested_by="alice")
    assert refused.value.code == BAD_REQUEST
    assert not Trigger.objects.exists()


def test_create_accepts_a_target_of_exactly_200_characters() -> None:
    assert len(make("x" * 200).target) == 200


def test_get_of_a_missing_trigger_is_none() -> None:
    assert trigger_get(trigger_id=12345) is None


# -- claim -------------------------------------------------------------------------------------


def test_claim_takes_pending_triggers_oldest_first_exactly_once() -> None:
    first, second = make("a"), make("b")
    claimed = trigger_claim(node="n1")
    assert [t.id for t in claimed] == [first.id, second.id]
    assert all(t.state == Trigger.State.RUNNING and t.claimed_by == "n1" and t.claimed_at for t in claimed)
    assert trigger_claim(node="n1") == []
    assert trigger_claim(node="n2") == []
    assert triggers_pending_count() == 0


def test_claim_by_id_takes_only_that_trigger() -> None:
    make("a")
    wanted = make("b")
    assert [t.id for t in trigger_claim(node="n1", trigger_id=wanted.id)] == [wanted.id]
    assert trigger_claim(node="n2", trigger_id=wanted.id) == []
    assert triggers_pending_count() == 1


def test_claim_passes_over_what_accept_refuses_and_leaves_it_pending() -> None:
    busy, free = make("Busy"), make("Free")
    claimed = trigger_claim(node="n1", accept=lambda kind, target: target != "Busy")
    assert [t.id for t in claimed] == [free.id]
    assert trigger_get(trigger_id=busy.id).state == Trigger.State.PENDING
    assert "queued" in trigger_whereabouts(trigger_id=busy.id)


def test_release_returns_a_claimed_trigger_to_pending_once_for_its_owner_only() -> None:
    trigger = make()
    trigger_claim(node="n1")
    assert not trigger_release(trigger_id=trigger.id, node="n2")
    assert trigger_release(trigger_id=trigger.id, node="n1")
    assert not trigger_release(trigger_id=trigger.id, node="n1")
    assert trigger_get(trigger_id=trigger.id).state == Trigger.State.PENDING
    assert [t.id for t in trigger_claim(node="n2")] == [trigger.id]
    assert "running (claimed by n2)" in trigger_whereabouts(trigger_id=trigger.id)
    assert trigger_whereabouts(trigger_id=10**9) == f"trigger {10**9} does not exist"


def test_claim_respects_the_limit() -> None:
    for i in range(5):
        make(str(i))
    assert len(trigger_claim(node="n1", limit=3)) == 3
    assert len(trigger_claim(node="n1", limit=3)) == 2


def test_claim_skips_a_row_another_node_took_after_it_was_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    # Simulate the race window: n2 claims the row between n1's listing and n1's conditional UPDATE.
    trigger = make()
    real_filter = Trigger.objects.filter

    def filter_then_race(*args: object, **kwargs: object):
        if kwargs.get("id") == trigger.id and "state" in kwargs:
            monkeypatch.setattr(Trigger.objects, "filter", real_filter)
            real_filter(id=trigger.id).update(state=Trigger.State.RUNNING, claimed_by="n2")
        return real_filter(*args, **kwargs)

    monkeypatch.setattr(Trigger.objects, "filter", filter_then_race)
    assert trigger_claim(node="n1") == []
    assert trigger_get(trigger_id=trigger.id).claimed_by == "n2"


@pytest.mark.slow
def test_racing_service_processes_claim_each_trigger_exactly_once(tmp_path: Path) -> None:
    # A real SQLite file in WAL mode shared by separate processes, as in production; the in-memory
    # test database cannot show this (its shared cache fails concurrent writers instead of queueing them).
    manage(tmp_path, "shell", "-c", "from django.core.management import call_command as cmd\n"
           "from indexer.triggers import trigger_create as c\n"
           "cmd('migrate', verbosity=0)\n"
           "for i in range(90): c(kind='runner.run', target=str(i), requested_by='race')")
    results = race(tmp_path, CLAIMER, "CLAIMED", processes=3)
    claims: dict[str, list[int]] = {name: ids for per_process in results.values() for name, ids in per_process.items()}
    everything = [trigger_id for mine in claims.values() for trigger_id in mine]
    assert len(claims) == 6
    assert sorted(everything) == list(range(1, 91)), "each trigger is claimed exactly once"
    assert sum(1 for mine in claims.values() if mine) >= 2, "the claimers did not overlap"
    with closing(sqlite3.connect(tmp_path / "proget.sqlite3")) as db:
        owners = dict(db.execute("SELECT id, claimed_by FROM indexer_trigger WHERE state = 'running'"))
    assert owners == {
        trigger_id: node for node, mine in claims.items() for trigger_id in mine
    }


# -- finish ------------------------------------------------------------------------------------


def test_finish_only_by_the_node_that_claimed_it() -> None:
    trigger = make()
    trigger_claim(node="n1")
    assert not trigger_finish(trigger_id=trigger.id, node="n2", ok=True, result="hijacked")
    assert trigger_get(trigger_id=trigger.id).state == Trigger.State.RUNNING
    assert trigger_finish(trigger_id=trigger.id, node="n1", ok=True, result="indexed 3 feeds")
    stored = trigger_get(trigger_id=trigger.id)
    assert (stored.state, stored.result) == (Trigger.State.DONE, "indexed 3 feeds")
    assert stored.finished_at is not None


def test_finish_records_a_failure_and_happens_only_once() -> None:
    trigger = make()
    trigger_claim(node="n1")
    assert trigger_finish(trigger_id=trigger.id, node="n1", ok=False, result="boom")
    assert not trigger_finish(trigger_id=trigger.id, node="n1", ok=True, result="again")
    stored = trigger_get(trigger_id=trigger.id)
    assert (stored.state, stored.result) == (Trigger.State.FAILED, "boom")


def test_a_pending_trigger_cannot_be_finished() -> None:
    trigger = make()
    assert not trigger_finish(trigger_id=trigger.id, node="", ok=True, result="x")
    assert trigger_get(trigger_id=trigger.id).state == Trigger.State.PENDING


# -- recover and purge -------------------------------------------------------------------------


def claimed(node: str, *, age: timedelta = timedelta(0)) -> Trigger:
    trigger = make()
    trigger_claim(node=node, trigger_id=trigger.id)
    Trigger.objects.filter(id=trigger.id).update(claimed_at=timezone.now() - age)
    return trigger


def test_recover_fails_the_restarted_nodes_running_triggers_with_the_reason() -> None:
    mine, other, waiting = claimed("n1"), claimed("n2"), make()
    assert triggers_recover_interrupted(node="n1") == 1
    stored = trigger_get(trigger_id=mine.id)
    assert stored.state == Trigger.State.FAILED
    assert stored.result == "interrupted: service node n1 stopped while it was running"
    assert stored.finished_at is not None
    assert trigger_get(trigger_id=other.id).state == Trigger.State.RUNNING
    assert trigger_get(trigger_id=waiting.id).state == Trigger.State.PENDING, "pending triggers still run later"


def test_recover_fails_any_nodes_claims_older_than_the_cutoff() -> None:
    stale, fresh = claimed("gone", age=timedelta(hours=3)), claimed("alive", age=timedelta(minutes=1))
    done = claimed("gone", age=timedelta(hours=3))
    trigger_finish(trigger_id=done.id, node="gone", ok=True, result="fine")
    assert triggers_recover_interrupted(older_than=timezone.now() - timedelta(hours=1)) == 1
    assert trigger_get(trigger_id=stale.id).result == "interrupted: service node gone stopped while it was running"
    assert trigger_get(trigger_id=fresh.id).state == Trigger.State.RUNNING
    assert trigger_get(trigger_id=done.id).result == "fine"


def test_recover_needs_a_node_or_a_cutoff() -> None:
    with pytest.raises(ValueError, match="node"):
        triggers_recover_interrupted()


def test_purge_deletes_only_finished_triggers_older_than_the_cutoff() -> None:
    old_done, old_failed, recent_done = claimed("n1"), claimed("n1"), claimed("n1")
    for trigger in (old_done, old_failed, recent_done):
        trigger_finish(trigger_id=trigger.id, node="n1", ok=trigger is not old_failed, result="")
    week_ago = timezone.now() - timedelta(days=8)
    Trigger.objects.filter(id__in=[old_done.id, old_failed.id]).update(finished_at=week_ago, created_at=week_ago)
    old_running, old_pending = claimed("n1"), make()
    Trigger.objects.filter(id__in=[old_running.id, old_pending.id]).update(created_at=week_ago)
    assert triggers_purge(older_than=timezone.now() - timedelta(days=7)) == 2
    assert set(Trigger.objects.values_list("id", flat=True)) == {recent_done.id, old_running.id, old_pending.id}
