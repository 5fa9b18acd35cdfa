"""Reading feeds and their indexed packages: what the simple API, the commands and the runners show.

Only files that indexed without error are ever returned as servable.
"""
from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from itertools import groupby
from typing import Any, TypeVar

from django.db.models import QuerySet
from packaging.version import InvalidVersion, Version

from feeds.models import Feed, PackageFile

_F = TypeVar("_F")


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


def _version(text: str) -> Version:
    try:
        return Version(text)
    except InvalidVersion:  # indexing validates versions; an old row must still not break the listing
        return Version("0")


@lru_cache(maxsize=256)
def _version_ranks(versions: frozenset[str]) -> dict[str, int]:
    """Each version's place in version order, equal versions ("1.0", "1.0.0") sharing one.

    Cached per set of versions: a 1,000-file page would otherwise compare Version objects ~10,000 times on every
    request; the key is the exact set, so a new version is a new entry, never a stale order.
    """
    groups = groupby(sorted(versions, key=_version), key=_version)
    return {text: rank for rank, (_, texts) in enumerate(groups) for text in texts}


def _by_version(files: Iterable[_F]) -> list[_F]:
    """`files` (rows or values_list rows with version and filename) by version, then filename."""
    files = list(files)
    ranks = _version_ranks(frozenset(file.version for file in files))
    return sorted(files, key=lambda file: (ranks[file.version], file.filename))


def project_files(*, feed: Feed, project: str) -> list[PackageFile]:
    """The servable files of `project` (a normalised name) in `feed`, oldest version first (core metadata deferred)."""
    return _by_version(_servable(feed).filter(project=project).defer("core_metadata"))


def project_file_values(*, feed: Feed, project: str, fields: tuple[str, ...]) -> list[Any]:
    """Just version, filename and `fields` (named tuples) of `project`'s servable files, in project_files' order."""
    return _by_version(_servable(feed).filter(project=project).values_list("version", "filename", *fields, named=True))


def package_file_get(*, feed: Feed, filename: str) -> PackageFile | None:
    """The servable file called `filename` in `feed`, or None (without its core metadata, loaded only if read)."""
    return _servable(feed).filter(filename=filename).defer("core_metadata").first()


def core_metadata_get(*, feed: Feed, filename: str) -> PackageFile | None:
    """The servable file called `filename` in `feed` if its core metadata is stored, else None."""
    return _servable(feed).filter(filename=filename).exclude(core_metadata_sha256="").first()
