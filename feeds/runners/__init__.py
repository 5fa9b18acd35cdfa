"""The feeds' task runners, which the service node schedules: indexing, drop paths, integrity, retention.

feeds_runners_register() hands them to the indexer's registry at start-up (FeedsConfig.ready), with Reindex:
a trigger that runs Feed Indexing on one existing feed.
"""
from __future__ import annotations

from feeds.runners.base import feed_exists
from feeds.runners.drop_path_monitor import DropPathMonitor
from feeds.runners.feed_indexing import FeedIndexing
from feeds.runners.feed_integrity import FeedIntegrity
from feeds.runners.feed_retention import FeedRetention
from indexer.models import Trigger
from indexer.runner_registry import runners_register, targeted_kind_register
from messenger.messages import UNKNOWN_FEED


def feeds_runners_register() -> None:
    """Register the four feed runners (in the Service Status page's order) and the Reindex trigger kind."""
    runners_register(FeedIndexing, DropPathMonitor, FeedIntegrity, FeedRetention)
    targeted_kind_register(Trigger.Kind.FEED_REINDEX, runner=FeedIndexing, noun="feed",
                           exists=lambda name: feed_exists(name=name), unknown_code=UNKNOWN_FEED)
