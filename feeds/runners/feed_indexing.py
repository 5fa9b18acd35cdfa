"""Feed Indexing: rebuilds each feed's package index (all feeds on schedule, one feed for a Reindex)."""
from __future__ import annotations

from feeds.indexing import feed_index
from feeds.runners.base import FeedRunner
from feeds.selectors import feed_get
from indexer.runner import RunContext


class FeedIndexing(FeedRunner):
    name = "Feed Indexing"
    interval_setting = "Runners.FeedIndexing.IntervalSeconds"
    done = "indexed"

    def process_feed(self, *, feed: str, ctx: RunContext) -> None:
        """Bring the feed's index in line with its storage folder (reading only new or changed files)."""
        found = feed_get(name=feed)
        if found is None:  # deleted since the run listed it
            ctx.logger.info("feed %s no longer exists; skipped", feed)
            return
        feed_index(feed=found, progress=ctx.progress, stopping=lambda: ctx.stopping)
