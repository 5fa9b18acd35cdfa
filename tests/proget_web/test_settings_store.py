"""The settings store: typed validation, defaults, audit with masked secrets, and the CLI."""
from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from messenger.crypto import generate_key
from settings_store.models import SettingChange, SettingValue
from settings_store.registry import Kind, Setting, SettingValueError, UnknownSetting
from settings_store.selectors import SECRET_MASK, setting_get, settings_list, settings_version
from settings_store.services import setting_get_or_init, setting_set

pytestmark = pytest.mark.django_db

ENDPOINT = "Service.MessengerEndpoint"
KEY = "Service.MessengerKey"
ALLOWED = "Service.MessengerAllowedIps"

BAD_VALUES = [
    (ENDPOINT, "http://example.com", "must be empty, pipe://NAME, tcp://HOST:PORT or tcp://*:PORT"),
    (ENDPOINT, "tcp://host", "must be empty, pipe://NAME, tcp://HOST:PORT or tcp://*:PORT"),
    (ENDPOINT, "pipe://../etc/passwd", "must be empty, pipe://NAME, tcp://HOST:PORT or tcp://*:PORT"),
    (ENDPOINT, "tcp://h:70000", "must be empty, pipe://NAME, tcp://HOST:PORT or tcp://*:PORT"),
    (KEY, "not base64!", "Service.MessengerKey must be base64 of 32 bytes"),
    (KEY, "AAAA", "Service.MessengerKey must be base64 of 32 bytes"),
    (ALLOWED, "10.0.0.0/33", "IP addresses or CIDR networks"),
    (ALLOWED, "everyone", "IP addresses or CIDR networks"),
]


@pytest.mark.parametrize(("name", "value", "message"), BAD_VALUES)
def test_bad_values_are_refused_and_change_nothing(name: str, value: str, message: str) -> None:
    if name == ENDPOINT:  # a stored value to keep (the others keep their default)
        setting_set(name=name, value="tcp://127.0.0.1:4000", actor="t", source="cli")
    before = list(SettingValue.objects.values_list("name", "value"))
    version = settings_version()
    with pytest.raises(SettingValueError, match=message.replace("*", r"\*").replace("+", r"\+")):
        setting_set(name=name, value=value, actor="t", source="cli")
    assert list(SettingValue.objects.values_list("name", "value")) == before
    assert settings_version() == version


def test_integer_and_boolean_kinds_validate() -> None:
    number = Setting(name="X.N", kind=Kind.INTEGER, default="5", description="", live=True, minimum=1, maximum=10)
    flag = Setting(name="X.B", kind=Kind.BOOLEAN, default="false", description="", live=True)
    assert number.parse("7") == 7
    for bad, message in [("abc", "whole number"), ("0", "at least 1"), ("11", "at most 10"), ("1.5", "whole number")]:
        with pytest.raises(SettingValueError, match=message):
            number.parse(bad)
    assert flag.parse("Yes") is True and flag.parse("off") is False
    with pytest.raises(SettingValueError, match="true or false"):
        flag.parse("maybe")


def test_set_get_and_empty_restores_default() -> None:
    assert setting_get(ENDPOINT) == ""
    change = setting_set(name=ENDPOINT, value="  tcp://127.0.0.1:4001 ", actor="alice", source="web")
    assert change is not None and change.new_value == "tcp://127.0.0.1:4001"
    assert setting_get(ENDPOINT) == "tcp://127.0.0.1:4001"
    assert setting_set(name=ENDPOINT, value="tcp://127.0.0.1:4001", actor="alice", source="web") is None
    setting_set(name=ENDPOINT, value="", actor="alice", source="web")
    assert setting_get(ENDPOINT) == ""
    assert not SettingValue.objects.filter(name=ENDPOINT).exists()


def test_every_change_is_audited_and_bumps_the_version() -> None:
    v0 = settings_version()
    setting_set(name=ENDPOINT, value="pipe://other", actor="alice", source="web")
    setting_set(name=ENDPOINT, value="tcp://*:4002", actor="bob", source="cli")
    changes = list(SettingChange.objects.filter(name=ENDPOINT).order_by("id"))
    assert [(c.changed_by, c.source, c.old_value, c.new_value) for c in changes] == [
        ("alice", "web", "", "pipe://other"),
        ("bob", "cli", "pipe://other", "tcp://*:4002"),
    ]
    assert settings_version() == v0 + 2 == changes[-1].version


def test_secrets_are_masked_in_audit_and_listing() -> None:
    key = generate_key()
    setting_set(name=KEY, value=key, actor="alice", source="web")
    change = SettingChange.objects.get(name=KEY)
    assert change.new_value == SECRET_MASK and key not in change.new_value
    (view,) = [v for v in settings_list() if v.definition.name == KEY]
    assert view.shown == SECRET_MASK
    out = io.StringIO()
    call_command("settings", "list", stdout=out)
    call_command("settings", "get", KEY, stdout=out)
    assert key not in out.getvalue() and SECRET_MASK in out.getvalue()


def test_unknown_setting() -> None:
    with pytest.raises(UnknownSetting):
        setting_set(name="No.Such", value="1", actor="t", source="cli")
    with pytest.raises(CommandError, match="unknown setting 'No.Such'"):
        call_command("settings", "get", "No.Such")


def test_cli_set_validates_and_reports() -> None:
    out = io.StringIO()
    call_command("settings", "set", ENDPOINT, "tcp://10.0.0.1:4100", stdout=out)
    assert "Service.MessengerEndpoint changed (default → tcp://10.0.0.1:4100)" in out.getvalue()
    with pytest.raises(CommandError, match="must be empty, pipe://NAME"):
        call_command("settings", "set", ENDPOINT, "ftp://x")
    assert setting_get(ENDPOINT) == "tcp://10.0.0.1:4100"


def test_get_or_init_generates_once() -> None:
    first = setting_get_or_init(name=KEY, factory=generate_key)
    second = setting_get_or_init(name=KEY, factory=generate_key)
    assert first == second
    assert SettingChange.objects.filter(name=KEY, source="system").count() == 1
