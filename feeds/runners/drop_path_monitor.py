"""Drop Path Monitor: imports package files dropped into a feed's drop path (checked, stored, indexed)."""
from __future__ import annotations

from feeds.dropping import drop_path_import
from feeds.runners.base import FeedRunner
from feeds.selectors import feed_get
from indexer.runner import RunContext


class DropPathMonitor(FeedRunner):
    name = "Drop Path Monitor"
    interval_setting = "Runners.DropPathMonitor.IntervalSeconds"
    done = "scanned the drop paths of"

    def process_feed(self, *, feed: str, ctx: RunContext) -> str:
        """Import every complete file in the feed's drop path; reject the bad ones; leave those being written."""
        found = feed_get(name=feed)
        if found is None or not found.drop_path:  # deleted since the run listed it, or nothing to watch
            return ""
        report = drop_path_import(feed=found, progress=ctx.progress, stopping=lambda: ctx.stopping)
        return f"{feed}: {report.summary()}"
