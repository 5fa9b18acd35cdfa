"""Users and groups in the browser (/admin/, Django's admin for auth only): who may open it, what it does, shows.

Anonymous visitors go to the site's one login page; signed-in users who may not manage users get the friendly 403;
a superuser (or staff holding auth permissions) creates a user, grants a permission and the Feed Managers group,
resets a password and deactivates the user. The user list shows each user's groups and effective permissions.
"""
from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.test import Client

from api_keys.keys import api_key_create
from api_keys.models import ApiKey

pytestmark = pytest.mark.django_db

USERS = "/admin/auth/user/"
GROUPS = "/admin/auth/group/"
FRIENDLY_403 = "You can't open this page"
FEED_MANAGERS = "Feed Managers"
NEW_PASSWORD = "a-long-unusual-passphrase-42"


def _perm(app_label: str, codename: str) -> Permission:
    return Permission.objects.get(content_type__app_label=app_label, codename=codename)


def _client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def root() -> User:
    return User.objects.create_user("root", password="pw", is_staff=True, is_superuser=True)


@pytest.fixture
def admin_client(root: User) -> Client:
    return _client(root)


def _change_form(user: User, **changes: object) -> dict:
    """The User change form as the admin page posts it, with `changes` applied."""
    data = {
        "username": user.username, "first_name": user.first_name, "last_name": user.last_name,
        "email": user.email, "is_active": "on" if user.is_active else "",
        "groups": [str(pk) for pk in user.groups.values_list("pk", flat=True)],
        "user_permissions": [str(pk) for pk in user.user_permissions.values_list("pk", flat=True)],
    }
    data.update(changes)
    return {key: value for key, value in data.items() if value != ""}


@pytest.mark.parametrize("path", [USERS, GROUPS, "/admin/", f"{USERS}add/"])
def test_anonymous_visitors_go_to_the_site_login(path: str) -> None:
    response = Client().get(path)
    assert response.status_code == 302
    assert response.url == f"/accounts/login/?next={path}"
    assert Client().get("/admin/login/").status_code == 404  # one login page for the site: no second form


@pytest.mark.parametrize("kind", ["plain", "staff-without-auth-perms", "feed-manager"])
@pytest.mark.parametrize("path", [USERS, GROUPS, "/admin/", f"{USERS}add/"])
def test_users_who_may_not_manage_users_get_the_friendly_403(kind: str, path: str) -> None:
    user = User.objects.create_user(kind, password="pw", is_staff=kind == "staff-without-auth-perms")
    if kind == "feed-manager":
        user.groups.add(Group.objects.get(name=FEED_MANAGERS))
    response = _client(user).get(path)
    assert response.status_code == 403
    assert FRIENDLY_403 in response.content.decode()


