"""This web process's status link as Prometheus metrics, read at scrape time: its state, last ping, viewers.

Registered in node_base.metrics.REGISTRY by the web project's AppConfig.ready; the API's /metrics exposes it.
"""
from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from node_base.metrics import finite_number
from proget_web.status.link import current_link

LINK_STATES = ("connected", "connecting", "unreachable", "key-mismatch", "closed")


class StatusLinkCollector(Collector):
    """This process's status link (proget_web.status.link), read at scrape time: state, last ping, viewers."""

    def collect(self) -> Iterator[Metric]:
        link = current_link()
        view = link.link_json() if link is not None else {"status": "closed", "rttMs": None}
        state = GaugeMetricFamily("proget_status_link_state",
                                  "This web process's messenger link to the service: 1 for its current state.",
                                  labels=["state"])
        for name in LINK_STATES:
            state.add_metric([name], 1.0 if view["status"] == name else 0.0)
        yield state
        rtt = finite_number(view.get("rttMs"))
        if rtt is not None:
            yield GaugeMetricFamily("proget_status_link_last_rtt_seconds",
                                    "The status link's latest ping round trip.", value=rtt / 1000)
        yield GaugeMetricFamily("proget_websocket_viewers",
                                "Service Status WebSocket viewers connected to this web process.",
                                value=float(link.viewers if link is not None else 0))
