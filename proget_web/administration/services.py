"""Changing settings from the web and the CLI: store through the settings core, then tell the nodes.

The store (setting_set) is one transaction; the nudge goes out only after it committed, so the
service reads the new value when it reacts. A messenger outage never fails a change.
"""
from __future__ import annotations

from dataclasses import dataclass

from messenger.config import KEY_SETTING, config_changed_notify, messenger_settings
from messenger.crypto import generate_key
from messenger.errors import MessengerError
from proget_web.advanced_settings.models import SettingChange
from proget_web.advanced_settings.registry import SettingValueError, setting_definition
from proget_web.advanced_settings.services import setting_set

WEB_SOURCE = "web"


@dataclass(frozen=True, kw_only=True)
class SettingOutcome:
    name: str
    change: SettingChange | None  # None when the value was already that
    applied: str  # one line: whether the nodes apply it now

    def __str__(self) -> str:
        if self.change is None:
            return f"{self.name} unchanged."
        old, new = self.change.old_value or "default", self.change.new_value or "default"
        return f"{self.name} changed ({old} → {new}); {self.applied}."


def setting_change(*, name: str, value: str, actor: str, source: str = WEB_SOURCE) -> SettingOutcome:
    """Validate and store `value` ("" restores the default), then nudge the service.

    Raises UnknownSetting or SettingValueError (a message for the user) and then changes nothing.
    Not atomic on purpose: setting_set commits before the service is told to re-read.
    """
    definition = setting_definition(name)
    if value.strip():
        definition.parse(value.strip())  # refuse before messenger_settings() may generate the key
    try:
        previous = messenger_settings()  # before saving: the service still runs with these
    except MessengerError:
        previous = None  # broken now: the new value may be the fix
    change = setting_set(name=name, value=value, actor=actor, source=source)
    if change is None:
        applied = ""
    elif definition.live:
        applied = config_changed_notify(previous=previous)
    else:
        applied = "restart the nodes to apply it"
    return SettingOutcome(name=name, change=change, applied=applied)


def messenger_key_set(*, value: str, actor: str) -> SettingOutcome:
    """Replace the messenger key with `value`, which must be base64 of 32 bytes (empty is refused)."""
    if not value.strip():
        raise SettingValueError(f"{KEY_SETTING} needs a value: paste base64 of 32 bytes, or generate a new key")
    return setting_change(name=KEY_SETTING, value=value, actor=actor)


def messenger_key_generate(*, actor: str) -> SettingOutcome:
    """Replace the messenger key with a freshly generated one."""
    return setting_change(name=KEY_SETTING, value=generate_key(), actor=actor)
