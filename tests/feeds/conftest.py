"""Fixtures of the feed tests: a feed whose storage folder is in the test's temp dir."""
from __future__ import annotations

from pathlib import Path

import pytest

from feeds.models import Feed
from feeds.services import feed_create
from settings_store.services import setting_set


@pytest.fixture
def feed(db: None, tmp_path: Path) -> Feed:
    setting_set(name="Storage.PackagesRootPath", value=str(tmp_path / "packages"), actor="test", source="test")
    return feed_create(name="main")
