"""A key never does more than its owner: scopes at creation are the owner's, and every request checks again.

Also: the messenger key (which grants everything the service does) has its own scope and needs the
Advanced Settings page's confirmation.
"""
from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import CommandError, call_command
from django.test import Client

from api_keys.keys import SCOPE_PERMISSIONS, ApiKeyError, api_key_create
from api_keys.models import SCOPE_NAMES, ApiKey
from indexer.messenger_config import KEY_SETTING
from messenger.crypto import generate_key
from settings_store.models import SettingChange
from settings_store.selectors import setting_get

pytestmark = pytest.mark.django_db

PAGE = "/administration/api-keys"
STATUS = "/api/service/status"
SET = "/api/settings/set"


def _user(name: str, *codenames: str) -> User:
    user = User.objects.create_user(name, password="pw")
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


def _revoke_permission(user: User, codename: str) -> None:
    user.user_permissions.remove(Permission.objects.get(codename=codename))


def test_every_scope_stands_for_a_permission() -> None:
    assert set(SCOPE_PERMISSIONS) == set(SCOPE_NAMES)


def test_the_page_refuses_scopes_beyond_the_creators_permissions() -> None:
    client = Client()
    client.force_login(_user("settings-admin", "change_settings"))
    for scope in ("service:control", "feeds:upload", "feeds:reindex", "service:read"):
        response = client.post(PAGE, {"action": "create", "name": "escalate", "scopes": [scope]})
        assert response.status_code == 400, scope
    assert not ApiKey.objects.exists()
    response = client.post(PAGE, {"action": "create", "name": "own", "scopes": ["settings:read", "feeds:read"]})
    assert response.status_code == 200 and ApiKey.objects.count() == 1


def test_the_core_and_the_command_refuse_scopes_the_owner_lacks() -> None:
    owner = _user("ops", "view_service_status")
    with pytest.raises(ApiKeyError, match="administration.control_service"):
        api_key_create(name="x", owner=owner, scopes=["service:read", "service:control"])
    with pytest.raises(CommandError, match="feeds.upload_package"):
        call_command("apikeys", "create", "x", "--owner", "ops", "--scope", "feeds:upload", stdout=StringIO())
    assert not ApiKey.objects.exists()
    assert api_key_create(name="ok", owner=owner, scopes=["service:read", "feeds:read"]).key.id


def test_a_key_stops_working_when_its_owner_loses_the_permission(service) -> None:
    owner = _user("ops", "view_service_status")
    token = api_key_create(name="x", owner=owner, scopes=["service:read"]).token
    assert Client().get(STATUS, HTTP_X_APIKEY=token).status_code == 200
    _revoke_permission(owner, "view_service_status")
    response = Client().get(STATUS, HTTP_X_APIKEY=token)
    assert response.status_code == 403
    assert "owner" in response.json()["error"]


def test_an_upload_key_stops_working_when_its_owner_loses_the_permission(feed) -> None:
    owner = _user("ci", "upload_package")
    token = api_key_create(name="x", owner=owner, scopes=["feeds:upload"]).token

    def upload_status() -> int:  # no file: a permitted key gets past the check, then 400 for the form
        return Client().post(f"/pypi/{feed.name}/legacy/", {":action": "file_upload"}, HTTP_X_APIKEY=token).status_code

    assert upload_status() == 400
    _revoke_permission(owner, "upload_package")
    assert upload_status() == 403


def test_a_deactivated_owner_kills_the_key(service) -> None:
    owner = _user("ops", "view_service_status")
    token = api_key_create(name="x", owner=owner, scopes=["service:read"]).token
    owner.is_active = False
    owner.save()
    assert Client().get(STATUS, HTTP_X_APIKEY=token).status_code == 401


def _set_key(token: str, **extra: str) -> int:
    body = {"name": KEY_SETTING, "value": generate_key(), **extra}
    return Client().post(SET, body, content_type="application/json", HTTP_X_APIKEY=token).status_code


def test_settings_write_alone_cannot_choose_the_messenger_key() -> None:
    owner = _user("admin", "change_settings")
    before = setting_get(KEY_SETTING)
    writer = api_key_create(name="w", owner=owner, scopes=["settings:write"]).token
    assert _set_key(writer, confirm="yes") == 403
    assert setting_get(KEY_SETTING) == before and not SettingChange.objects.filter(name=KEY_SETTING).exists()


def test_the_messenger_key_scope_needs_the_pages_confirmation() -> None:
    owner = _user("admin", "change_settings")
    before = setting_get(KEY_SETTING)
    token = api_key_create(name="k", owner=owner, scopes=["settings:write", "settings:messenger-key"]).token
    assert _set_key(token) == 400
    assert _set_key(token, confirm="no") == 400
    assert setting_get(KEY_SETTING) == before
    assert _set_key(token, confirm="yes") == 200
    assert setting_get(KEY_SETTING) != before
    assert SettingChange.objects.filter(name=KEY_SETTING).latest("id").source == "api"
