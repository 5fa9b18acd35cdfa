"""The web side's copy of the service's live status: a snapshot, kept current by applying streamed events.

Pure (no asyncio, no Django). Guarantees: memory is bounded (LOG_LINES log events, one state per runner)
and malformed input from the stream is skipped, never raised, so a bad event cannot stop the page.
"""
from __future__ import annotations

from collections import deque
from typing import Any

# The page shows the last 200 log lines on open (the service's SNAPSHOT_MAX_LOGS).
LOG_LINES = 200
# A service never has more runners than this; more names in one snapshot means a broken peer.
MAX_RUNNERS = 256

LOG = "log"
RUNNER = "runner"
HEARTBEAT = "heartbeat"
SERVICE = "service"
# Keys the service's hub adds to every event (indexer/status.py); the rest is the event's data.
_EVENT_KEYS = frozenset({"type", "seq", "at"})


def _is_event(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and isinstance(value.get("type"), str)
        and isinstance(value.get("seq"), int)
        and not isinstance(value.get("seq"), bool)
    )


def event_data(event: dict) -> dict:
    """An event without the hub's own keys (type, seq, at)."""
    return {key: value for key, value in event.items() if key not in _EVENT_KEYS}


class ServiceStatus:
    """The latest snapshot of one service: logs ring, runners by name, heartbeat, service info and state."""

    def __init__(self) -> None:
        self.loaded = False
        self.service: dict | None = None  # node, version, uptime, fingerprint, endpoint, messenger stats, ...
        self.service_state: str | None = None  # from "service" events: running / stopping / restarting
        self.logs: deque[dict] = deque(maxlen=LOG_LINES)
        self.runners: dict[str, dict] = {}
        self.heartbeat: dict | None = None
        self.seq = 0

    def clear(self) -> None:
        """Forget everything (the link is gone or is about to load a fresh snapshot)."""
        self.__init__()

    def load(self, snapshot: Any) -> bool:
        """Replace everything with a `status.snapshot` body; False (and nothing changed) if it is malformed."""
        if not isinstance(snapshot, dict) or not isinstance(snapshot.get("seq"), int):
            return False
        logs, runners = snapshot.get("logs"), snapshot.get("runners")
        if not isinstance(logs, list) or not isinstance(runners, dict):
            return False
        self.clear()
        self.loaded = True
        service = snapshot.get("service")
        self.service = service if isinstance(service, dict) else None
        self.service_state = "running" if self.service is not None else None
        self.logs.extend(event for event in logs[-LOG_LINES:] if _is_event(event) and event["type"] == LOG)
        for name, state in list(runners.items())[:MAX_RUNNERS]:
            if isinstance(name, str) and isinstance(state, dict):
                self.runners[name] = state
        heartbeat = snapshot.get("heartbeat")
        self.heartbeat = heartbeat if _is_event(heartbeat) else None
        self.seq = snapshot["seq"]
        return True

    def apply(self, events: Any) -> list[dict]:
        """Apply a batch of streamed events; return the well-formed ones, in order, for the viewers."""
        if not isinstance(events, list):
            return []
        applied = []
        for event in events:
            if not _is_event(event):
                continue
            kind = event["type"]
            if kind == LOG:
                self.logs.append(event)
            elif kind == RUNNER:
                name = event.get("name")
                if not isinstance(name, str) or (name not in self.runners and len(self.runners) >= MAX_RUNNERS):
                    continue
                self.runners[name] = event
            elif kind == HEARTBEAT:
                self.heartbeat = event
                self.service = event_data(event)  # the heartbeat carries the node's info()
            elif kind == SERVICE:
                state = event.get("state")
                if isinstance(state, str):
                    self.service_state = state
            self.seq = max(self.seq, event["seq"])
            applied.append(event)
        return applied

    def as_json(self) -> dict | None:
        """The snapshot as the browser gets it, or None before the first one arrived."""
        if not self.loaded:
            return None
        return {
            "service": self.service,
            "serviceState": self.service_state,
            "logs": list(self.logs),
            "runners": dict(self.runners),
            "heartbeat": self.heartbeat,
            "seq": self.seq,
        }
