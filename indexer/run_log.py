"""Each task run's own log lines: a context variable names the run a log record belongs to, a root handler keeps it.

Bounded: a run keeps at most MAX_RUN_LOG_LINES lines in memory (its first half and its last half, the lines
between only counted) and each line at most MAX_LOG_MESSAGE characters; `RunLog.kept(limit)` trims to the setting.
Records logged outside any run, or after the run ended, are left alone.
"""
from __future__ import annotations

import collections
import contextvars
import logging
import threading
from dataclasses import dataclass
from typing import Any

from indexer.logstream import truncate_message

# No module logger: a record logged from the handler would only come back to it.

# The most lines any run keeps in memory: Service.RunHistoryLogLines can ask for no more (its maximum).
MAX_RUN_LOG_LINES = 2000

_current: contextvars.ContextVar[RunLog | None] = contextvars.ContextVar("indexer_run_log", default=None)


@dataclass(frozen=True, kw_only=True)
class KeptLog:
    """What a run's log keeps: the lines, and how many were dropped at index `dropped_at` (the middle)."""

    lines: list[dict[str, Any]]
    dropped: int
    dropped_at: int


class RunLog:
    """The log lines of one run, first half and last half kept; safe to add to from worker threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._head: list[dict[str, Any]] = []
        self._tail: collections.deque[dict[str, Any]] = collections.deque(maxlen=MAX_RUN_LOG_LINES // 2)
        self._total = 0
        self._closed = False

    def add(self, line: dict[str, Any]) -> None:
        """Keep one line {"at", "level", "logger", "message"} (ignored once the run's log was taken)."""
        with self._lock:
            if self._closed:
                return
            self._total += 1
            if len(self._head) < MAX_RUN_LOG_LINES - MAX_RUN_LOG_LINES // 2:
                self._head.append(line)
            else:
                self._tail.append(line)

    def close(self) -> None:
        """Stop collecting: the run is over (work it started in the background is not part of it)."""
        with self._lock:
            self._closed = True

    def kept(self, *, limit: int) -> KeptLog:
        """At most `limit` of the lines: the first ceil(limit/2) and the last floor(limit/2)."""
        with self._lock:
            head, tail, total = list(self._head), list(self._tail), self._total
        limit = min(limit, MAX_RUN_LOG_LINES)
        first, last = limit - limit // 2, limit // 2
        if len(head) + len(tail) == total:  # nothing left out yet: one contiguous list
            lines = head + tail
            if total <= limit:
                return KeptLog(lines=lines, dropped=0, dropped_at=0)
            head, tail = lines, lines
        # Over the limit: the first lines from the head, the last ones from the tail (each holds enough).
        kept = head[:first] + tail[len(tail) - last:]
        return KeptLog(lines=kept, dropped=total - first - last, dropped_at=first)


def run_log_start() -> RunLog:
    """Collect the log records of the current task (and what it awaits or starts) into a new RunLog.

    Call it at the start of a run's own asyncio task: the task's context ends with it. The handler is
    installed on the root logger on first use.
    """
    _install()
    log = RunLog()
    _current.set(log)
    return log


class RunLogHandler(logging.Handler):
    """Adds each record to the RunLog of the run it was logged in, if any; never raises."""

    def emit(self, record: logging.LogRecord) -> None:
        log = _current.get()
        if log is None:
            return
        try:
            log.add({"at": record.created, "level": record.levelname, "logger": record.name,
                     "message": truncate_message(self.format(record))})
        except Exception:
            self.handleError(record)


_handler = RunLogHandler()
_install_lock = threading.Lock()


def _install() -> None:
    root = logging.getLogger()
    with _install_lock:
        if _handler not in root.handlers:
            root.addHandler(_handler)
