"""/health tells the public (load balancers) the status words only; the reasons behind them (the database's raw
error, the messenger's socket path under the data folder, the version) go to service:read API keys, to users who
may watch the service, and to the log."""
from __future__ import annotations

import logging

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission, User
from django.db import OperationalError
from django.test import Client

from api_keys.keys import SCOPE_PERMISSIONS, api_key_create
from proget_web import views

pytestmark = pytest.mark.django_db

PUBLIC_KEYS = {"status", "database", "serviceStatus"}
# A database error carrying a path, as SQLite's and PostgreSQL's drivers do.
DATABASE_ERROR = "unable to open database file /srv/secret-data/proget.sqlite3"


@pytest.fixture
def database_down(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise OperationalError(DATABASE_ERROR)

    monkeypatch.setattr(views.connection, "cursor", broken)


def _user(name: str, *perms: str) -> User:
    user = User.objects.create_user(name)
    user.user_permissions.add(*(Permission.objects.get(codename=perm) for perm in perms))
    return user


def _key(*scopes: str) -> dict[str, str]:
    """A key with `scopes`, owned by a user holding the permissions they stand for (api_keys.keys.SCOPE_PERMISSIONS)."""
    perms = [SCOPE_PERMISSIONS[scope].split(".")[1] for scope in scopes if SCOPE_PERMISSIONS[scope]]
    return {"HTTP_X_APIKEY": api_key_create(name="t", owner=_user("keyowner", *perms), scopes=scopes).token}


def test_anonymous_health_is_status_words_only() -> None:
    response = Client().get("/health")
    body = response.json()
    assert response.status_code == 200 and set(body) == PUBLIC_KEYS, body
    assert body["status"] == "OK" and body["database"] == {"status": "OK"} and body["serviceStatus"] == "Error"
    assert str(settings.DATA_DIR) not in response.content.decode()


def test_anonymous_health_hides_the_database_error_and_the_log_has_it(database_down: None,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="proget_web.views"):
        response = Client().get("/health")
    assert response.status_code == 503
    assert response.json() == {"status": "Error", "database": {"status": "Error"}, "serviceStatus": "Error"}
    assert DATABASE_ERROR in caplog.text


@pytest.mark.parametrize("who", ["service:read key", "service watcher", "superuser"])
def test_health_details_for_service_readers_and_admins(who: str) -> None:
    client = Client()
    headers: dict[str, str] = {}
    if who == "service:read key":
        headers = _key("service:read")
    elif who == "service watcher":
        client.force_login(_user("watcher", "view_service_status"))
    else:
        client.force_login(User.objects.create_superuser("root"))
    body = client.get("/health", **headers).json()
    assert body["database"]["detail"] and body["version"] and "serviceRoundTripMs" in body
    assert body["serviceDetail"].startswith("not reachable")  # no service runs in this test


@pytest.mark.parametrize("who", ["feeds:read key", "refused key", "signed-in user"])
def test_health_details_not_for_other_keys_or_users(who: str) -> None:
    client = Client()
    headers = {"feeds:read key": lambda: _key("feeds:read"), "refused key": lambda: {"HTTP_X_APIKEY": "pgk_1_bad"},
               "signed-in user": dict}[who]()
    if who == "signed-in user":
        client.force_login(_user("someone"))
    assert set(client.get("/health", **headers).json()) == PUBLIC_KEYS
