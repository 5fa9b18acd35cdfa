"""The run history pages: a runner's runs newest first (paged by run id), and one run with its own log lines.

Server-rendered from the database (the service need not be up); the same permission as the Service Status page.
"""
from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from indexer.run_history_selectors import (
    MAX_RUN_ID,
    history_runner_known,
    run_history_get,
    run_history_page,
    run_history_retention,
    run_log_lines,
)
from proget_web.administration.permissions import permission_required_or_403
from proget_web.status.consumers import VIEW_PERMISSION

# Runs per page: a screenful; the API lets a script ask for up to 100.
PAGE_SIZE = 25


def _known_runner(name: str) -> str:
    if not history_runner_known(name=name):
        raise Http404(f"no task runner called {name!r}")
    return name


def _run_id(request: HttpRequest, parameter: str) -> int | None:
    """A run id query parameter; a missing or malformed one counts as absent (the page shows the newest runs)."""
    text = request.GET.get(parameter, "")
    if text.isascii() and text.isdigit() and 0 < int(text) <= MAX_RUN_ID:
        return int(text)
    return None


@permission_required_or_403(VIEW_PERMISSION)
def runner_history(request: HttpRequest, name: str) -> HttpResponse:
    runner = _known_runner(name)
    page = run_history_page(runner=runner, limit=PAGE_SIZE, before=_run_id(request, "before"),
                            after=_run_id(request, "after"))
    return render(request, "status/runner_history.html", {
        "runner": runner, "page": page, "retention": run_history_retention(),
    })


@permission_required_or_403(VIEW_PERMISSION)
def runner_run(request: HttpRequest, name: str, run_id: int) -> HttpResponse:
    runner = _known_runner(name)
    run = run_history_get(runner=runner, run_id=run_id)
    if run is None:
        raise Http404(f"no run {run_id} of {runner} (older runs are deleted)")
    before_gap, after_gap = run_log_lines(run)
    return render(request, "status/runner_run.html", {
        "runner": runner, "run": run, "lines": before_gap, "lines_after_gap": after_gap,
    })
