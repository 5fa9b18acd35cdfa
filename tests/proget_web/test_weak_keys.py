"""Weak and empty messenger keys: refused by the settings core, so the page, the API and the CLI agree."""
from __future__ import annotations

import base64
import html
import string

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import CommandError, call_command
from django.test import Client

from api_keys.keys import api_key_create
from indexer.messenger_config import KEY_SETTING
from messenger.crypto import KEY_BYTES, generate_key
from messenger.key_strength import weak_key_reason
from settings_store.models import RetiredValue, SettingChange, SettingValue
from settings_store.registry import SettingValueError
from settings_store.selectors import settings_version
from settings_store.services import setting_set

pytestmark = pytest.mark.django_db


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


# Well-formed (base64 of 32 bytes) but guessable: what people type instead of generating a key.
WEAK_KEYS = {
    "all zero": _b64(bytes(KEY_BYTES)),
    "one byte repeated": _b64(b"\xa7" * KEY_BYTES),
    "password x4": _b64(b"password" * 4),
    "two bytes alternating": _b64(b"\x01\xfe" * (KEY_BYTES // 2)),
    "a counter pattern": _b64(bytes(range(8)) * 4),
    "printable text": _b64(string.ascii_letters[:KEY_BYTES].encode()),
}
EMPTY_MESSAGE = "Service.MessengerKey needs a value"
WEAK_MESSAGE = "Service.MessengerKey is too weak"
GENERATE_HINT = "generate"


def _state() -> tuple:
    return settings_version(), SettingChange.objects.count(), sorted(SettingValue.objects.values_list("name", "value"))


@pytest.fixture
def stored_key() -> str:
    key = generate_key()
    setting_set(name=KEY_SETTING, value=key, actor="t", source="test")
    return key


def test_random_keys_are_never_called_weak() -> None:
    assert [weak_key_reason(base64.b64decode(generate_key())) for _ in range(5000)] == [None] * 5000


@pytest.mark.parametrize("value", WEAK_KEYS.values(), ids=WEAK_KEYS.keys())
def test_weak_keys_are_refused_by_the_core(stored_key: str, value: str) -> None:
    before = _state()
    with pytest.raises(SettingValueError) as refused:
        setting_set(name=KEY_SETTING, value=value, actor="t", source="test")
    assert WEAK_MESSAGE in str(refused.value) and GENERATE_HINT in str(refused.value)
    assert value not in str(refused.value)
    assert _state() == before


@pytest.mark.parametrize("value", [WEAK_KEYS["all zero"], WEAK_KEYS["password x4"]], ids=["zero", "password"])
def test_cli_refuses_a_weak_key_with_one_line(stored_key: str, value: str) -> None:
    before = _state()
    with pytest.raises(CommandError, match=WEAK_MESSAGE) as refused:
        call_command("settings", "set", KEY_SETTING, value)
    assert "\n" not in str(refused.value) and GENERATE_HINT in str(refused.value)
    assert _state() == before


def test_page_refuses_a_weak_key(stored_key: str) -> None:
    client = Client()
    client.force_login(User.objects.create_user("alice", password="pw", is_staff=True, is_superuser=True))
    before = _state()
    response = client.post("/administration/advanced-settings",
                           {"name": KEY_SETTING, "action": "set", "value": WEAK_KEYS["password x4"], "confirm": "yes"})
    assert response.status_code == 400 and WEAK_MESSAGE in html.unescape(response.content.decode())
    assert _state() == before


def test_api_refuses_a_weak_key(stored_key: str) -> None:
    owner = User.objects.create_user("keyowner", password="pw")
    owner.user_permissions.add(Permission.objects.get(codename="change_settings"))
    token = api_key_create(name="t", owner=owner, scopes=["settings:write", "settings:messenger-key"]).token
    before = _state()
    response = Client().post("/api/settings/set",
                             {"name": KEY_SETTING, "value": WEAK_KEYS["all zero"], "confirm": "yes"},
                             content_type="application/json", HTTP_X_APIKEY=token)
    assert response.status_code == 400 and WEAK_MESSAGE in response.json()["error"]
    assert _state() == before


def test_cli_refuses_an_empty_key_like_the_page_and_generates_none() -> None:
    """Before any key exists: an empty value used to make the CLI generate one; the page refuses it."""
    before = _state()
    with pytest.raises(CommandError, match=EMPTY_MESSAGE):
        call_command("settings", "set", KEY_SETTING, "")
    assert _state() == before and not SettingValue.objects.filter(name=KEY_SETTING).exists()


def test_cli_refuses_an_empty_key_and_keeps_the_stored_one(stored_key: str) -> None:
    before = _state()
    with pytest.raises(CommandError, match=EMPTY_MESSAGE):
        call_command("settings", "set", KEY_SETTING, "  ")
    assert _state() == before and SettingValue.objects.get(name=KEY_SETTING).value == stored_key


def test_core_refuses_an_empty_key(stored_key: str) -> None:
    with pytest.raises(SettingValueError, match=EMPTY_MESSAGE):
        setting_set(name=KEY_SETTING, value="", actor="t", source="test")
    assert SettingValue.objects.get(name=KEY_SETTING).value == stored_key


def test_a_weak_key_stored_before_the_check_is_replaced_without_grace() -> None:
    """A guessable key is as good as leaked: replacing it does not keep it for the rotation's grace."""
    SettingValue.objects.create(name=KEY_SETTING, value=WEAK_KEYS["password x4"])  # stored by an older version
    setting_set(name=KEY_SETTING, value=generate_key(), actor="t", source="test")
    assert not RetiredValue.objects.filter(name=KEY_SETTING).exists()
