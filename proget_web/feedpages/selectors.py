"""What the feed pages read: per-feed counts, a feed's files grouped by project, its reindex triggers.

Reads only: nothing here writes, and nothing here talks to the service (see progress.py for that).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Q, QuerySet
from packaging.version import InvalidVersion, Version

from feeds.models import Feed, PackageFile
from indexer.models import Trigger

# The feed page lists this many of the feed's latest reindex requests; older ones are in the service log.
TRIGGERS_SHOWN = 10
ACTIVE_STATES = (Trigger.State.PENDING, Trigger.State.RUNNING)


def feeds_overview() -> QuerySet[Feed]:
    """Every feed by name, annotated with `project_count`, `file_count` (servable) and `error_count`."""
    servable = Q(files__index_error="")
    return Feed.objects.order_by("name").annotate(
        project_count=Count("files__project", filter=servable, distinct=True),
        file_count=Count("files", filter=servable),
        error_count=Count("files", filter=~servable),
    )


@dataclass(frozen=True, kw_only=True)
class ProjectFiles:
    project: str
    files: list[PackageFile]  # oldest version first

    @property
    def latest(self) -> PackageFile:
        return self.files[-1]


@dataclass(frozen=True, kw_only=True)
class FeedContents:
    projects: list[ProjectFiles]  # servable files, by project name
    errors: list[PackageFile]  # files that could not be indexed (never served), by filename

    @property
    def file_count(self) -> int:
        return sum(len(project.files) for project in self.projects)


def _version_key(file: PackageFile) -> tuple[Version, str]:
    try:
        return Version(file.version), file.filename
    except InvalidVersion:  # indexing validates versions; an old row must still not break the page
        return Version("0"), file.filename


def feed_contents(*, feed: Feed) -> FeedContents:
    """The feed's servable files grouped by project (oldest version first) and its unindexable files."""
    projects: dict[str, list[PackageFile]] = {}
    errors: list[PackageFile] = []
    for file in PackageFile.objects.filter(feed=feed).order_by("project", "filename"):
        if file.index_error:
            errors.append(file)
        else:
            projects.setdefault(file.project, []).append(file)
    return FeedContents(
        projects=[
            ProjectFiles(project=name, files=sorted(files, key=_version_key)) for name, files in projects.items()
        ],
        errors=sorted(errors, key=lambda file: file.filename),
    )


def feed_triggers_recent(*, feed: str, limit: int = TRIGGERS_SHOWN) -> list[Trigger]:
    """The feed's latest reindex triggers, newest first."""
    return list(
        Trigger.objects.filter(kind=Trigger.Kind.FEED_REINDEX, target=feed).order_by("-created_at", "-id")[:limit]
    )


def feed_reindex_active(*, triggers: list[Trigger]) -> bool:
    """Whether any of these triggers still waits or runs (the page then follows it live)."""
    return any(trigger.state in ACTIVE_STATES for trigger in triggers)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def trigger_json(trigger: Trigger) -> dict:
    """A trigger as status.json shows it."""
    return {
        "id": trigger.id,
        "state": trigger.state,
        "requestedBy": trigger.requested_by,
        "createdAt": _iso(trigger.created_at),
        "claimedAt": _iso(trigger.claimed_at),
        "finishedAt": _iso(trigger.finished_at),
        "result": trigger.result,
    }
