"""The one core behind Run and Reindex (indexer.trigger_requests): checked targets, one pending Run per runner,
queued with the reason while the service is away, and page nudges over one long-lived messenger connection."""
from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async

from feeds.services import feed_create
from indexer.messenger_config import messenger_settings
from indexer.models import RunnerRecord, Trigger
from indexer.trigger_requests import trigger_queue, trigger_request
from indexer.triggers import TriggerError, trigger_claim
from messenger.messages import UNKNOWN_FEED, UNKNOWN_RUNNER
from messenger.server import MessengerServer, RequestContext
from settings_store.services import setting_set

pytestmark = pytest.mark.django_db(transaction=True)

RUN = Trigger.Kind.RUNNER_RUN
REINDEX = Trigger.Kind.FEED_REINDEX
_names = itertools.count()


@pytest.fixture(autouse=True)
def own_endpoint() -> None:
    """Each test's messenger endpoint is a socket nobody listens on, until a test starts a server there."""
    setting_set(name="Service.MessengerEndpoint", value=f"pipe://requests{next(_names)}", actor="test", source="cli")


@pytest.mark.parametrize(("kind", "target", "error", "code"), [
    (RUN, "Nope", "unknown runner 'Nope' (known: Feed Indexing, ", UNKNOWN_RUNNER),
    (REINDEX, "nofeed", "unknown feed 'nofeed'", UNKNOWN_FEED),
])
def test_an_unknown_runner_or_feed_is_refused_and_nothing_is_queued(
    kind: str, target: str, error: str, code: str,
) -> None:
    for wait in (True, False):
        with pytest.raises(TriggerError) as refused:
            trigger_request(kind=kind, target=target, requested_by="alice", wait=wait)
        assert str(refused.value).startswith(error) and refused.value.code == code
    assert not Trigger.objects.exists()


def test_a_runner_a_service_node_recorded_is_known() -> None:
    RunnerRecord.objects.create(name="Extra Runner")  # e.g. an INDEXER_EXTRA_RUNNERS runner of the service node
    trigger, already = trigger_queue(kind=RUN, target="Extra Runner", requested_by="alice")
    assert (trigger.target, trigger.state, already) == ("Extra Runner", Trigger.State.PENDING, False)


def test_a_run_while_one_is_pending_adds_nothing_and_a_run_after_it_started_queues_the_next() -> None:
    first, first_already = trigger_queue(kind=RUN, target="Feed Integrity", requested_by="alice")
    again, again_already = trigger_queue(kind=RUN, target=" Feed Integrity ", requested_by="bob")
    other, _ = trigger_queue(kind=RUN, target="Feed Retention", requested_by="bob")
    assert (again.id, first_already, again_already) == (first.id, False, True)
    assert other.id != first.id
    assert [t.id for t in trigger_claim(node="n1", trigger_id=first.id)] == [first.id]  # it started
    after, after_already = trigger_queue(kind=RUN, target="Feed Integrity", requested_by="carol")
    assert after.id not in (first.id, other.id) and not after_already
    assert Trigger.objects.filter(target="Feed Integrity").count() == 2


def test_reindexes_are_never_merged(tmp_path: Path) -> None:
    setting_set(name="Storage.PackagesRootPath", value=str(tmp_path / "packages"), actor="test", source="test")
    feed_create(name="main")
    ids = {trigger_queue(kind=REINDEX, target="main", requested_by="alice")[0].id for _ in range(3)}
    assert len(ids) == 3


@pytest.mark.parametrize("wait", [True, False])
def test_with_the_service_down_a_run_is_queued_with_the_reason(wait: bool) -> None:
    outcome = trigger_request(kind=RUN, target="Feed Indexing", requested_by="alice", wait=wait)
    assert not outcome.nudged and not outcome.already_queued
    assert outcome.message.startswith(f"trigger {outcome.trigger.id} queued — the service is not reachable (not "
                                      "running (no socket at ")
    assert outcome.message.endswith("it will run when the service is back")
    again = trigger_request(kind=RUN, target="Feed Indexing", requested_by="bob", wait=wait)
    assert again.trigger.id == outcome.trigger.id and again.already_queued and again.message.startswith(
        "already queued: trigger")
    assert list(Trigger.objects.values_list("state", flat=True)) == [Trigger.State.PENDING]


def test_page_nudges_go_over_one_long_lived_connection() -> None:
    config = messenger_settings()
    nudged: list[int] = []

    async def nudge(body: dict, ctx: RequestContext) -> dict:
        nudged.append(body["id"])
        return {"outcomes": [f"trigger {body['id']} started"]}

    async def main() -> list[Trigger]:
        server = MessengerServer(key=config.key, handlers={"trigger.nudge": nudge})
        await server.start(config.endpoint, run_dir=config.run_dir)
        try:
            request = sync_to_async(trigger_request)
            outcomes = [await request(kind=RUN, target=name, requested_by="alice", wait=False)
                        for name in ("Feed Indexing", "Feed Integrity", "Feed Retention", "Drop Path Monitor")]
            assert all(outcome.nudged for outcome in outcomes)
            async with asyncio.timeout(10):
                while len(nudged) < len(outcomes):
                    await asyncio.sleep(0.01)
            assert server.stats.connections_total == 1
            return [outcome.trigger for outcome in outcomes]
        finally:
            await server.close()

    triggers = asyncio.run(main())
    assert nudged == [trigger.id for trigger in triggers]