def test_a_non_admin_cannot_create_a_user() -> None:
    client = _client(User.objects.create_user("plain", password="pw"))
    response = client.post(f"{USERS}add/", {"username": "mallory", "usable_password": "true",
                                            "password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert response.status_code == 403
    assert not User.objects.filter(username="mallory").exists()


def test_staff_holding_auth_permissions_may_manage_users() -> None:
    helpdesk = User.objects.create_user("helpdesk", password="pw", is_staff=True)
    helpdesk.user_permissions.add(_perm("auth", "view_user"), _perm("auth", "change_user"))
    client = _client(helpdesk)
    assert client.get(USERS).status_code == 200
    assert client.get(f"{USERS}add/").status_code == 403  # no auth.add_user: Django's own model permissions


def test_only_users_and_groups_are_managed_here(admin_client: Client) -> None:
    page = admin_client.get("/admin/").content.decode()
    links = set(re.findall(r'href="(/admin/[a-z_]+/[a-z_]+/)"', page))
    assert links == {USERS, GROUPS}


def test_an_admin_creates_a_feed_manager_resets_the_password_and_deactivates_it(admin_client: Client) -> None:
    response = admin_client.post(f"{USERS}add/", {"username": "fiona", "usable_password": "true",
                                                  "password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert response.status_code == 302, response.content.decode()[:2000]
    fiona = User.objects.get(username="fiona")
    assert fiona.check_password(NEW_PASSWORD) and fiona.is_active and not fiona.is_staff

    # Grant the Feed Managers group and one administration permission directly.
    group = Group.objects.get(name=FEED_MANAGERS)
    status_perm = _perm("administration", "view_service_status")
    response = admin_client.post(f"{USERS}{fiona.pk}/change/", _change_form(
        fiona, groups=[str(group.pk)], user_permissions=[str(status_perm.pk)]))
    assert response.status_code == 302, response.content.decode()[:2000]
    fiona = User.objects.get(pk=fiona.pk)  # fresh: no cached permissions
    assert fiona.has_perm("administration.reindex_feed") and fiona.has_perm("administration.view_service_status")
    assert not fiona.has_perm("administration.change_settings")

    # Reset the password.
    response = admin_client.post(f"{USERS}{fiona.pk}/password/", {
        "usable_password": "true", "password1": "another-long-passphrase-7", "password2": "another-long-passphrase-7"})
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Client().login(username="fiona", password="another-long-passphrase-7")

    # Deactivate: the user can no longer log in.
    response = admin_client.post(f"{USERS}{fiona.pk}/change/", _change_form(
        User.objects.get(pk=fiona.pk), is_active=""))
    assert response.status_code == 302, response.content.decode()[:2000]
    assert not User.objects.get(pk=fiona.pk).is_active
    assert not Client().login(username="fiona", password="another-long-passphrase-7")


def test_the_user_list_shows_groups_and_effective_permissions(admin_client: Client) -> None:
    manager = User.objects.create_user("manfred", password="pw")
    manager.groups.add(Group.objects.get(name=FEED_MANAGERS))
    operator = User.objects.create_user("olga", password="pw")
    operator.user_permissions.add(_perm("administration", "control_service"))
    User.objects.create_user("rita", password="pw")

    page = admin_client.get(USERS).content.decode()
    rows = {name: row for row in re.findall(r"<tr.*?</tr>", page, re.S)
            for name in ("manfred", "olga", "rita", "root") if f">{name}<" in row}
    assert FEED_MANAGERS in rows["manfred"] and "reindex_feed" in rows["manfred"]  # via the group
    assert "change_settings" not in rows["manfred"]
    assert "control_service" in rows["olga"] and "reindex_feed" not in rows["olga"]
    assert not re.search("view_service_status|change_settings|control_service|reindex_feed", rows["rita"])
    for codename in ("view_service_status", "change_settings", "control_service", "reindex_feed"):
        assert codename in rows["root"]  # a superuser holds them all


def test_the_user_pages_show_no_api_key_secret(admin_client: Client, root: User) -> None:
    api_key_create(name="ci", owner=root, scopes=["feeds:read"])
    secret_hash = ApiKey.objects.get(name="ci").secret_hash
    for path in (USERS, f"{USERS}{root.pk}/change/", GROUPS):
        response = admin_client.get(path)
        assert response.status_code == 200
        assert secret_hash not in response.content.decode()


def test_admin_pages_keep_the_strict_csp(admin_client: Client) -> None:
    response = admin_client.get(f"{USERS}add/")
    assert response.status_code == 200
    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert "unsafe-inline" not in response["Content-Security-Policy"]


def test_the_menu_links_users_only_for_those_who_may_manage_them(admin_client: Client) -> None:
    assert 'href="/admin/auth/user/"' in admin_client.get("/feeds/").content.decode()
    plain = _client(User.objects.create_user("plain", password="pw"))
    assert 'href="/admin/auth/user/"' not in plain.get("/feeds/").content.decode()


def test_the_menu_links_api_keys_for_those_who_may_use_them(admin_client: Client) -> None:
    assert 'href="/administration/api-keys"' in admin_client.get("/feeds/").content.decode()
    settings_admin = User.objects.create_user("sam", password="pw")
    settings_admin.user_permissions.add(_perm("administration", "change_settings"))
    assert 'href="/administration/api-keys"' in _client(settings_admin).get("/feeds/").content.decode()
    plain = _client(User.objects.create_user("plain", password="pw"))
    assert 'href="/administration/api-keys"' not in plain.get("/feeds/").content.decode()
