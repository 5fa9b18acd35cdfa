"""Prometheus metrics of this web process, and of the service node fetched through the messenger at scrape time.

Web metrics are counted as events happen (API requests, round trips in node_base.metrics) or read from this
process's status link (proget_web.status.metrics).
Service metrics come from one `status.snapshot` per scrape (short timeout; `proget_service_up 0` when the
service does not answer) plus the trigger queue from the shared database. See docs/api.md for the choice.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from datetime import datetime, timedelta

from django.db import DatabaseError
from django.utils import timezone
from prometheus_client import Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from api.service import service_request
from indexer.models import Trigger
from indexer.triggers import triggers_pending_count
from messenger.errors import MessengerError
from messenger.messages import STATUS_SNAPSHOT
from node_base.metrics import REGISTRY, finite_number

logger = logging.getLogger(__name__)

# The scrape asks the service for its snapshot with this timeout, well below Prometheus' default 10 s scrape timeout.
SCRAPE_TIMEOUT = 1.0
# Trigger-to-start latency is computed over triggers claimed within this window (at most LATENCY_SAMPLE of them).
LATENCY_WINDOW = timedelta(hours=1)
LATENCY_SAMPLE = 500
LATENCY_QUANTILES = (0.5, 0.9, 0.99, 1.0)
RUNNER_STATES = ("idle", "running", "paused", "failed")

API_REQUESTS = Counter(
    "proget_api_requests", "JSON API requests answered by this web process, by endpoint and HTTP status.",
    ["endpoint", "status"], registry=REGISTRY,
)


def api_request_count(*, endpoint: str, status: int) -> None:
    """Count one answered API request."""
    API_REQUESTS.labels(endpoint=endpoint, status=str(status)).inc()


class ServiceCollector(Collector):
    """The service node's counters from one status.snapshot per scrape, and the trigger queue from the database."""

    def collect(self) -> Iterator[Metric]:
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
        uptime = finite_number(service.get("uptime"))
        if uptime is not None:
            yield GaugeMetricFamily("proget_service_uptime_seconds", "Seconds since the service node started.",
                                    value=uptime)
        subscribers = finite_number(service.get("subscribers"))
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
                value = finite_number(stats.get(field))
                if value is not None:
                    family.add_metric([direction], value)
            yield family
        for name, field, help_text in (
            ("proget_messenger_handshakes", "handshakes_ok", "Messenger handshakes completed by the service node."),
            ("proget_messenger_connections", "connections_total", "Messenger connections accepted."),
        ):
            value = finite_number(stats.get(field))
            if value is not None:
                yield CounterMetricFamily(name, help_text, value=value)
        open_now = finite_number(stats.get("connections_open"))
        if open_now is not None:
            yield GaugeMetricFamily("proget_messenger_connections_open", "Messenger connections open now.",
                                    value=open_now)
        rejects = CounterMetricFamily("proget_messenger_rejects", "Messenger connections refused, by reason.",
                                      labels=["reason"])
        for reason, count in (stats.get("rejects") or {}).items():
            value = finite_number(count)
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
            seconds = finite_number(runner.get("lastDuration"))
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


REGISTRY.register(ServiceCollector())
