"""Drop Path Monitor: imports package files dropped into a feed's drop path."""
from __future__ import annotations

from indexer.runner import RunContext
from indexer.tasks.feeds import FeedRunner


class DropPathMonitor(FeedRunner):
    name = "Drop Path Monitor"
    interval_setting = "Runners.DropPathMonitor.IntervalSeconds"
    done = "scanned the drop paths of"

    def process_feed(self, *, feed: str, ctx: RunContext) -> None:
        """Import every complete file in the feed's drop path, then remove it (the feeds issue)."""
        raise NotImplementedError("drop paths arrive with the Feed model")
