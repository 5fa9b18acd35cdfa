"""Feed Integrity: re-hashes every stored package file and flags those that changed or vanished."""
from __future__ import annotations

from feeds.integrity import feed_integrity_check
from feeds.runners.base import FeedRunner
from feeds.selectors import feed_get
from indexer.runner import RunContext


class FeedIntegrity(FeedRunner):
    name = "Feed Integrity"
    interval_setting = "Runners.FeedIntegrity.IntervalSeconds"
    done = "checked"

    def process_feed(self, *, feed: str, ctx: RunContext) -> str:
        """Hash each indexed file and flag (on its row) those that differ from the record; modifies no file."""
        found = feed_get(name=feed)
        if found is None:  # deleted since the run listed it
            return ""
        report = feed_integrity_check(feed=found, progress=ctx.progress, stopping=lambda: ctx.stopping)
        return f"{feed}: {report.summary()}"
