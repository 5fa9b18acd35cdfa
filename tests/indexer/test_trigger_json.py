"""A trigger as JSON: the one shape the API answers with, and the feed page's status.json's part of it."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest

from indexer.models import Trigger
from indexer.trigger_json import trigger_as_json
from proget_web.feedpages.selectors import trigger_json

pytestmark = pytest.mark.django_db

CLAIMED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
FINISHED = datetime(2026, 1, 2, 3, 4, 9, tzinfo=UTC)


def test_a_pending_trigger() -> None:
    trigger = Trigger.objects.create(kind="feed.reindex", target="main", requested_by="manfred")
    assert trigger_as_json(trigger) == {
        "id": trigger.id, "kind": "feed.reindex", "target": "main", "state": "pending", "result": "",
        "requestedBy": "manfred", "createdAt": trigger.created_at.isoformat(), "claimedBy": "", "claimedAt": None,
        "finishedAt": None,
    }


def test_a_finished_trigger_and_the_feed_pages_fields_of_it() -> None:
    trigger = Trigger.objects.create(kind="runner.run", target="Feed Indexing", requested_by="api", state="done",
                                     result="indexed 3 files", claimed_by="svc-1", claimed_at=CLAIMED,
                                     finished_at=FINISHED)
    full = trigger_as_json(trigger)
    assert (full["claimedBy"], full["claimedAt"], full["finishedAt"]) == ("svc-1", CLAIMED.isoformat(),
                                                                           FINISHED.isoformat())
    assert list(trigger_json(trigger).items()) == [
        (field, full[field]) for field in ("id", "state", "requestedBy", "createdAt", "claimedAt", "finishedAt",
                                           "result")
    ]
