"""Requests from API views and the metrics scrape to the service node, timed for the round-trip histogram.

A thin layer over indexer.messenger_config.service_call (one connection per request, closed after the reply);
it raises exactly what service_call raises.
"""
from __future__ import annotations

import time

from indexer.messenger_config import service_call
from node_base.metrics import VIA_ONE_SHOT, round_trip_observe

# An API client or a scraper waits this long at most for the service; a local service answers in milliseconds.
SERVICE_TIMEOUT = 2.0


def service_request(type: str, *, body: dict | None = None, timeout: float = SERVICE_TIMEOUT) -> dict:
    """Send one request to the service and return its reply; the time it took (connect included) is recorded."""
    started = time.perf_counter()
    reply = service_call(type, body=body, timeout=timeout)
    round_trip_observe(seconds=time.perf_counter() - started, via=VIA_ONE_SHOT)
    return reply
