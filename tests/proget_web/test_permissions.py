"""Who may open which administration page: the permission matrix, the helper on sync and async views, the group."""
from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.models import AnonymousUser, Group, Permission, User
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.test import Client, RequestFactory

from indexer.messenger_config import KEY_SETTING
from messenger.crypto import generate_key
from proget_web.administration.permissions import permission_required_or_403
from settings_store.models import SettingChange, SettingValue
from settings_store.selectors import settings_version

pytestmark = pytest.mark.django_db

SETTINGS_URL = "/administration/advanced-settings"
CLUSTER_URL = "/administration/cluster"
ADMIN_PERMS = ("view_service_status", "change_settings", "control_service")
FRIENDLY_403 = "You can't open this page"


@dataclass(frozen=True)
class Case:
    id: str
    method: str
    path: str
    perm: str  # codename in the administration app
    data: dict = field(default_factory=dict)

    @property
    def writes(self) -> bool:
        return self.method == "post"


CASES = [
    Case("settings-page", "get", SETTINGS_URL, "change_settings"),
    Case("setting-set", "post", SETTINGS_URL, "change_settings", {"name": "Service.TriggerPollSeconds", "value": "9"}),
    Case("key-generate", "post", SETTINGS_URL, "change_settings",
         {"name": KEY_SETTING, "action": "generate", "confirm": "yes"}),
    Case("key-set", "post", SETTINGS_URL, "change_settings",
         {"name": KEY_SETTING, "action": "set", "value": generate_key(), "confirm": "yes"}),
    Case("cluster-page", "get", CLUSTER_URL, "view_service_status"),
]


def _perm(codename: str) -> Permission:
    return Permission.objects.get(content_type__app_label="administration", codename=codename)


def _user(username: str, *, staff: bool = False, superuser: bool = False, perms: tuple[str, ...] = ()) -> User:
    user = User.objects.create_user(username, password="pw", is_staff=staff or superuser, is_superuser=superuser)
    user.user_permissions.add(*(_perm(codename) for codename in perms))
    return user


def _client_for(role: str, case: Case) -> Client:
    client = Client()
    others = tuple(codename for codename in ADMIN_PERMS if codename != case.perm)
    users = {
        "anonymous": lambda: None,
        "plain": lambda: _user("plain"),
        "feed-manager": lambda: _feed_manager(),
        "staff": lambda: _user("staff", staff=True),
        "staff-other-perms": lambda: _user("other", staff=True, perms=others),
        "staff-with-perm": lambda: _user("granted", staff=True, perms=(case.perm,)),
        "superuser": lambda: _user("root", superuser=True),
    }
    user = users[role]()
    if user is not None:
        client.force_login(user)
    return client


def _feed_manager() -> User:
    user = _user("feeds")
    user.groups.add(Group.objects.get(name="Feed Managers"))
    return user


def _state() -> tuple:
    return settings_version(), SettingChange.objects.count(), sorted(SettingValue.objects.values_list("name", "value"))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_anonymous_is_sent_to_login_with_next(case: Case) -> None:
    before = _state()
    response = getattr(_client_for("anonymous", case), case.method)(case.path, case.data)
    assert response.status_code == 302
    assert response.url == f"/accounts/login/?next={case.path}"
    assert _state() == before


@pytest.mark.parametrize("role", ["plain", "feed-manager", "staff", "staff-other-perms"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_signed_in_without_the_permission_gets_the_friendly_403(case: Case, role: str) -> None:
    client = _client_for(role, case)
    before = _state()
    response = getattr(client, case.method)(case.path, case.data)
    assert response.status_code == 403
    assert FRIENDLY_403 in response.content.decode()
    assert f"administration.{case.perm}" in response.content.decode()
    assert _state() == before


@pytest.mark.parametrize("role", ["staff-with-perm", "superuser"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_holders_of_the_permission_get_in(case: Case, role: str) -> None:
    client = _client_for(role, case)
    version = settings_version()
    response = getattr(client, case.method)(case.path, case.data)
    if case.writes:
        assert response.status_code == 302, response.content.decode()[:2000]
        assert response.url.startswith(SETTINGS_URL)
        assert settings_version() > version
    else:
        assert response.status_code == 200
        assert settings_version() == version


def test_feed_managers_group_holds_reindex_feed_only() -> None:
    group = Group.objects.get(name="Feed Managers")
    assert [p.codename for p in group.permissions.all()] == ["reindex_feed"]
    assert _feed_manager().has_perm("administration.reindex_feed")


def test_the_model_declares_exactly_the_four_permissions() -> None:
    declared = Permission.objects.filter(content_type__app_label="administration")
    codenames = set(declared.values_list("codename", flat=True))
    assert codenames == {"view_service_status", "change_settings", "control_service", "reindex_feed"}


@pytest.mark.parametrize(
    ("perms", "links"),
    [
        ((), ["Feeds"]),
        (("change_settings",), ["Feeds", "Advanced Settings"]),
        (("view_service_status",), ["Feeds", "Service Status", "Cluster"]),
    ],
)
def test_navigation_shows_only_the_pages_the_user_may_open(perms: tuple[str, ...], links: list[str]) -> None:
    client = Client()
    client.force_login(_user("nav", staff=True, perms=perms))
    page = client.get("/accounts/login/").content.decode()
    nav = page.split('<nav aria-label="Main">', 1)[1].split("</nav>", 1)[0]
    shown = [label for label in ("Feeds", "Service Status", "Advanced Settings", "Cluster") if f">{label}</a>" in nav]
    assert shown == links


# The helper on bare views: the same rules whether the view is sync or async.


@permission_required_or_403("administration.reindex_feed")
def sync_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse("sync ok")


@permission_required_or_403("administration.reindex_feed")
async def async_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse("async ok")


def _call(view: object, user: User | AnonymousUser) -> HttpResponse:
    request = RequestFactory().post("/feeds/main/reindex?x=1")
    request.user = user

    async def auser() -> User | AnonymousUser:
        return user

    request.auser = auser
    return async_to_sync(view)(request) if view is async_view else view(request)


@pytest.mark.parametrize("view", [sync_view, async_view], ids=["sync", "async"])
def test_helper_on_sync_and_async_views(view: object) -> None:
    anonymous = _call(view, AnonymousUser())
    assert anonymous.status_code == 302 and anonymous.url == "/accounts/login/?next=/feeds/main/reindex%3Fx%3D1"
    assert _call(view, _feed_manager()).content in {b"sync ok", b"async ok"}
    assert _call(view, _user("boss", superuser=True)).status_code == 200
    with pytest.raises(PermissionDenied):
        _call(view, _user("nobody", staff=True))


def test_async_views_stay_async() -> None:
    from asgiref.sync import iscoroutinefunction

    assert iscoroutinefunction(async_view) and not iscoroutinefunction(sync_view)
