"""Key rotation's grace in the settings store: a replaced Service.MessengerKey stays accepted for
Service.MessengerKeyGraceSeconds (messenger_settings().retired_keys), then is gone; never shown anywhere."""
from __future__ import annotations

import base64
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from indexer.messenger_config import KEY_GRACE_SETTING, KEY_SETTING, messenger_settings
from messenger.crypto import generate_key, parse_key
from messenger.errors import MessengerError
from settings_store.models import RetiredValue, SettingChange, SettingValue
from settings_store.registry import MESSENGER_KEY_GRACE_MAX_SECONDS, SettingValueError
from settings_store.selectors import SECRET_MASK, settings_list
from settings_store.services import setting_set

pytestmark = pytest.mark.django_db


def _rotate(value: str | None = None) -> str:
    value = value or generate_key()
    setting_set(name=KEY_SETTING, value=value, actor="t", source="cli")
    return value


def _first_key() -> str:
    messenger_settings()  # generates it
    return SettingValue.objects.get(name=KEY_SETTING).value


def test_a_replaced_key_is_accepted_until_the_grace_ends_newest_first() -> None:
    first = messenger_settings().key
    second = _rotate()
    started = time.time()
    third = _rotate()
    config = messenger_settings()
    assert config.key == parse_key(third)
    assert config.previous_keys == (parse_key(second), first)
    for retired in config.retired_keys:
        assert started - 5 < retired.until - 60 <= time.time()  # the default grace: 60 s after it was replaced


def test_after_the_grace_a_replaced_key_is_gone() -> None:
    messenger_settings()
    _rotate()
    RetiredValue.objects.update(retired_at=timezone.now() - timedelta(seconds=61))
    assert messenger_settings().retired_keys == ()


def test_a_grace_of_zero_refuses_the_old_key_at_once_and_a_longer_one_extends_it() -> None:
    messenger_settings()
    _rotate()
    RetiredValue.objects.update(retired_at=timezone.now() - timedelta(seconds=100))
    setting_set(name=KEY_GRACE_SETTING, value="120", actor="t", source="cli")
    assert len(messenger_settings().retired_keys) == 1
    setting_set(name=KEY_GRACE_SETTING, value="0", actor="t", source="cli")
    assert messenger_settings().retired_keys == ()


@pytest.mark.parametrize(("value", "message"), [
    ("-1", "at least 0"), (str(MESSENGER_KEY_GRACE_MAX_SECONDS + 1), "at most 3600"), ("soon", "a whole number")])
def test_bad_grace_values_are_refused(value: str, message: str) -> None:
    with pytest.raises(SettingValueError, match=f"{KEY_GRACE_SETTING} must be {message}"):
        setting_set(name=KEY_GRACE_SETTING, value=value, actor="t", source="cli")


def test_a_grace_stored_around_the_validation_stops_the_messenger_with_one_clear_line() -> None:
    SettingValue.objects.create(name=KEY_GRACE_SETTING, value="soon")
    with pytest.raises(MessengerError, match=f"^{KEY_GRACE_SETTING} must be a whole number$"):
        messenger_settings()


def test_going_back_to_a_retired_key_does_not_list_it_as_previous() -> None:
    first = _first_key()
    second = _rotate()
    _rotate(first)
    assert messenger_settings().previous_keys == (parse_key(second),)


def test_a_broken_value_is_not_kept_and_old_ones_are_forgotten() -> None:
    SettingValue.objects.create(name=KEY_SETTING, value="not a key")
    _rotate()
    assert not RetiredValue.objects.exists()
    _rotate()
    RetiredValue.objects.update(retired_at=timezone.now() - timedelta(seconds=MESSENGER_KEY_GRACE_MAX_SECONDS + 1))
    _rotate()
    assert RetiredValue.objects.count() == 1  # the one just replaced; the expired one was deleted


def test_other_settings_keep_no_replaced_values() -> None:
    setting_set(name="Service.MessengerEndpoint", value="tcp://127.0.0.1:4000", actor="t", source="cli")
    setting_set(name="Service.MessengerEndpoint", value="tcp://127.0.0.1:4001", actor="t", source="cli")
    assert not RetiredValue.objects.exists()


def test_retired_keys_are_never_shown() -> None:
    old = _first_key()
    new = _rotate()
    config = messenger_settings()
    shown = repr(config) + repr(config.retired_keys) + str(RetiredValue.objects.get())
    shown += "".join(f"{view.definition.name}={view.shown}" for view in settings_list(include_hidden=True))
    shown += "".join(f"{c.old_value} {c.new_value}" for c in SettingChange.objects.all())
    for secret in (old, new):
        assert secret not in shown and repr(base64.b64decode(secret)) not in shown
    assert SettingChange.objects.filter(name=KEY_SETTING).last().old_value in ("", SECRET_MASK)
    assert f"{KEY_GRACE_SETTING}=" in shown and "until=" in repr(config.retired_keys)
