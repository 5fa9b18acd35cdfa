"""A trigger as JSON: the one serializer behind the API's trigger answers and the feed page's status.json."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from indexer.models import Trigger


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def trigger_as_json(trigger: Trigger) -> dict[str, Any]:
    """Every field a caller may show: camelCase keys, ISO 8601 times, None for a time not reached yet."""
    return {
        "id": trigger.id,
        "kind": trigger.kind,
        "target": trigger.target,
        "state": trigger.state,
        "result": trigger.result,
        "requestedBy": trigger.requested_by,
        "createdAt": _iso(trigger.created_at),
        "claimedBy": trigger.claimed_by,
        "claimedAt": _iso(trigger.claimed_at),
        "finishedAt": _iso(trigger.finished_at),
    }
