"""What the feed pages read: per-feed counts, one page of a feed's files (searched by project), its reindex triggers.

Reads only: nothing here writes, and nothing here talks to the service (see progress.py for that).
"""
from __future__ import annotations

from dataclasses import dataclass

from django.core.paginator import Page, Paginator
from django.db.models import Count, Q, QuerySet

from feeds.models import Feed, PackageFile
from feeds.naming import project_normalize
from indexer.models import Trigger
from indexer.trigger_json import trigger_as_json

# The feed page lists this many of the feed's latest reindex requests; older ones are in the service log.
TRIGGERS_SHOWN = 10
# One page of the file list: a screenful to scan, and a page that renders in a few ms whatever the feed's size.
FILES_PER_PAGE = 50
# Unindexable files shown above the list; past this many the count says how many more there are.
ERRORS_SHOWN = 20
# The columns the file list shows (the rest of a row, e.g. a long summary, is not read).
LISTED_FIELDS = ("filename", "project", "version", "requires_python", "size", "uploaded_at")
ACTIVE_STATES = (Trigger.State.PENDING, Trigger.State.RUNNING)
# What feeds.js reads of a trigger, in this order; kind and target are the page's own (a reindex of this feed).
STATUS_TRIGGER_FIELDS = ("id", "state", "requestedBy", "createdAt", "claimedAt", "finishedAt", "result")


def feeds_overview() -> QuerySet[Feed]:
    """Every feed by name, annotated with `project_count`, `file_count` (servable) and `error_count`."""
    servable = Q(files__index_error="")
    return Feed.objects.order_by("name").annotate(
        project_count=Count("files__project", filter=servable, distinct=True),
        file_count=Count("files", filter=servable),
        error_count=Count("files", filter=~servable),
    )


@dataclass(frozen=True, kw_only=True)
class FeedListing:
    page: Page  # of servable PackageFile rows, by project then filename
    query: str  # the search as typed (empty: every project)
    file_count: int  # servable files in the feed, whatever the search
    project_count: int
    errors: list[PackageFile]  # the first ERRORS_SHOWN files that could not be indexed, by filename
    error_count: int


def feed_listing(*, feed: Feed, query: str = "", page: str | None = None) -> FeedListing:
    """One page of the feed's servable files whose project name contains `query`, with the feed's counts.

    A `page` that is not a number is page 1, one past the end the last page (Paginator.get_page): never an error.
    """
    servable = Q(index_error="")
    files = PackageFile.objects.filter(feed=feed)
    # One pass over the feed's rows for every count the page shows.
    counts = files.aggregate(files=Count("id", filter=servable), errors=Count("id", filter=~servable),
                             projects=Count("project", filter=servable, distinct=True))
    rows = files.filter(servable)
    needle = project_normalize(query) if query.strip() else ""
    if needle:
        rows = rows.filter(project__contains=needle)
    paginator = Paginator(rows.order_by("project", "filename").only(*LISTED_FIELDS), FILES_PER_PAGE)
    if not needle:
        paginator.count = counts["files"]  # known already: spares the paginator its own COUNT query
    errors = files.exclude(servable).order_by("filename")[:ERRORS_SHOWN] if counts["errors"] else []
    return FeedListing(
        page=paginator.get_page(page),
        query=query,
        file_count=counts["files"],
        project_count=counts["projects"],
        errors=list(errors),
        error_count=counts["errors"],
    )


def feed_triggers_recent(*, feed: str, limit: int = TRIGGERS_SHOWN) -> list[Trigger]:
    """The feed's latest reindex triggers, newest first."""
    return list(
        Trigger.objects.filter(kind=Trigger.Kind.FEED_REINDEX, target=feed).order_by("-created_at", "-id")[:limit]
    )


def feed_reindex_active(*, triggers: list[Trigger]) -> bool:
    """Whether any of these triggers still waits or runs (the page then follows it live)."""
    return any(trigger.state in ACTIVE_STATES for trigger in triggers)


def trigger_json(trigger: Trigger) -> dict:
    """A trigger as status.json shows it: the core's JSON (indexer.trigger_json), STATUS_TRIGGER_FIELDS of it."""
    full = trigger_as_json(trigger)
    return {field: full[field] for field in STATUS_TRIGGER_FIELDS}
