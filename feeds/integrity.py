"""Checking a feed's stored files against the sha256 recorded when they were indexed.

Only reads: a file whose content changed or that vanished is flagged on its PackageFile row
(`integrity_error`) and in the report; a file that matches again has its flag cleared. No file is modified.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from django.utils import timezone

from feeds.models import Feed, PackageFile
from feeds.placement import file_sha256
from feeds.storage import FileRefused, Progress, file_locate

logger = logging.getLogger(__name__)

MISSING, CHANGED = "missing", "changed"



@dataclass(kw_only=True)
class IntegrityReport:
    """What one check of one feed found (file names in each list)."""

    checked: int = 0
    changed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # vanished, or no longer a regular file in the folder
    stopped: bool = False

    def summary(self) -> str:
        text = f"{self.checked} file(s) checked, {len(self.changed)} changed, {len(self.missing)} missing"
        flagged = self.changed + self.missing
        if flagged:
            text += f" ({', '.join(flagged)})"
        return f"{text}; stopped early" if self.stopped else text


def feed_integrity_check(
    *, feed: Feed, progress: Progress | None = None, stopping: Callable[[], bool] = lambda: False,
) -> IntegrityReport:
    """Hash every indexed file of `feed`, flag the rows of changed or missing ones, return the report."""
    report = IntegrityReport()
    root = feed.storage.resolve()
    rows = list(PackageFile.objects.filter(feed=feed, index_error="").values_list("pk", "filename", "sha256"))
    for position, (pk, name, recorded) in enumerate(rows):
        if stopping():
            report.stopped = True
            break
        if progress is not None:
            progress(100 * position / len(rows), f"{feed.name}: {name}")
        kind, error = _problem(root=root, name=name, recorded=recorded)
        report.checked += 1
        if kind == MISSING:
            report.missing.append(name)
        elif kind == CHANGED:
            report.changed.append(name)
        # Only the row as it was hashed: one the indexer rewrote meanwhile is checked next time.
        PackageFile.objects.filter(pk=pk, sha256=recorded).update(
            integrity_error=error, integrity_checked_at=timezone.now(),
        )
    if report.changed or report.missing:
        logger.warning("feed %s integrity: %s", feed.name, report.summary())
    else:
        logger.info("feed %s integrity: %s", feed.name, report.summary())
    return report


def _problem(*, root: Path, name: str, recorded: str) -> tuple[str, str]:
    """("", "") when the file matches its record; else (MISSING or CHANGED, what is wrong)."""
    try:
        path, _ = file_locate(root=root, name=name)
        actual = file_sha256(path=path)
    except FileNotFoundError:
        return MISSING, "missing: the file is no longer in the feed folder"
    except (FileRefused, OSError) as exc:
        return MISSING, f"missing: cannot read the file: {exc}"
    if actual != recorded:
        return CHANGED, f"changed: sha256 is {actual}, {recorded} when indexed"
    return "", ""
