"""Applying a feed's retention rule: keep the latest N versions of each project, delete the older files.

Versions are ordered as `packaging.version` orders them; a file whose version does not parse is never
deleted. In dry-run mode nothing is touched: the report (and the log) lists what would go.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import transaction
from packaging.version import InvalidVersion, Version

from feeds.models import Feed, PackageFile
from feeds.storage import FileRefused

logger = logging.getLogger(__name__)


@dataclass(kw_only=True)
class RetentionReport:
    """What one retention pass over one feed did, or would do in dry-run mode."""

    keep: int = 0  # versions kept per project; 0 keeps all
    dry_run: bool = False
    doomed: list[str] = field(default_factory=list)  # deleted (or, in dry-run, would be deleted)
    failed: list[str] = field(default_factory=list)  # could not be deleted; kept, with their row
    stopped: bool = False

    def summary(self) -> str:
        if not self.keep:
            return "no retention rule (keeps every version)"
        verb = "would delete" if self.dry_run else "deleted"
        text = f"keep latest {self.keep}: {verb} {len(self.doomed)} file(s)"
        if self.doomed:
            text += f" ({', '.join(self.doomed)})"
        if self.failed:
            text += f"; could not delete {', '.join(self.failed)}"
        return f"{text}; stopped early" if self.stopped else text


def retention_candidates(*, feed: Feed, keep: int) -> list[PackageFile]:
    """The indexed files of `feed` outside the latest `keep` versions of their project (by project, oldest first)."""
    if keep <= 0:
        return []
    versions: dict[str, dict[Version, list[PackageFile]]] = defaultdict(lambda: defaultdict(list))
    rows = PackageFile.objects.filter(feed=feed, index_error="").defer("core_metadata")  # KiBs per wheel, not needed
    for row in rows.order_by("project", "filename"):
        try:
            versions[row.project][Version(row.version)].append(row)
        except InvalidVersion:
            continue  # not orderable: never a candidate
    doomed = []
    for project in sorted(versions):
        by_version = versions[project]
        for version in sorted(by_version)[:-keep]:  # oldest first
            doomed.extend(by_version[version])
    return doomed


def feed_retention_apply(*, feed: Feed, stopping: Callable[[], bool] = lambda: False) -> RetentionReport:
    """Apply `feed`'s rule (`retention_keep_latest`, `retention_dry_run`); return and log the report."""
    report = RetentionReport(keep=feed.retention_keep_latest, dry_run=feed.retention_dry_run)
    for row in retention_candidates(feed=feed, keep=report.keep):
        if stopping():
            report.stopped = True
            break
        if report.dry_run or _delete(feed=feed, row=row):
            report.doomed.append(row.filename)
        else:
            report.failed.append(row.filename)
    if report.keep:
        logger.info("feed %s retention%s: %s", feed.name, " (dry run)" if report.dry_run else "", report.summary())
    return report


@transaction.atomic
def _delete(*, feed: Feed, row: PackageFile) -> bool:
    """Remove the file from storage, then its row (a file already gone only loses its row)."""
    try:
        _unlink(feed=feed, name=row.filename)
    except (FileRefused, OSError) as exc:
        logger.warning("feed %s retention: cannot delete %s: %s", feed.name, row.filename, exc)
        return False
    row.delete()
    logger.info("feed %s retention: deleted %s (%s %s)", feed.name, row.filename, row.project, row.version)
    return True


def _unlink(*, feed: Feed, name: str) -> None:
    """Delete entry `name` of the feed folder (a symlink itself, never what it points to)."""
    if not name or "/" in name or name in {".", ".."}:
        raise FileRefused(f"{name!r} is not a file name")
    (feed.storage / name).unlink(missing_ok=True)
