"""This process's Prometheus registry and the round-trip histogram, below every layer that records into it.

The API's /metrics exposes REGISTRY; the domains and the web register their collectors in it (api.metrics for the
service and the trigger queue, proget_web.status.metrics for the status link), so none imports the others.
"""
from __future__ import annotations

import math
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, ProcessCollector

# Our own registry, so only what is declared here is exposed (and tests never collide with other libraries).
REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)

VIA_ONE_SHOT = "one_shot"  # a request on its own connection (API views, the scrape): connect + handshake + reply
VIA_STATUS_LINK = "status_link"  # a ping on this process's persistent status link
# Local service round trips are 0.1-5 ms; a one-shot request with its handshake a few ms; over 1 s is trouble.
ROUND_TRIP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

ROUND_TRIP = Histogram(
    "proget_messenger_round_trip_seconds", "Round trips from this web process to the service node.",
    ["via"], buckets=ROUND_TRIP_BUCKETS, registry=REGISTRY,
)


def round_trip_observe(*, seconds: float, via: str) -> None:
    """Record one round trip to the service (`via`: VIA_ONE_SHOT or VIA_STATUS_LINK)."""
    ROUND_TRIP.labels(via=via).observe(seconds)


def finite_number(value: Any) -> float | None:
    """A finite number from a peer's data, else None (the service is trusted, its data still checked)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)
