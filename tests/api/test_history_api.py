"""The run history through the API: a runner's runs paged newest first, one run with its log, and refusals."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from indexer.models import RunHistory

pytestmark = pytest.mark.django_db

HISTORY = "/api/service/runners/Feed%20Indexing/history"


def runs(count: int, *, runner: str = "Feed Indexing") -> list[RunHistory]:
    start = timezone.now() - timedelta(hours=1)
    return [RunHistory.objects.create(runner=runner, started_at=start + timedelta(minutes=n), result="ok",
                                      duration=0.5, message=f"run {n}", triggered_by="schedule", node="svc")
            for n in range(count)]


def test_runs_come_newest_first_and_page_on_with_next_before(make_key) -> None:
    made = runs(5)
    runs(2, runner="Feed Retention")
    token = make_key("service:read")
    first = Client().get(f"{HISTORY}?limit=2", HTTP_X_APIKEY=token).json()
    assert [run["message"] for run in first["runs"]] == ["run 4", "run 3"]
    assert first["nextBefore"] == made[3].id and first["retention"] == {"days": 14, "runs": 100, "logLines": 200}
    second = Client().get(f"{HISTORY}?limit=2&before={first['nextBefore']}", HTTP_X_APIKEY=token).json()
    third = Client().get(f"{HISTORY}?limit=2&before={second['nextBefore']}", HTTP_X_APIKEY=token).json()
    assert [run["message"] for run in second["runs"] + third["runs"]] == ["run 2", "run 1", "run 0"]
    assert third["nextBefore"] is None
    run = first["runs"][0]
    assert run["startedAt"].endswith("+00:00") and run["finishedAt"] is None and run["triggeredBy"] == "schedule"


def test_one_run_with_its_log_and_the_dropped_lines(make_key) -> None:
    (run,) = runs(1)
    at = timezone.now().timestamp()
    RunHistory.objects.filter(id=run.id).update(
        log=[{"at": at, "level": "INFO", "logger": "indexer.runner", "message": "first"},
             {"at": at, "level": "ERROR", "logger": "indexer.runner", "message": "last"}],
        log_dropped=7, log_dropped_at=1)
    answer = Client().get(f"{HISTORY}/{run.id}", HTTP_X_APIKEY=make_key("service:read"))
    assert answer.status_code == 200
    body = answer.json()
    assert [line["message"] for line in body["log"]] == ["first", "last"]
    assert (body["logDropped"], body["logDroppedAt"]) == (7, 1)
    assert body["log"][0]["at"].endswith("+00:00") and body["id"] == run.id


def test_unknown_runner_or_run_is_a_json_404(make_key) -> None:
    (run,) = runs(1, runner="Feed Retention")
    token = make_key("service:read")
    unknown = Client().get("/api/service/runners/Nope/history", HTTP_X_APIKEY=token)
    assert unknown.status_code == 404 and unknown.json()["error"].startswith("unknown runner 'Nope' (known: Feed")
    assert Client().get("/api/service/runners/Nope/history/1", HTTP_X_APIKEY=token).status_code == 404
    other_runners = Client().get(f"{HISTORY}/{run.id}", HTTP_X_APIKEY=token)
    assert other_runners.status_code == 404 and other_runners.json()["error"].startswith(f"no run {run.id} of ")
    for missing in ("999999", "0", "9" * 20):
        assert Client().get(f"{HISTORY}/{missing}", HTTP_X_APIKEY=token).status_code == 404


def test_a_runner_configured_on_the_service_only_still_shows_its_history(make_key) -> None:
    (run,) = runs(1, runner="Test Slow")  # PROGET_EXTRA_RUNNERS set for the service node, not the web node
    token = make_key("service:read")
    listed = Client().get("/api/service/runners/Test%20Slow/history", HTTP_X_APIKEY=token)
    assert listed.status_code == 200 and [r["id"] for r in listed.json()["runs"]] == [run.id]
    assert Client().get(f"/api/service/runners/Test%20Slow/history/{run.id}", HTTP_X_APIKEY=token).status_code == 200


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=x", "limit=-1", "limit=", "before=0",
                                   "before=abc", f"before={2**63}", "limit=٣"])
def test_bad_paging_is_a_400(make_key, query: str) -> None:
    answer = Client().get(f"{HISTORY}?{query}", HTTP_X_APIKEY=make_key("service:read"))
    assert answer.status_code == 400
    assert answer.json()["error"].startswith(f"'{query.split('=')[0]}' must be a whole number from ")


def test_the_history_needs_the_service_read_scope(make_key) -> None:
    assert Client().get(HISTORY).status_code == 401
    assert Client().get(HISTORY, HTTP_X_APIKEY=make_key("service:control")).status_code == 403
    assert Client().get(HISTORY, HTTP_X_APIKEY=make_key("service:read")).status_code == 200
    assert Client().post(HISTORY, HTTP_X_APIKEY=make_key("service:read")).status_code == 405
