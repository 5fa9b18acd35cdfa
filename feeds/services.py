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
from proget_web.advanced_settings.selectors import setting_get

logger = logging.getLogger(__name__)


class FeedError(Exception):
    """A feed request that cannot be done; the message is meant for the user."""


def packages_root() -> Path:
    """Where new feeds' folders go: Storage.PackagesRootPath, or DATA_DIR/packages when that is empty."""
    configured = str(setting_get("Storage.PackagesRootPath"))
    if not configured:
        return Path(settings.DATA_DIR) / "packages"
    root = Path(configured)
    if not root.is_absolute():
        raise FeedError(f"Storage.PackagesRootPath must be an absolute path, not {configured!r}")
    return root


def _feed_rules_check(*, keep_latest: int, drop_path: str) -> None:
    """The rules a feed's retention and drop path follow, on create and on edit; raises FeedError."""
    if keep_latest < 0:
        raise FeedError("the number of versions to keep must be 0 (keep all) or more")
    if drop_path and not Path(drop_path).is_absolute():
        raise FeedError(f"the drop path must be an absolute path, not {drop_path!r}")


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
    _feed_rules_check(keep_latest=keep_latest, drop_path=drop_path)
    storage = packages_root() / name
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
    _feed_rules_check(keep_latest=keep_latest, drop_path=drop_path)
    feed.description = description
    feed.drop_path = drop_path
    feed.retention_keep_latest = keep_latest
    feed.retention_dry_run = dry_run
    feed.save(update_fields=["description", "drop_path", "retention_keep_latest", "retention_dry_run"])
    logger.info("feed %s changed: drop path %r, keep latest %s, dry run %s", name, drop_path, keep_latest, dry_run)
    return feed
