"""Service status and runner control through the API, feed reindex and triggers: answers and refusals."""
from __future__ import annotations

import pytest
from django.test import Client

from api import service as api_service
from api import views as api_views
from indexer.models import Trigger
from indexer.triggers import TriggerError
from messenger.errors import RemoteError
from messenger.messages import BAD_REQUEST, UNKNOWN_FEED, UNKNOWN_RUNNER, UNSPECIFIED
from settings_store.models import SettingValue
from tests.api.conftest import SNAPSHOT

pytestmark = pytest.mark.django_db

RUNNER_PATH = "/api/service/runners/Feed%20Indexing"


def test_status_returns_the_snapshot(make_key, service) -> None:
    response = Client().get("/api/service/status?logs=5", HTTP_X_APIKEY=make_key("service:read"))
    assert response.status_code == 200 and response.json() == SNAPSHOT
    assert service.calls == [("status.snapshot", {"logs": 5})]
    bad = Client().get("/api/service/status?logs=-1", HTTP_X_APIKEY=make_key("service:read"))
    assert bad.status_code == 400


def test_status_with_the_service_down_is_503_with_retry_after_and_the_reason(make_key) -> None:
    response = Client().get("/api/service/status", HTTP_X_APIKEY=make_key("service:read"))
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response.json()["error"].startswith("service not reachable: ")
    assert len(response.json()["error"]) > len("service not reachable: ")


def test_misconfigured_messenger_is_503_without_retry_after(make_key) -> None:
    SettingValue.objects.create(name="Service.MessengerKey", value="not a key")  # written behind validation's back
    response = Client().get("/api/service/status", HTTP_X_APIKEY=make_key("service:read"))
    assert response.status_code == 503 and not response.has_header("Retry-After")
    assert "messenger error" in response.json()["error"]


def test_runner_actions(make_key, service) -> None:
    token = make_key("service:control")
    run = Client().post(f"{RUNNER_PATH}/run", HTTP_X_APIKEY=token)
    trigger = Trigger.objects.get()
    assert run.status_code == 202 and run.json()["trigger"]["id"] == trigger.id
    assert (trigger.kind, trigger.target, trigger.state) == ("runner.run", "Feed Indexing", "pending")
    assert run.json()["nudged"] is True and run.json()["alreadyQueued"] is False
    assert run.json()["message"] == f"trigger {trigger.id} started"
    again = Client().post(f"{RUNNER_PATH}/run", HTTP_X_APIKEY=token)  # still pending: nothing added
    assert again.status_code == 202 and again.json()["alreadyQueued"] is True
    assert again.json()["trigger"]["id"] == trigger.id and Trigger.objects.count() == 1
    assert Client().post(f"{RUNNER_PATH}/pause", HTTP_X_APIKEY=token).json()["state"] == "paused"
    assert Client().post(f"{RUNNER_PATH}/resume", HTTP_X_APIKEY=token).json()["state"] == "idle"
    assert service.calls == [("trigger.nudge", {"id": trigger.id}), ("trigger.nudge", {"id": trigger.id}),
                             ("runner.pause", {"name": "Feed Indexing"}), ("runner.resume", {"name": "Feed Indexing"})]
    assert trigger.requested_by.startswith("keyowner (API key "), "who asked, for the run history"
    unknown = Client().post("/api/service/runners/Nope/run", HTTP_X_APIKEY=token)
    assert unknown.status_code == 404 and unknown.json()["error"].startswith("unknown runner 'Nope'")
    too_long = Client().post(f"/api/service/runners/{'x' * 201}/run", HTTP_X_APIKEY=token)
    assert too_long.status_code == 400
    assert Trigger.objects.count() == 1


@pytest.mark.parametrize("text, code, status", [
    ("no runner called 'Nope'", UNKNOWN_RUNNER, 404),
    ("unknown runner 'Nope'", BAD_REQUEST, 502),  # the text alone decides nothing
    ("unknown runner 'Nope'", UNSPECIFIED, 502),  # an older service's ERROR, without a code
])
def test_a_refusal_of_the_service_maps_to_a_status_by_its_code(
    make_key, monkeypatch: pytest.MonkeyPatch, text: str, code: str, status: int,
) -> None:
    def refuse(type: str, *, body: dict | None = None, timeout: float) -> dict:
        raise RemoteError(text, code=code)

    monkeypatch.setattr(api_service, "service_call", refuse)
    response = Client().post(f"{RUNNER_PATH}/pause", HTTP_X_APIKEY=make_key("service:control"))
    assert response.status_code == status and text in response.json()["error"]


@pytest.mark.parametrize("text, code, status", [
    ("no runner called 'Nope'", UNKNOWN_RUNNER, 404),
    ("no feed called 'main'", UNKNOWN_FEED, 404),
    ("unknown target", BAD_REQUEST, 400),  # the text alone decides nothing
])
def test_a_refused_trigger_maps_to_a_status_by_its_code(
    make_key, monkeypatch: pytest.MonkeyPatch, text: str, code: str, status: int,
) -> None:
    def refuse(**_: object) -> None:
        raise TriggerError(text, code=code)

    monkeypatch.setattr(api_views, "trigger_request", refuse)
    response = Client().post(f"{RUNNER_PATH}/run", HTTP_X_APIKEY=make_key("service:control"))
    assert (response.status_code, response.json()["error"]) == (status, text)


def test_run_with_the_service_down_is_queued_not_refused(make_key) -> None:
    response = Client().post(f"{RUNNER_PATH}/run", HTTP_X_APIKEY=make_key("service:control"))
    assert response.status_code == 202 and response.json()["nudged"] is False
    assert "queued — the service is not reachable" in response.json()["message"]
    assert Trigger.objects.get().state == Trigger.State.PENDING


def test_reindex_writes_a_trigger_and_reports_it(make_key, service, feed) -> None:
    response = Client().post("/api/feeds/main/reindex", HTTP_X_APIKEY=make_key("feeds:reindex"))
    assert response.status_code == 202
    body = response.json()
    trigger = Trigger.objects.get()
    assert body["trigger"]["id"] == trigger.id and body["nudged"] is True
    assert body["message"] == f"trigger {trigger.id} started"
    assert trigger.kind == "feed.reindex" and trigger.requested_by.startswith("keyowner (API key ")
    followed = Client().get(f"/api/triggers/{trigger.id}", HTTP_X_APIKEY=make_key("feeds:read")).json()
    assert followed["state"] == "pending" and followed["target"] == "main"


def test_reindex_with_the_service_down_is_queued_not_lost(make_key, feed) -> None:
    response = Client().post("/api/feeds/main/reindex", HTTP_X_APIKEY=make_key("feeds:reindex"))
    assert response.status_code == 202 and response.json()["nudged"] is False
    assert "queued" in response.json()["message"]
    assert Trigger.objects.get().state == Trigger.State.PENDING


def test_unknown_feed_and_trigger_are_404(make_key, feed) -> None:
    token = make_key("feeds:reindex", "feeds:read")
    missing = Client().post("/api/feeds/nope/reindex", HTTP_X_APIKEY=token)
    assert missing.status_code == 404 and missing.json() == {"error": "no feed called 'nope'"}
    assert not Trigger.objects.exists()
    assert Client().get("/api/triggers/12345", HTTP_X_APIKEY=token).status_code == 404
    assert Client().get(f"/api/triggers/{2**70}", HTTP_X_APIKEY=token).status_code == 404
