"""Prometheus metrics of this web process, and of the service node fetched through the messenger at scrape time.

Web metrics are counted as events happen (API requests, round trips) or read from this process's status link.
Service metrics come from one `status.snapshot` per scrape (short timeout; `proget_service_up 0` when the
service does not answer) plus the trigger queue from the shared database. See docs/api.md for the choice.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from django.db import DatabaseError
from django.utils import timezone
from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from indexer.models import Trigger
from indexer.triggers import triggers_pending_count
from messenger.errors import MessengerError
from messenger.messages import STATUS_SNAPSHOT

logger = logging.getLogger(__name__)

# Our own registry, so only what is declared here is exposed (and tests never collide with other libraries).
REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)

VIA_ONE_SHOT = "one_shot"  # a request on its own connection (API views, the scrape): connect + handshake + reply
VIA_STATUS_LINK = "status_link"  # a ping on this process's persistent status link (see status_link_rtt_observe)
# Local service round trips are 0.1-5 ms; a one-shot request with its handshake a few ms; over 1 s is trouble.
ROUND_TRIP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# The scrape asks the service for its snapshot with this timeout, well below Prometheus' default 10 s scrape timeout.
SCRAPE_TIMEOUT = 1.0
# Trigger-to-start latency is computed over triggers claimed within this window (at most LATENCY_SAMPLE of them).
LATENCY_WINDOW = timedelta(hours=1)
LATENCY_SAMPLE = 500
LATENCY_QUANTILES = (0.5, 0.9, 0.99, 1.0)
RUNNER_STATES = ("idle", "running", "paused", "failed")
LINK_STATES = ("connected", "connecting", "unreachable", "key-mismatch", "closed")

API_REQUESTS = Counter(
    "proget_api_requests", "JSON API requests answered by this web process, by endpoint and HTTP status.",
    ["endpoint", "status"], registry=REGISTRY,
)
ROUND_TRIP = Histogram(
    "proget_messenger_round_trip_seconds", "Round trips from this web process to the service node.",
    ["via"], buckets=ROUND_TRIP_BUCKETS, registry=REGISTRY,
)


def api_request_count(*, endpoint: str, status: int) -> None:
    """Count one answered API request."""
    API_REQUESTS.labels(endpoint=endpoint, status=str(status)).inc()


def round_trip_observe(*, seconds: float, via: str) -> None:
    """Record one round trip to the service."""
    ROUND_TRIP.labels(via=via).observe(seconds)


def status_link_rtt_observe(*, seconds: float) -> None:
    """Record one ping of the status link (called by proget_web.status.link after each successful ping)."""
    round_trip_observe(seconds=seconds, via=VIA_STATUS_LINK)


def _number(value: Any) -> float | None:
    """A finite number from the snapshot, else None (the service is trusted, its data still checked)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


class StatusLinkCollector(Collector):
    """This process's status link (proget_web.status.link), read at scrape time: state, last ping, viewers."""

    def collect(self) -> Iterator[Metric]:
        from proget_web.status import link as link_module  # the link is created lazily by the first viewer

        link = getattr(link_module, "_link", None)
        view = link.link_json() if link is not None else {"status": "closed", "rttMs": None}
        state = GaugeMetricFamily("proget_status_link_state",
                                  "This web process's messenger link to the service: 1 for its current state.",
                                  labels=["state"])
        for name in LINK_STATES:
            state.add_metric([name], 1.0 if view["status"] == name else 0.0)
        yield state
        rtt = _number(view.get("rttMs"))
        if rtt is not None:
            yield GaugeMetricFamily("proget_status_link_last_rtt_seconds",
                                    "The status link's latest ping round trip.", value=rtt / 1000)
        yield GaugeMetricFamily("proget_websocket_viewers",
                                "Service Status WebSocket viewers connected to this web process.",
                                value=float(link.viewers if link is not None else 0))


