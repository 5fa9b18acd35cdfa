"""/metrics: valid Prometheus text, counters that move with their events, service metrics, access control."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from indexer.models import Trigger
from proget_web.status import link as link_module
from settings_store.models import SettingValue
from settings_store.services import setting_set

pytestmark = pytest.mark.django_db


def _scrape(token: str, **extra: str) -> dict[tuple[str, tuple], float]:
    response = Client(**extra).get("/metrics", HTTP_X_APIKEY=token)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def test_api_request_counter_moves_when_a_request_is_answered(make_key, service) -> None:
    token = make_key("metrics:read", "service:read")
    label = ("proget_api_requests_total", (("endpoint", "service_status_view"), ("status", "200")))
    before = _scrape(token).get(label, 0.0)
    Client().get("/api/service/status", HTTP_X_APIKEY=token)
    assert _scrape(token)[label] == before + 1
    refused = ("proget_api_requests_total", (("endpoint", "service_status_view"), ("status", "401")))
    before_refused = _scrape(token).get(refused, 0.0)
    Client().get("/api/service/status", HTTP_X_APIKEY="pgk_1_bad")
    assert _scrape(token)[refused] == before_refused + 1


def test_service_metrics_come_from_the_snapshot(make_key, service) -> None:
    samples = _scrape(make_key("metrics:read"))
    assert samples[("proget_service_up", ())] == 1
    assert samples[("proget_messenger_frames_total", (("direction", "in"),))] == 100
    assert samples[("proget_messenger_bytes_total", (("direction", "out"),))] == 7000
    assert samples[("proget_messenger_rejects_total", (("reason", "bad-proof"),))] == 4
    assert samples[("proget_messenger_handshakes_total", ())] == 8
    assert samples[("proget_service_status_subscribers", ())] == 2
    assert samples[("proget_runner_last_duration_seconds", (("runner", "Feed Indexing"),))] == 1.5
    assert samples[("proget_runner_last_run_failed", (("runner", "Feed Indexing"),))] == 1
    assert samples[("proget_runner_state", (("runner", "Feed Indexing"), ("state", "idle")))] == 1
    assert samples[("proget_runner_state", (("runner", "Feed Indexing"), ("state", "running")))] == 0
    assert ("status.snapshot", {"logs": 0}) in service.calls


def test_round_trip_histogram_counts_service_requests(make_key, service) -> None:
    token = make_key("metrics:read")
    label = ("proget_messenger_round_trip_seconds_count", (("via", "one_shot"),))
    first = _scrape(token).get(label, 0.0)  # this scrape's own snapshot request is counted after it is rendered
    assert _scrape(token)[label] == first + 1


def test_service_down_is_service_up_zero(make_key) -> None:
    samples = _scrape(make_key("metrics:read"))
    assert samples[("proget_service_up", ())] == 0
    assert ("proget_messenger_frames_total", (("direction", "in"),)) not in samples


def test_trigger_queue_and_start_latency_come_from_the_database(make_key, service) -> None:
    now = timezone.now()
    Trigger.objects.create(kind="feed.reindex", target="a")
    Trigger.objects.create(kind="feed.reindex", target="b")
    for seconds in (1, 3):
        Trigger.objects.create(kind="feed.reindex", target="c", state="done", created_at=now - timedelta(seconds=10),
                               claimed_at=now - timedelta(seconds=10 - seconds))
    samples = _scrape(make_key("metrics:read"))
    assert samples[("proget_trigger_queue_pending", ())] == 2
    assert samples[("proget_trigger_start_latency_sample_count", ())] == 2
    assert samples[("proget_trigger_start_latency_seconds", (("quantile", "1.0"),))] == pytest.approx(3)
    assert samples[("proget_trigger_start_latency_seconds", (("quantile", "0.5"),))] == pytest.approx(1)


def test_status_link_state_and_viewers(make_key, service, monkeypatch) -> None:
    class FakeLink:
        viewers = 3

        def link_json(self) -> dict:
            return {"status": "connected", "rttMs": 1.25}

    monkeypatch.setattr(link_module, "_link", FakeLink())
    samples = _scrape(make_key("metrics:read"))
    assert samples[("proget_websocket_viewers", ())] == 3
    assert samples[("proget_status_link_state", (("state", "connected"),))] == 1
    assert samples[("proget_status_link_state", (("state", "unreachable"),))] == 0
    assert samples[("proget_status_link_last_rtt_seconds", ())] == pytest.approx(0.00125)


def test_ip_allowlist_lets_scrapers_in_without_a_key(service) -> None:
    assert Client(REMOTE_ADDR="10.0.0.5").get("/metrics").status_code == 401  # empty allowlist: nobody
    setting_set(name="Metrics.AllowedIps", value="10.0.0.0/24, ::1", actor="t", source="test")
    assert Client(REMOTE_ADDR="10.0.0.5").get("/metrics").status_code == 200
    assert Client(REMOTE_ADDR="10.0.1.5").get("/metrics").status_code == 401
    assert Client(REMOTE_ADDR="10.0.1.5").post("/metrics").status_code == 405


def test_allowlist_setting_is_validated(make_key) -> None:
    from settings_store.registry import SettingValueError

    with pytest.raises(SettingValueError, match="IP addresses or CIDR networks"):
        setting_set(name="Metrics.AllowedIps", value="everyone", actor="t", source="test")
    assert not SettingValue.objects.filter(name="Metrics.AllowedIps").exists()


def test_wrong_scope_is_403(make_key) -> None:
    assert Client().get("/metrics", HTTP_X_APIKEY=make_key("service:read")).status_code == 403
