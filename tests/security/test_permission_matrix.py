"""Every route of the web node against the permission matrix, collected from the resolver (new pages included).

Anonymous GET: the login page (with ?next=) or a refusal, except the public routes listed here with their answer.
POST: refused without a CSRF token, except the CSRF-exempt routes (twine uploads, the API, /metrics), which
authenticate by key or password only: a browser's session cookie alone gets 401 there.
"""
from __future__ import annotations

from urllib.parse import quote

import pytest
from django.contrib.auth.models import User
from django.test import Client

from api_keys.keys import api_key_create
from api_keys.models import SCOPE_NAMES, ApiKey
from feeds.models import Feed
from indexer.models import Trigger
from settings_store.models import SettingChange
from settings_store.services import setting_set
from tests.security.support import Route, http_routes

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"
CSRF_PAGE = "This form could not be accepted"
FRIENDLY_403 = "You can't open this page"

# Routes anyone may GET, with the status an anonymous visitor gets (the feed exists; the project and file do not).
PUBLIC_GET = {
    "health": 200,
    "login": 200,
    "api-openapi": 200,
    "api-not-found": 404,  # a JSON 404 for any unknown /api/ path: no data
    # PyPI simple API and downloads: Feeds.AnonymousRead is on by default.
    "feeds:simple-index": 200,
    "feeds:simple-project": 404,
    "feeds:download": 404,
    "feeds:core-metadata": 404,  # PEP 658 metadata: read like a download
}
# Routes that answer GET with a refusal of the method (they are POST-only), whoever asks.
POST_ONLY = {"logout", "feeds:legacy-upload", "feed-reindex", "feed-upload"}
# Routes that authenticate by API key (or the metrics IP allowlist): 401 without one, never the login page.
KEY_ONLY = {"metrics", "api-settings-list", "api-settings-set", "api-service-status", "api-runner-action",
            "api-feed-reindex", "api-trigger", "api-feed-yank", "api-feed-unyank", "api-runner-history",
            "api-runner-run"}
# Key routes a feeds:read key opens, which every active user may hold (api_keys.keys.SCOPE_PERMISSIONS): no permission.
EVERY_USER = {"api-trigger"}
# The documented CSRF-exempt routes (docs/security.md): they never accept a session cookie as authentication.
# api-openapi: public and read-only; exempt so a POST gets the API's JSON 405, not the CSRF page.
CSRF_EXEMPT = KEY_ONLY | {"feeds:legacy-upload", "api-not-found", "api-openapi"}
# Exempt routes that hold no data, so a session cookie has nothing to unlock there.
EXEMPT_WITHOUT_DATA = {"api-not-found", "api-openapi"}
# Pages that need an administration permission: a signed-in user without it gets the friendly 403.
PERMISSION_PAGES = {"advanced-settings", "cluster", "cluster-node-remove", "cluster-node-endpoint", "service-status",
                    "api-keys", "feed-edit", "feed-delete", "runner-history", "runner-run"}
# Users and groups (Django's admin, proget_web/administration/users_admin.py): superusers and staff with auth
# permissions only; anyone else signed in gets the friendly 403, an anonymous visitor the site's login page.
USER_ADMIN_PAGES = {f"admin:{name}" for name in (
    "index", "logout", "password_change", "password_change_done", "autocomplete", "jsi18n", "view_on_site",
    "app_list", "auth_user_changelist", "auth_user_add", "auth_user_change", "auth_user_password_change",
    "auth_user_history", "auth_user_delete", "auth_group_changelist", "auth_group_add", "auth_group_change",
    "auth_group_history", "auth_group_delete")}
PERMISSION_PAGES |= USER_ADMIN_PAGES

ROUTES = http_routes()


def _ids(route: Route) -> str:
    return route.name


def _login_redirect(route: Route) -> str:
    return f"{LOGIN}?next={quote(route.path, safe='/')}"


def _written() -> tuple[int, ...]:
    """Counts of what a POST could create; compared before and after to show a refusal changed nothing."""
    return (SettingChange.objects.count(), Trigger.objects.count(), Feed.objects.count(), ApiKey.objects.count())


def test_the_matrix_names_only_routes_that_exist() -> None:
    names = {route.name for route in ROUTES}
    for table in (PUBLIC_GET, POST_ONLY, KEY_ONLY, CSRF_EXEMPT, PERMISSION_PAGES, EVERY_USER):
        assert set(table) <= names, f"stale entries: {set(table) - names}"


def test_every_administration_route_is_a_permission_page() -> None:
    admin = {route.name for route in ROUTES if route.path.startswith("/administration/")}
    assert admin and admin <= PERMISSION_PAGES


def test_every_users_admin_route_is_classified() -> None:
    admin = {route.name for route in ROUTES if route.path.startswith("/admin/")}
    assert admin == USER_ADMIN_PAGES


def test_csrf_exempt_routes_are_exactly_the_documented_ones() -> None:
    exempt = {route.name for route in ROUTES if route.csrf_exempt}
    assert exempt == CSRF_EXEMPT
    for route in ROUTES:
        if route.csrf_exempt:
            assert route.path.startswith("/api/") or route.path == "/metrics" or route.path.endswith("/legacy/")


