"""What the server logs about its peers, bounded: rejects are aggregated, text a peer supplied is cut.

An attack costs a few log lines, never one per connection: each (source, reason) pair gets one WARNING line when
it starts, kept out of the Status page's live log, then at most one summary per interval with the count of the
rejects it stood for ("N more suppressed"); the summaries go to the live log too. The exact numbers are in
ServerStats.rejects, not here.
"""

from __future__ import annotations

import asyncio
import logging
import traceback

from messenger.limits import MAX_LOGGED_PEER_TEXT

logger = logging.getLogger(__name__)

# Where the pairs beyond REJECT_LOG_MAX_KEYS are summed up.
OTHER_SOURCES = "other sources"
# indexer.logstream.HubLogHandler leaves records carrying this out of the live log.
NOT_LIVE = {"live_log": False}
# Marks text cut by `shorten`.
CUT_MARK = "…(cut)"


def shorten(text: str, limit: int = MAX_LOGGED_PEER_TEXT) -> str:
    """`text`, cut to `limit` characters (marked) when longer."""
    return text if len(text) <= limit else text[:limit] + CUT_MARK


def failure_text(exc: BaseException) -> str:
    """The exception's type and message (shortened: a peer may have put its text there), then its stack."""
    stack = "".join(traceback.format_tb(exc.__traceback__))
    return f"{shorten(f'{type(exc).__name__}: {exc}')}\nTraceback (most recent call last):\n{stack}".rstrip()


class RejectLog:
    """One line per (source, reason) when rejects start, then one summary per `interval` while they go on."""

    def __init__(self, *, interval: float, max_keys: int) -> None:
        self.interval = interval
        self.max_keys = max_keys
        self._suppressed: dict[tuple[str, str], int] = {}  # the pairs followed, each with its untold count
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the server's, known from the first reject on

    def note(self, source: str, reason: str, loop: asyncio.AbstractEventLoop) -> None:
        """Log one reject; `loop` (the server's) times the summaries."""
        suppressed = self._suppressed
        key = (source, reason)
        if key not in suppressed and len(suppressed) >= self.max_keys:
            key = (OTHER_SOURCES, reason)
        count = suppressed.get(key)
        if count is not None:
            suppressed[key] = count + 1
            return
        suppressed[key] = 0
        logger.warning("messenger: rejected %s: %s", *key, extra=NOT_LIVE)
        if self._timer is None:
            self._loop = loop
            self._timer = loop.call_later(self.interval, self._tick)

    def close(self) -> None:
        """Log what is still untold (the server is closing)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._summarise()
        self._suppressed.clear()

    def _tick(self) -> None:
        self._timer = None
        self._summarise()
        if self._suppressed and self._loop is not None:
            self._timer = self._loop.call_later(self.interval, self._tick)

    def _summarise(self) -> None:
        """One summary per pair with untold rejects; a pair quiet for a whole interval is forgotten."""
        for key, count in list(self._suppressed.items()):
            if count:
                logger.warning("messenger: rejected %s: %s, %d more suppressed in the last %g s",
                               *key, count, self.interval)
                self._suppressed[key] = 0
            else:
                del self._suppressed[key]
