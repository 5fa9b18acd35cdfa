"""Creating and deleting feeds: validated names, one storage folder per feed, case-insensitive uniqueness.

Deleting a feed forgets its index; the package files stay on disk for an admin to remove or re-use.
"""
from __future__ import annotations

import logging
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from feeds.models import Feed
from feeds.naming import feed_name_validate
from node_base.paths import DATA_PACKAGES_FOLDER, configured_path_check, data_folder, paths_overlap
from settings_store.registry import SettingValueError
from settings_store.selectors import setting_get

logger = logging.getLogger(__name__)


class FeedError(Exception):
    """A feed request that cannot be done; the message is meant for the user."""


def packages_root() -> Path:
    """Where new feeds' folders go: Storage.PackagesRootPath, or DATA_DIR/packages when that is empty.

    A value stored before the setting was validated is checked again here (FeedError), never used as it is.
    """
    try:
        configured = str(setting_get("Storage.PackagesRootPath"))  # parsed by its validator, packages_root_check
    except SettingValueError as exc:
        raise FeedError(str(exc)) from None
    return Path(configured) if configured else Path(settings.DATA_DIR) / DATA_PACKAGES_FOLDER


def drop_path_problem(*, drop_path: str, feed_name: str, storage: Path) -> str | None:
    """Why `drop_path` cannot be feed `feed_name`'s drop path (its storage folder `storage`), or None.

    The drop monitor moves files out of that folder, so it must overlap (be, contain or lie inside) none of the
    node's own folders: the data folder, the packages root, this feed's storage, another feed's storage or drop path.
    """
    try:
        path = configured_path_check(drop_path, what="the drop path")
    except ValueError as exc:
        return str(exc)
    if paths_overlap(path, storage):  # "already stored" would delete the stored file
        return f"the drop path must not be inside the feed's own folder or contain it ({storage})"
    if paths_overlap(path, data_folder()):
        return f"the drop path must be outside the data folder and not contain it ({data_folder()})"
    try:
        root: Path | None = packages_root()
    except FeedError:
        root = None  # no feed can be created under an invalid root; the other rules still hold
    if root is not None and paths_overlap(path, root):
        return f"the drop path must be outside the packages root and not contain it ({root})"
    others = Feed.objects.exclude(name=feed_name).values_list("name", "storage_path", "drop_path")
    for other, other_storage, other_drop in others:
        for folder, what in ((other_storage, "folder"), (other_drop, "drop path")):
            if folder and paths_overlap(path, folder):
                return f"the drop path overlaps feed {other}'s {what} ({folder})"
    return None


def _feed_rules_check(*, name: str, storage: Path, keep_latest: int, drop_path: str) -> None:
    """The rules a feed's retention and drop path follow, on create and on edit; raises FeedError."""
    if keep_latest < 0:
        raise FeedError("the number of versions to keep must be 0 (keep all) or more")
    if drop_path:
        problem = drop_path_problem(drop_path=drop_path, feed_name=name, storage=storage)
        if problem:
            raise FeedError(problem)


@transaction.atomic
def feed_create(
    *, name: str, description: str = "", drop_path: str = "", keep_latest: int = 0, dry_run: bool = False,
) -> Feed:
    """Create feed `name` and its storage folder (`<packages root>/<name>`); raises FeedError."""
    try:
        feed_name_validate(name)
    except ValidationError as exc:
        raise FeedError(exc.messages[0]) from None
    if Feed.objects.filter(name__iexact=name).exists():
        raise FeedError(f"a feed called {name!r} already exists (feed names ignore case)")
    storage = packages_root() / name
    _feed_rules_check(name=name, storage=storage, keep_latest=keep_latest, drop_path=drop_path)
    storage.mkdir(parents=True, exist_ok=True)
    feed = Feed.objects.create(
        name=name, description=description, storage_path=str(storage), drop_path=drop_path,
        retention_keep_latest=keep_latest, retention_dry_run=dry_run,
    )
    logger.info("feed %s created, storage %s", name, storage)
    return feed


@transaction.atomic
def feed_delete(*, name: str) -> Feed:
    """Delete feed `name` and its index (not its files); returns the deleted feed; raises FeedError."""
    feed = Feed.objects.select_for_update().filter(name=name).first()
    if feed is None:
        raise FeedError(f"no feed called {name!r}")
    feed.delete()
    logger.info("feed %s deleted; its files stay in %s", name, feed.storage_path)
    return feed


@transaction.atomic
def feed_update(*, name: str, description: str, drop_path: str, keep_latest: int, dry_run: bool) -> Feed:
    """Change feed `name`'s description, drop path and retention rule; the name and storage folder never change.

    Raises FeedError (same rules as feed_create).
    """
    feed = Feed.objects.select_for_update().filter(name=name).first()
    if feed is None:
        raise FeedError(f"no feed called {name!r}")
    _feed_rules_check(name=feed.name, storage=feed.storage, keep_latest=keep_latest, drop_path=drop_path)
    feed.description = description
    feed.drop_path = drop_path
    feed.retention_keep_latest = keep_latest
    feed.retention_dry_run = dry_run
    feed.save(update_fields=["description", "drop_path", "retention_keep_latest", "retention_dry_run"])
    logger.info("feed %s changed: drop path %r, keep latest %s, dry run %s", name, drop_path, keep_latest, dry_run)
    return feed
