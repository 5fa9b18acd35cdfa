"""Feed Retention: deletes package versions that a feed's retention rules no longer keep."""
from __future__ import annotations

from indexer.runner import RunContext
from indexer.tasks.feeds import FeedRunner


class FeedRetention(FeedRunner):
    name = "Feed Retention"
    interval_setting = "Runners.FeedRetention.IntervalSeconds"
    done = "applied retention rules to"

    def process_feed(self, *, feed: str, ctx: RunContext) -> None:
        """Delete the versions the feed's rules no longer keep (the feeds issue)."""
        raise NotImplementedError("retention rules arrive with the Feed model")
