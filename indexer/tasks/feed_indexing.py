"""Feed Indexing: rebuilds each feed's package index (all feeds on schedule, one feed for a Reindex)."""
from __future__ import annotations

from indexer.runner import RunContext
from indexer.tasks.feeds import FeedRunner


class FeedIndexing(FeedRunner):
    name = "Feed Indexing"
    interval_setting = "Runners.FeedIndexing.IntervalSeconds"
    done = "indexed"

    def process_feed(self, *, feed: str, ctx: RunContext) -> None:
        """Re-read the feed's stored packages and rebuild its simple-API index (the feeds issue)."""
        raise NotImplementedError("feed indexing arrives with the Feed model")
