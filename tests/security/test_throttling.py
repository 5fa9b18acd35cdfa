"""Password guessing is throttled (django-axes): per user and per client IP, on the login page and on HTTP basic
auth, with 429 + Retry-After; a locked-out right password looks exactly like a wrong one; keys are never throttled.
"""
from __future__ import annotations

import base64
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from api_keys.keys import api_key_create
from feeds.models import Feed
from settings_store.services import setting_set
from tests.feeds.servers import daphne_serving
from tests.processes import manage, migrate
from tests.security.support import FEED

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"
SIMPLE = f"/pypi/{FEED}/simple/"
RIGHT = "right-pass-1"
LIMIT = settings.AXES_FAILURE_LIMIT


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def login(user: str, password: str, *, ip: str = "10.0.0.1"):
    return Client(REMOTE_ADDR=ip).post(LOGIN, {"username": user, "password": password})


def read(user: str, password: str, *, ip: str = "10.0.0.1"):
    return Client(REMOTE_ADDR=ip).get(SIMPLE, HTTP_AUTHORIZATION=basic(user, password))


@pytest.fixture
def victim(feed: Feed) -> User:
    setting_set(name="Feeds.AnonymousRead", value="false", actor="test", source="test")
    return User.objects.create_user("victim", password=RIGHT)


def assert_locked_out(right, wrong) -> None:
    """Both answers are the same 429 with Retry-After: the lockout tells a right password from no wrong one."""
    assert right.status_code == wrong.status_code == 429
    assert int(right["Retry-After"]) == int(wrong["Retry-After"]) == settings.AXES_COOLOFF_TIME.total_seconds()
    assert right.content == wrong.content
    assert "sessionid" not in right.cookies


def test_the_limit_is_sensible() -> None:
    assert 3 <= LIMIT <= 20 and timedelta(minutes=1) <= settings.AXES_COOLOFF_TIME <= timedelta(hours=1)


def test_the_login_page_locks_a_user_out_whatever_the_ip(victim: User) -> None:
    for attempt in range(LIMIT - 1):
        assert login("victim", "guess", ip=f"10.0.1.{attempt}").status_code == 200  # the form again, with an error
    assert login("victim", RIGHT, ip="10.0.2.1").status_code == 302  # one below the limit: still allowed
    assert login("victim", "guess", ip="10.0.2.2").status_code == 429
    assert_locked_out(login("victim", RIGHT, ip="10.0.3.1"), login("victim", "guess", ip="10.0.3.2"))


def test_basic_auth_locks_a_user_out(victim: User) -> None:
    for attempt in range(LIMIT - 1):
        assert read("victim", "guess", ip=f"10.0.1.{attempt}").status_code == 401
    assert read("victim", "guess", ip="10.0.2.2").status_code == 429  # the failure that reaches the limit
    assert_locked_out(read("victim", RIGHT, ip="10.0.3.1"), read("victim", "guess", ip="10.0.3.2"))


def test_one_ip_guessing_many_users_is_locked_out(victim: User) -> None:
    for attempt in range(LIMIT - 1):
        assert read(f"user{attempt}", "guess", ip="10.9.9.9").status_code == 401
    assert read("someone", "guess", ip="10.9.9.9").status_code == 429
    assert_locked_out(read("victim", RIGHT, ip="10.9.9.9"), login("victim", "guess", ip="10.9.9.9"))
    assert read("victim", RIGHT, ip="10.0.0.2").status_code == 200  # from elsewhere, the user is fine


def test_right_passwords_and_keys_are_never_throttled(victim: User) -> None:
    for _ in range(LIMIT + 1):
        assert login("victim", RIGHT).status_code == 302
        assert read("victim", RIGHT).status_code == 200
    for attempt in range(LIMIT):
        read(f"user{attempt}", "guess", ip="10.9.9.9")
    token = api_key_create(name="ci", owner=victim, scopes=["feeds:read"]).token
    assert read("victim", RIGHT, ip="10.9.9.9").status_code == 429
    assert read("api", token, ip="10.9.9.9").status_code == 200  # a key is not a guessable password


def test_the_lockout_ends_after_the_cool_off(victim: User) -> None:
    for _ in range(LIMIT):
        read("victim", "guess")
    assert read("victim", RIGHT).status_code == 429
    AccessAttempt.objects.update(attempt_time=timezone.now() - settings.AXES_COOLOFF_TIME - timedelta(seconds=1))
    assert read("victim", RIGHT).status_code == 200


def test_a_failed_upload_login_is_401_and_counted_without_parsing_the_upload(victim: User) -> None:
    """twine sends the README as a form field: past Django's in-memory cap, parsing the body would answer 400."""
    big = {":action": "file_upload", "description": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1),
           "content": SimpleUploadedFile("pkg-1.0.tar.gz", b"not a package")}
    response = Client().post(f"/pypi/{FEED}/legacy/", big, HTTP_AUTHORIZATION=basic("victim", "guess"))
    assert response.status_code == 401
    attempt = AccessAttempt.objects.get(username="victim")
    assert attempt.failures_since_start == 1 and attempt.post_data == ""


@pytest.mark.slow
def test_a_real_web_node_answers_429_with_retry_after(tmp_path: Path) -> None:
    """Through daphne (the ASGI path) with the production settings: axes' tables come with `migrate`."""
    data = tmp_path / "data"
    migrate(data)
    manage(data, "feeds", "create", FEED)
    manage(data, "settings", "set", "Feeds.AnonymousRead", "false")
    statuses = []
    with daphne_serving(data, log=tmp_path / "daphne.log") as base:
        for _ in range(LIMIT + 1):
            request = urllib.request.Request(f"{base}{SIMPLE}", headers={"Authorization": basic("nobody", "guess")})
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=10)
            statuses.append(refused.value.code)
    assert statuses == [401] * (LIMIT - 1) + [429, 429]
    assert int(refused.value.headers["Retry-After"]) > 0
