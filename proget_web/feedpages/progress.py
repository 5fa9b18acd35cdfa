"""The Feed Indexing runner's live progress, asked of the service through the messenger (best effort).

Never raises and never waits longer than PROGRESS_TIMEOUT: with the service unreachable the feed page
shows the trigger's state from the database alone, plus the reason the service could not be asked.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from feeds.runners.feed_indexing import FeedIndexing
from indexer.messenger_config import service_call
from messenger.errors import MessengerError, MessengerUnavailable
from messenger.messages import STATUS_SNAPSHOT

logger = logging.getLogger(__name__)

# status.json is polled once a second: one answer must come within that second or the poll moves on.
PROGRESS_TIMEOUT = 1.0
FEED_INDEXING = FeedIndexing.name


@dataclass(frozen=True, kw_only=True)
class RunnerProgress:
    reachable: bool
    reason: str = ""  # why the service could not be asked; empty when it answered
    running: bool = False  # the Feed Indexing runner is running right now
    percent: float | None = None
    message: str = ""

    def as_json(self) -> dict:
        return {
            "reachable": self.reachable, "reason": self.reason, "running": self.running,
            "percent": self.percent, "message": self.message,
        }


def feed_indexing_progress() -> RunnerProgress:
    """Feed Indexing's state and progress from the service's status snapshot (no log lines)."""
    try:
        snapshot = service_call(STATUS_SNAPSHOT, body={"logs": 0}, timeout=PROGRESS_TIMEOUT)
    except MessengerUnavailable as exc:
        return RunnerProgress(reachable=False, reason=exc.reason)
    except MessengerError as exc:  # a malformed key or endpoint, a refused request: still only a degraded page
        return RunnerProgress(reachable=False, reason=str(exc) or type(exc).__name__)
    runner = (snapshot.get("runners") or {}).get(FEED_INDEXING)
    if not isinstance(runner, dict):
        return RunnerProgress(reachable=True)
    percent = runner.get("progressPercent")
    return RunnerProgress(
        reachable=True,
        running=runner.get("state") == "running",
        percent=float(percent) if isinstance(percent, int | float) and not isinstance(percent, bool) else None,
        message=str(runner.get("progressMessage") or ""),
    )
