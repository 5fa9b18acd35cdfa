"""Yanking a release (PEP 592): every file of one version of a project is marked yanked, with a reason, or unmarked.

A yanked file stays listed and downloadable: resolvers skip it unless a requirement pins its version with `==`
(or a lock file names it), so nothing that already depends on it breaks. Used by the API and the feed pages.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import transaction
from packaging.utils import InvalidName, canonicalize_name
from packaging.version import InvalidVersion, Version

from feeds.metadata import MAX_VERSION_LENGTH
from feeds.models import Feed, PackageFile

logger = logging.getLogger(__name__)

# pip and uv print the reason in one warning line; a longer text is not a reason but a document.
YANK_REASON_MAX_LENGTH = 1000
# The longest project name a PackageFile row holds.
PROJECT_MAX_LENGTH = PackageFile._meta.get_field("project").max_length


class YankError(Exception):
    """A yank that cannot be done; the message is meant for the user (`not_found`: no such release)."""

    def __init__(self, message: str, *, not_found: bool = False) -> None:
        super().__init__(message)
        self.not_found = not_found


@dataclass(frozen=True, kw_only=True)
class YankOutcome:
    project: str  # PEP 503 normalised
    version: str  # as asked for
    yanked: bool
    reason: str
    filenames: list[str]  # the release's files, by name


def release_yank(*, feed: Feed, project: str, version: str, reason: str, actor: str) -> YankOutcome:
    """Mark every file of `project` `version` in `feed` yanked with `reason` (may be empty); raises YankError."""
    if len(reason) > YANK_REASON_MAX_LENGTH:
        raise YankError(f"a yank reason is at most {YANK_REASON_MAX_LENGTH} characters")
    return _yanked_set(feed=feed, project=project, version=version, yanked=True, reason=reason, actor=actor)


def release_unyank(*, feed: Feed, project: str, version: str, actor: str) -> YankOutcome:
    """Clear the yank of every file of `project` `version` in `feed`; raises YankError."""
    return _yanked_set(feed=feed, project=project, version=version, yanked=False, reason="", actor=actor)


@transaction.atomic
def _yanked_set(*, feed: Feed, project: str, version: str, yanked: bool, reason: str, actor: str) -> YankOutcome:
    if len(project) > PROJECT_MAX_LENGTH or len(version) > MAX_VERSION_LENGTH:  # before any parsing
        raise YankError("the project name or version is too long")
    try:
        normalized = canonicalize_name(project, validate=True)
        wanted = Version(version)
    except InvalidName:
        raise YankError(f"invalid project name {project!r}") from None
    except InvalidVersion:
        raise YankError(f"invalid version {version!r}") from None
    rows = PackageFile.objects.select_for_update().filter(feed=feed, project=normalized).only("filename", "version")
    # Versions compare as PEP 440 says ("1.0" is "1.0.0"); an unparsable stored version matches nothing.
    ids, names = [], []
    for row in rows:
        if _same_version(row.version, wanted):
            ids.append(row.pk)
            names.append(row.filename)
    if not ids:
        raise YankError(f"no files of {normalized} {version} in feed {feed.name!r}", not_found=True)
    PackageFile.objects.filter(pk__in=ids).update(yanked=yanked, yanked_reason=reason)
    logger.info("feed %s: %s %s %s by %s%s", feed.name, normalized, version, "yanked" if yanked else "unyanked",
                actor, f" ({reason})" if reason else "")
    return YankOutcome(project=normalized, version=version, yanked=yanked, reason=reason, filenames=sorted(names))


def _same_version(text: str, wanted: Version) -> bool:
    try:
        return Version(text) == wanted
    except InvalidVersion:
        return False
