"""Feed Retention: deletes package versions that a feed's retention rule no longer keeps (or lists them, dry run)."""
from __future__ import annotations

from feeds.retention import feed_retention_apply
from feeds.runners.base import FeedRunner
from feeds.selectors import feed_get
from indexer.runner import RunContext


class FeedRetention(FeedRunner):
    name = "Feed Retention"
    interval_setting = "Runners.FeedRetention.IntervalSeconds"
    done = "applied retention rules to"

    def process_feed(self, *, feed: str, ctx: RunContext) -> str:
        """Keep the latest N versions of each project; delete (or, in dry-run mode, list) the older files."""
        found = feed_get(name=feed)
        if found is None or not found.retention_keep_latest:  # deleted since listed, or keeps everything
            return ""
        report = feed_retention_apply(feed=found, stopping=lambda: ctx.stopping)
        return f"{feed}: {report.summary()}"
