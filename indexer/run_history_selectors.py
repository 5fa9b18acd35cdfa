"""Reading the run history: the runners that have one, a runner's runs newest first (paged by run id), one run
with its log lines, and what is kept. For the history pages and the JSON API; nothing here writes."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from indexer.models import RunHistory
from indexer.run_history import DAYS_SETTING, LOG_LINES_SETTING, RUNS_SETTING
from indexer.tasks import default_runners
from settings_store.selectors import setting_get

# Run ids are 64-bit database keys: a larger number names no run (and must not reach the database driver).
MAX_RUN_ID = 2**63 - 1


def history_runner_names() -> list[str]:
    """The runners a service node of this configuration has, in the Status page's order."""
    return [runner.name for runner in default_runners()]


def history_runner_known(*, name: str) -> bool:
    """Whether `name` has a run history: a runner of this configuration, or one that recorded runs (a runner
    configured on the service node only, or one removed since)."""
    return name in history_runner_names() or RunHistory.objects.filter(runner=name).exists()


@dataclass(frozen=True, kw_only=True)
class RunsPage:
    """Some of a runner's runs, newest first, and the run ids that reach the pages around them."""

    runs: list[RunHistory]  # without their log (deferred)
    older: int | None  # `before` for the next older page; None: these are the oldest
    newer: int | None  # `after` for the next newer page; None: these are the newest


def run_history_page(*, runner: str, limit: int, before: int | None = None, after: int | None = None) -> RunsPage:
    """Up to `limit` runs of `runner` newest first: the latest, those before run id `before`, or those after `after`."""
    rows = RunHistory.objects.filter(runner=runner).defer("log")
    if after is not None:
        runs = list(rows.filter(id__gt=after).order_by("id")[:limit + 1])
        has_newer, runs = len(runs) > limit, runs[:limit][::-1]
        has_older = rows.filter(id__lte=after).exists()
    else:
        older_rows = rows.filter(id__lt=before) if before is not None else rows
        runs = list(older_rows.order_by("-id")[:limit + 1])
        has_older, runs = len(runs) > limit, runs[:limit]
        has_newer = before is not None and rows.filter(id__gte=before).exists()
    return RunsPage(
        runs=runs,
        older=(runs[-1].id if runs else after + 1) if has_older else None,
        newer=(runs[0].id if runs else before - 1) if has_newer else None,
    )


def run_history_get(*, runner: str, run_id: int) -> RunHistory | None:
    """Run `run_id` of `runner` with its log, or None."""
    if not 0 < run_id <= MAX_RUN_ID:
        return None
    return RunHistory.objects.filter(runner=runner, id=run_id).first()


@dataclass(frozen=True, kw_only=True)
class LogLine:
    at: datetime
    level: str
    logger: str
    message: str


def run_log_lines(run: RunHistory) -> tuple[list[LogLine], list[LogLine]]:
    """The run's kept log lines as (before the dropped ones, after them); the second is empty when none dropped."""
    lines = [LogLine(at=datetime.fromtimestamp(line["at"], UTC), level=line["level"], logger=line["logger"],
                     message=line["message"]) for line in run.log]
    if not run.log_dropped:
        return lines, []
    return lines[:run.log_dropped_at], lines[run.log_dropped_at:]


def run_history_retention() -> dict[str, Any]:
    """What the history keeps: days, runs per runner, log lines per run (the settings' current values)."""
    return {"days": setting_get(DAYS_SETTING), "runs": setting_get(RUNS_SETTING),
            "logLines": setting_get(LOG_LINES_SETTING)}
