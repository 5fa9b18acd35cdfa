"""A key sent as the basic-auth password (pip, uv, twine) costs no password hash: only the key is checked.

The suite's MD5 hasher hides PBKDF2's ~300 ms, so this counts hasher calls instead of timing them;
bench/private_resolve.py measures the speed with the production hasher.
"""
from __future__ import annotations

import base64

import pytest
from django.contrib.auth.hashers import MD5PasswordHasher
from django.contrib.auth.models import Permission, User
from django.test import Client

from api_keys.keys import api_key_create
from feeds.models import Feed
from settings_store.services import setting_set

pytestmark = pytest.mark.django_db

SIMPLE = "/pypi/main/simple/"


class CountingHasher(MD5PasswordHasher):
    """The suite's MD5 hasher, counting every hash it computes: encode does them all (verify calls it too)."""

    algorithm = "counting_md5"
    calls = 0

    def encode(self, password: str, salt: str) -> str:
        CountingHasher.calls += 1
        return super().encode(password, salt)


@pytest.fixture
def alice(settings, feed: Feed) -> User:
    """A user holding feeds.upload_package, feeds readable by logged-in users only, the hasher count at 0."""
    settings.PASSWORD_HASHERS = [f"{__name__}.CountingHasher"]
    setting_set(name="Feeds.AnonymousRead", value="false", actor="test", source="test")
    user = User.objects.create_user("alice", password="s3cret-pass")
    user.user_permissions.add(Permission.objects.get(codename="upload_package", content_type__app_label="feeds"))
    CountingHasher.calls = 0
    return user


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_a_key_as_password_reads_a_feed_without_hashing_a_password(alice: User) -> None:
    token = api_key_create(name="pip", owner=alice, scopes=["feeds:read"]).token
    for _ in range(3):
        assert Client().get(SIMPLE, HTTP_AUTHORIZATION=basic("api", token)).status_code == 200
    assert Client().get(SIMPLE, HTTP_AUTHORIZATION=basic("api", token[:-3] + "xyz")).status_code == 401
    # The key prefix alone means "a key": another user name with a key is refused (as before), unhashed too.
    assert Client().get(SIMPLE, HTTP_AUTHORIZATION=basic("alice", token)).status_code == 401
    assert CountingHasher.calls == 0
    # The counter works: a password is hashed.
    assert Client().get(SIMPLE, HTTP_AUTHORIZATION=basic("alice", "s3cret-pass")).status_code == 200
    assert CountingHasher.calls == 1


def test_a_key_as_password_uploads_without_hashing_a_password(alice: User) -> None:
    token = api_key_create(name="twine", owner=alice, scopes=["feeds:upload"]).token
    response = Client().post("/pypi/main/legacy/", {":action": "file_upload"}, HTTP_AUTHORIZATION=basic("api", token))
    assert response.status_code == 400  # past authentication and permission: the form has no file
    assert CountingHasher.calls == 0
