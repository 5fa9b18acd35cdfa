"""Changing a feed's settings from the feed pages (description, drop path, retention); the name never changes.

The storage folder is fixed when a feed is created, so an edit moves no file. Belongs with feed_create
in feeds/services.py; it lives here until that module's owner takes it over.
"""
from __future__ import annotations

import logging
from pathlib import Path

from django.db import transaction

from feeds.models import Feed
from feeds.services import FeedError

logger = logging.getLogger(__name__)


@transaction.atomic
def feed_update(*, name: str, description: str, drop_path: str, keep_latest: int, dry_run: bool) -> Feed:
    """Change feed `name`'s description, drop path and retention rule; raises FeedError (same rules as feed_create)."""
    feed = Feed.objects.select_for_update().filter(name=name).first()
    if feed is None:
        raise FeedError(f"no feed called {name!r}")
    if keep_latest < 0:
        raise FeedError("the number of versions to keep must be 0 (keep all) or more")
    if drop_path and not Path(drop_path).is_absolute():
        raise FeedError(f"the drop path must be an absolute path, not {drop_path!r}")
    feed.description = description
    feed.drop_path = drop_path
    feed.retention_keep_latest = keep_latest
    feed.retention_dry_run = dry_run
    feed.save(update_fields=["description", "drop_path", "retention_keep_latest", "retention_dry_run"])
    logger.info("feed %s changed: drop path %r, keep latest %s, dry run %s", name, drop_path, keep_latest, dry_run)
    return feed
