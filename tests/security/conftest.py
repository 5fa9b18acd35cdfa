"""Fixtures of the security tests: the messenger key, a feed for the routes that name one, and users of each kind."""
from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import Client

from feeds.models import Feed
from feeds.services import feed_create
from indexer.messenger_config import KEY_SETTING
from messenger.crypto import generate_key
from settings_store.services import setting_set
from tests.security.support import FEED


@pytest.fixture(autouse=True)
def messenger_key(db: None) -> str:
    """The cluster's messenger key, stored up front (so no request generates it as a side effect)."""
    key = generate_key()
    setting_set(name=KEY_SETTING, value=key, actor="test", source="test")
    return key


@pytest.fixture
def feed(db: None, tmp_path: Path) -> Feed:
    setting_set(name="Storage.PackagesRootPath", value=str(tmp_path / "packages"), actor="test", source="test")
    return feed_create(name=FEED)


@pytest.fixture
def superuser(db: None) -> User:
    return User.objects.create_user("root", password="pw", is_staff=True, is_superuser=True)


@pytest.fixture
def plain_user(db: None) -> User:
    return User.objects.create_user("plain", password="pw")


@pytest.fixture
def admin_client(superuser: User) -> Client:
    client = Client()
    client.force_login(superuser)
    return client