class ServiceCollector(Collector):
    """The service node's counters from one status.snapshot per scrape, and the trigger queue from the database."""

    def collect(self) -> Iterator[Metric]:
        from api.service import service_request  # api.service imports this module

        yield from self._queue()
        try:
            snapshot = service_request(STATUS_SNAPSHOT, body={"logs": 0}, timeout=SCRAPE_TIMEOUT)
        except MessengerError as exc:
            logger.info("metrics: service snapshot not available: %s", getattr(exc, "reason", None) or exc)
            snapshot = None
        yield GaugeMetricFamily("proget_service_up", "1 when the service node answered this scrape.",
                                value=1.0 if isinstance(snapshot, dict) else 0.0)
        if isinstance(snapshot, dict):
            yield from self._service(snapshot.get("service") or {})
            yield from self._runners(snapshot.get("runners") or {})

    def _queue(self) -> Iterator[Metric]:
        try:
            pending = triggers_pending_count()
            latencies = _latencies(since=timezone.now() - LATENCY_WINDOW)
        except DatabaseError as exc:
            logger.warning("metrics: trigger queue not readable: %s", exc)
            return
        yield GaugeMetricFamily("proget_trigger_queue_pending", "Triggers waiting for a service node.",
                                value=float(pending))
        family = GaugeMetricFamily(
            "proget_trigger_start_latency_seconds",
            f"Trigger created -> claimed by the service, over triggers claimed in the last "
            f"{int(LATENCY_WINDOW.total_seconds())} s (quantile 1 is the maximum).", labels=["quantile"])
        for quantile in LATENCY_QUANTILES:
            if latencies:
                family.add_metric([str(quantile)], _nearest_rank(latencies, quantile))
        yield family
        yield GaugeMetricFamily("proget_trigger_start_latency_sample_count",
                                "How many triggers the start latency quantiles are computed from.",
                                value=float(len(latencies)))

    def _service(self, service: dict) -> Iterator[Metric]:
        uptime = _number(service.get("uptime"))
        if uptime is not None:
            yield GaugeMetricFamily("proget_service_uptime_seconds", "Seconds since the service node started.",
                                    value=uptime)
        subscribers = _number(service.get("subscribers"))
        if subscribers is not None:
            yield GaugeMetricFamily("proget_service_status_subscribers",
                                    "Status streams the service node is feeding (one per watching web process).",
                                    value=subscribers)
        stats = service.get("messenger") or {}
        for name, help_text, pairs in (
            ("proget_messenger_frames", "Messenger frames the service node received/sent.",
             (("in", "frames_in"), ("out", "frames_out"))),
            ("proget_messenger_bytes", "Messenger bytes the service node received/sent.",
             (("in", "bytes_in"), ("out", "bytes_out"))),
        ):
            family = CounterMetricFamily(name, help_text, labels=["direction"])
            for direction, field in pairs:
                value = _number(stats.get(field))
                if value is not None:
                    family.add_metric([direction], value)
            yield family
        for name, field, help_text in (
            ("proget_messenger_handshakes", "handshakes_ok", "Messenger handshakes completed by the service node."),
            ("proget_messenger_connections", "connections_total", "Messenger connections accepted."),
        ):
            value = _number(stats.get(field))
            if value is not None:
                yield CounterMetricFamily(name, help_text, value=value)
        open_now = _number(stats.get("connections_open"))
        if open_now is not None:
            yield GaugeMetricFamily("proget_messenger_connections_open", "Messenger connections open now.",
                                    value=open_now)
        rejects = CounterMetricFamily("proget_messenger_rejects", "Messenger connections refused, by reason.",
                                      labels=["reason"])
        for reason, count in (stats.get("rejects") or {}).items():
            value = _number(count)
            if isinstance(reason, str) and value is not None:
                rejects.add_metric([reason], value)
        yield rejects

    def _runners(self, runners: dict) -> Iterator[Metric]:
        state = GaugeMetricFamily("proget_runner_state", "Each task runner's state: 1 for its current state.",
                                  labels=["runner", "state"])
        duration = GaugeMetricFamily("proget_runner_last_duration_seconds",
                                     "How long each task runner's last run took.", labels=["runner"])
        failed = GaugeMetricFamily("proget_runner_last_run_failed",
                                   "1 when the task runner's last run failed, 0 when it succeeded.",
                                   labels=["runner"])
        for runner in runners.values():
            if not isinstance(runner, dict) or not isinstance(runner.get("name"), str):
                continue
            name = runner["name"]
            for candidate in RUNNER_STATES:
                state.add_metric([name, candidate], 1.0 if runner.get("state") == candidate else 0.0)
            seconds = _number(runner.get("lastDuration"))
            if seconds is not None:
                duration.add_metric([name], seconds)
            if runner.get("lastResult") in ("ok", "failed"):
                failed.add_metric([name], 1.0 if runner["lastResult"] == "failed" else 0.0)
        yield from (state, duration, failed)


def _nearest_rank(ordered: list[float], quantile: float) -> float:
    """The nearest-rank `quantile` of a sorted, non-empty list (quantile 1 is the maximum)."""
    return ordered[max(0, math.ceil(quantile * len(ordered)) - 1)]


def _latencies(*, since: datetime) -> list[float]:
    """Seconds from creation to claim of the triggers claimed since `since` (newest LATENCY_SAMPLE), sorted."""
    rows = (Trigger.objects.filter(claimed_at__gte=since).order_by("-claimed_at")
            .values_list("created_at", "claimed_at")[:LATENCY_SAMPLE])
    return sorted(max(0.0, (claimed - created).total_seconds()) for created, claimed in rows)


REGISTRY.register(StatusLinkCollector())
REGISTRY.register(ServiceCollector())
