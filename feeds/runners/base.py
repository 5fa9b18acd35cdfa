"""The shared shape of the feed runners: list the feeds, work through them one by one, report progress.

The feeds themselves live in the `feeds` app; a runner's `process_feed` calls into its core.
"""
from __future__ import annotations

import abc
from typing import ClassVar

from asgiref.sync import sync_to_async

from feeds.selectors import feed_names
from indexer.runner import RunContext, Runner


def feed_exists(*, name: str) -> bool:
    """Whether a feed called `name` is configured."""
    return bool(feed_names(only=name))


class FeedRunner(Runner):
    """A runner that does the same work for every feed (or for the one feed its trigger names)."""

    done: ClassVar[str]  # what the runner did to each feed, e.g. "indexed"

    async def run(self, ctx: RunContext) -> str:
        feeds = await sync_to_async(feed_names)(only=ctx.target)
        if not feeds:
            return f"feed {ctx.target} not found" if ctx.target else "no feeds configured"
        notes: list[str] = []
        for index, feed in enumerate(feeds):
            if ctx.stopping:
                return "; ".join([f"{self.done} {index} of {len(feeds)} feed(s), then the service stopped", *notes])
            ctx.progress(100 * index / len(feeds), feed)
            if note := await sync_to_async(self.process_feed)(feed=feed, ctx=ctx):
                notes.append(note)
        ctx.progress(100, "done")
        return "; ".join([f"{self.done} {len(feeds)} feed(s)", *notes])

    @abc.abstractmethod
    def process_feed(self, *, feed: str, ctx: RunContext) -> str | None:
        """This runner's work on one feed (synchronous: it runs in a worker thread and may use the ORM).

        A non-empty return is a one-line note on that feed, appended to the run's result.
        """
