"""The run history through the JSON API: a runner's runs newest first (paged by run id), one run with its log.

Read from the database, so it answers with the service down; the scope of the service status (service:read).
"""
from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse

from api.endpoint import ApiError, api_endpoint
from api_keys.models import ApiKey
from indexer.models import RunHistory
from indexer.run_history_selectors import (
    MAX_RUN_ID,
    history_runner_known,
    history_runner_names,
    run_history_get,
    run_history_page,
    run_history_retention,
    run_log_lines,
)

# Runs per answer: the default, and the most a client may ask for.
DEFAULT_LIMIT = 20
MAX_LIMIT = 100


def _runner(name: str) -> str:
    if not history_runner_known(name=name):
        raise ApiError(f"unknown runner {name!r} (known: {', '.join(history_runner_names())})", status=404)
    return name


def _whole_number(request: HttpRequest, name: str, *, default: int | None, low: int, high: int) -> int | None:
    """Query parameter `name` as a whole number in [low, high]; ApiError 400 otherwise."""
    text = request.GET.get(name)
    if text is None:
        return default
    if not (text.isascii() and text.isdigit() and low <= int(text) <= high):
        raise ApiError(f"'{name}' must be a whole number from {low} to {high}", status=400)
    return int(text)


def _time(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def run_json(run: RunHistory) -> dict[str, Any]:
    """One run without its log, as the API shows it (times ISO 8601 with the zone)."""
    return {
        "id": run.id,
        "runner": run.runner,
        "startedAt": _time(run.started_at),
        "finishedAt": _time(run.finished_at),
        "duration": run.duration,
        "result": run.result,
        "message": run.message,
        "error": run.error,
        "target": run.target,
        "triggerId": run.trigger_id,
        "triggeredBy": run.triggered_by,
        "node": run.node,
    }


@api_endpoint(scopes=["service:read"], methods=["GET"])
def runner_history_view(request: HttpRequest, *, key: ApiKey, name: str) -> HttpResponse:
    """The runner's latest runs (?limit=N, 1-100), or those before run ?before=ID; `nextBefore` pages on."""
    runner = _runner(name)
    limit = _whole_number(request, "limit", default=DEFAULT_LIMIT, low=1, high=MAX_LIMIT)
    before = _whole_number(request, "before", default=None, low=1, high=MAX_RUN_ID)
    page = run_history_page(runner=runner, limit=limit, before=before)
    return JsonResponse({"runner": runner, "runs": [run_json(run) for run in page.runs], "nextBefore": page.older,
                         "retention": run_history_retention()})


@api_endpoint(scopes=["service:read"], methods=["GET"])
def runner_run_view(request: HttpRequest, *, key: ApiKey, name: str, run_id: str) -> HttpResponse:
    """One run of the runner with its kept log lines, and how many were dropped where."""
    runner = _runner(name)
    run = run_history_get(runner=runner, run_id=int(run_id))
    if run is None:
        raise ApiError(f"no run {run_id} of {runner} (older runs are deleted)", status=404)
    before_gap, after_gap = run_log_lines(run)
    log = [{"at": line.at.isoformat(), "level": line.level, "logger": line.logger, "message": line.message}
           for line in before_gap + after_gap]
    return JsonResponse({**run_json(run), "log": log, "logDropped": run.log_dropped,
                         "logDroppedAt": run.log_dropped_at if run.log_dropped else None})