@pytest.mark.parametrize("route", ROUTES, ids=_ids)
def test_anonymous_get(route: Route, feed: Feed) -> None:
    response = Client().get(route.path)
    if route.name in PUBLIC_GET:
        assert response.status_code == PUBLIC_GET[route.name]
    elif route.name in POST_ONLY:
        assert response.status_code == 405
    elif route.name in KEY_ONLY:
        # GET on a POST-only API route is refused for the method first (405), before the key is looked at.
        assert response.status_code in (401, 405)
        if response.status_code == 401:
            assert response["WWW-Authenticate"].startswith("Basic")
            assert response.json()["error"]
    else:
        assert response.status_code == 302, f"{route} answered {response.status_code} to an anonymous visitor"
        assert response.url == _login_redirect(route)


@pytest.mark.parametrize("name", ["feeds:simple-index", "feeds:simple-project", "feeds:download",
                                  "feeds:core-metadata"])
def test_feeds_need_credentials_when_anonymous_read_is_off(name: str, feed: Feed) -> None:
    setting_set(name="Feeds.AnonymousRead", value="false", actor="test", source="test")
    route = next(route for route in ROUTES if route.name == name)
    response = Client().get(route.path)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Basic")


@pytest.mark.parametrize("route", [r for r in ROUTES if r.name in PERMISSION_PAGES], ids=_ids)
def test_a_user_without_the_permission_gets_the_friendly_403(route: Route, feed: Feed, plain_user: User) -> None:
    client = Client()
    client.force_login(plain_user)
    response = client.get(route.path)
    assert response.status_code == 403
    assert FRIENDLY_403 in response.content.decode()


@pytest.mark.parametrize("route", [r for r in ROUTES if not r.csrf_exempt], ids=_ids)
def test_post_without_a_csrf_token_is_refused(route: Route, feed: Feed, superuser: User) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(superuser)  # the strongest session there is: only the token is missing
    before = _written()
    response = client.post(route.path, {"name": "Service.TriggerPollSeconds", "value": "9"})
    assert response.status_code == 403
    assert CSRF_PAGE in response.content.decode()
    assert _written() == before


def test_a_post_with_the_token_passes_the_csrf_check(superuser: User) -> None:
    """The control for the test above: the same client with the token gets through (here: logs out)."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(superuser)
    client.get("/feeds/")
    token = client.cookies["csrftoken"].value
    response = client.post("/accounts/logout/", {"csrfmiddlewaretoken": token})
    assert response.status_code == 302 and response.url == LOGIN


@pytest.mark.parametrize("route", [r for r in ROUTES if not r.csrf_exempt], ids=_ids)
def test_anonymous_post_with_a_token_is_still_refused(route: Route, feed: Feed) -> None:
    client = Client(enforce_csrf_checks=True)
    client.get(LOGIN)
    token = client.cookies["csrftoken"].value
    before = _written()
    response = client.post(route.path, {"csrfmiddlewaretoken": token, "name": "x", "value": "y"})
    if route.name in PUBLIC_GET:
        assert response.status_code < 500
    elif response.status_code == 302:
        assert response.url.startswith(LOGIN), f"{route} sent an anonymous POST to {response.url}"
    else:
        assert response.status_code in (401, 403, 405), f"{route} answered {response.status_code}"
    assert _written() == before


@pytest.mark.parametrize("route", [r for r in ROUTES if r.csrf_exempt and r.name not in EXEMPT_WITHOUT_DATA], ids=_ids)
def test_csrf_exempt_routes_refuse_a_session_cookie_alone(route: Route, feed: Feed, superuser: User) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(superuser)
    before = _written()
    answers = {method: getattr(client, method)(route.path) for method in ("get", "post")}
    statuses = {method: response.status_code for method, response in answers.items()}
    assert set(statuses.values()) <= {401, 405}, statuses
    assert 401 in statuses.values(), f"{route} accepts neither method: cannot show it refuses the session"
    for response in answers.values():
        if response.status_code == 401:
            assert response["WWW-Authenticate"].startswith("Basic")
    assert _written() == before


@pytest.mark.parametrize("route", [r for r in ROUTES if r.csrf_exempt and r.name not in PUBLIC_GET.keys() | EVERY_USER],
                         ids=_ids)
def test_a_key_whose_owner_lost_every_permission_is_refused(route: Route, feed: Feed, superuser: User) -> None:
    """A key holding every scope, from an owner who was a superuser: once demoted, the key can do nothing more."""
    token = api_key_create(name="everything", owner=superuser, scopes=SCOPE_NAMES).token
    User.objects.filter(id=superuser.id).update(is_superuser=False, is_staff=False)
    before = _written()
    statuses = {method: getattr(Client(), method)(route.path, HTTP_X_APIKEY=token).status_code
                for method in ("get", "post")}
    assert set(statuses.values()) <= {403, 405}, statuses
    assert 403 in statuses.values(), f"{route} accepts neither method: cannot show it refuses the key"
    assert _written() == before


def test_static_files_are_public() -> None:
    response = Client().get("/static/proget/site.css")
    assert response.status_code == 200
    assert response["X-Content-Type-Options"] == "nosniff"
