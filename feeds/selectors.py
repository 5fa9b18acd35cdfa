"""Reading feeds and their indexed packages: what the simple API, the commands and the runners show.

Only files that indexed without error are ever returned as servable.
"""
from __future__ import annotations

from django.db.models import QuerySet
from packaging.version import InvalidVersion, Version

from feeds.models import Feed, PackageFile


def feed_names(*, only: str | None = None) -> list[str]:
    """The configured feeds' names, sorted (just `only` when a feed has that name)."""
    feeds = Feed.objects.all() if only is None else Feed.objects.filter(name=only)
    return list(feeds.order_by("name").values_list("name", flat=True))


def feed_get(*, name: str) -> Feed | None:
    """The feed called `name`, or None."""
    return Feed.objects.filter(name=name).first()


def feeds_list() -> QuerySet[Feed]:
    """Every feed, by name."""
    return Feed.objects.order_by("name")


def _servable(feed: Feed) -> QuerySet[PackageFile]:
    """Files pip may see: indexed without error and not flagged by Feed Integrity (changed or missing)."""
    return PackageFile.objects.filter(feed=feed, index_error="", integrity_error="")


def feed_projects(*, feed: Feed) -> list[str]:
    """The normalised names of the projects with at least one servable file, sorted."""
    return list(_servable(feed).order_by("project").values_list("project", flat=True).distinct())


def _version_key(file: PackageFile) -> tuple[Version, str]:
    try:
        return Version(file.version), file.filename
    except InvalidVersion:  # indexing validates versions; an old row must still not break the listing
        return Version("0"), file.filename


def project_files(*, feed: Feed, project: str) -> list[PackageFile]:
    """The servable files of `project` (a normalised name) in `feed`, oldest version first."""
    return sorted(_servable(feed).filter(project=project), key=_version_key)


def package_file_get(*, feed: Feed, filename: str) -> PackageFile | None:
    """The servable file called `filename` in `feed`, or None."""
    return _servable(feed).filter(filename=filename).first()
