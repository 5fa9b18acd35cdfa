"""A logging handler that streams the service node's log records to the status hub (the live log on the Status page).

Guarantees: emit never raises (failures go to handleError), never re-enters itself when publishing logs in turn,
and every message is at most MAX_LOG_MESSAGE characters. It escapes nothing: rendering is the web's job.
A record logged with `extra={"live_log": False}` stays out (the messenger's per-reject lines: only their periodic
summaries go live, so a flood of refused connections cannot push real events out).
"""
from __future__ import annotations

import logging
import threading

from indexer.status import StatusHub

# No module logger: this module is part of logging, and a record logged from here could only recurse.

# Characters per message: the head of a message and the end of its traceback fit; a full 500-event batch of
# ASCII lines then stays under the batch byte budget, so long lines do not shrink batches much.
MAX_LOG_MESSAGE = 4 * 1024
# Marks the cut in a truncated message; the head (the message) and the tail (the exception) are kept.
TRUNCATION_MARK = "\n[… truncated …]\n"


def truncate_message(text: str, limit: int = MAX_LOG_MESSAGE) -> str:
    """`text` if it fits `limit` characters, else its head and tail around TRUNCATION_MARK, exactly `limit` long."""
    if len(text) <= limit:
        return text
    keep = limit - len(TRUNCATION_MARK)
    tail = keep // 2
    return text[: keep - tail] + TRUNCATION_MARK + text[len(text) - tail :]


class HubLogHandler(logging.Handler):
    """Publishes each record it accepts to the hub as {"level", "logger", "message"} with `at` = the record's time."""

    def __init__(self, hub: StatusHub, *, level: int = logging.INFO) -> None:
        super().__init__(level)
        self.hub = hub
        self._local = threading.local()  # per thread: are we inside emit() already?

    def set_level_name(self, name: str) -> None:
        """Follow a level setting such as "INFO" or "warning"; an unknown name is a ValueError."""
        level = logging.getLevelNamesMapping().get(name.strip().upper())
        if level is None:
            raise ValueError(f"unknown log level {name!r}; expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        self.setLevel(level)

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "live_log", True) is False:
            return
        local = self._local
        if getattr(local, "emitting", False):
            return  # logged while publishing a record: streaming it would recurse
        local.emitting = True
        try:
            # The default formatter gives the message, then the exception and stack text if any.
            message = truncate_message(self.format(record))
            data = {"level": record.levelname, "logger": record.name, "message": message}
            self.hub.publish_log(data, at=record.created)
        except Exception:
            self.handleError(record)
        finally:
            local.emitting = False
