"""Reading settings: typed values with defaults, listings for pages and the CLI, masking of secrets."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from settings_store.models import SettingsVersion, SettingValue
from settings_store.registry import SETTINGS, Kind, Setting, setting_definition

SECRET_MASK = "********"


def setting_get(name: str) -> str | int | bool:
    """The typed value of setting `name` (its default when unset)."""
    definition = setting_definition(name)
    text = SettingValue.objects.filter(name=name).values_list("value", flat=True).first() or definition.default
    return definition.parse(text) if text else ""


def settings_version() -> int:
    """The current settings version (0 before any change)."""
    return SettingsVersion.objects.filter(pk=1).values_list("version", flat=True).first() or 0


def mask(definition: Setting, value: str) -> str:
    """What may be shown of `value`: secrets never appear."""
    if definition.kind is Kind.SECRET and value:
        return SECRET_MASK
    return value


@dataclass(frozen=True, kw_only=True)
class SettingView:
    definition: Setting
    value: str  # raw stored text, "" when the default applies
    shown: str  # what may be displayed (secrets masked)
    is_default: bool
    updated_at: datetime | None
    updated_by: str

    @property
    def is_on(self) -> bool:
        """For a boolean setting: whether it is on (its stored value, else its default)."""
        return self.definition.kind is Kind.BOOLEAN and self.definition.is_on(self.value)


def settings_list(*, include_hidden: bool = False) -> list[SettingView]:
    """Every declared setting with its stored value, in declaration order."""
    rows = {row.name: row for row in SettingValue.objects.all()}
    views = []
    for definition in SETTINGS:
        if definition.hidden and not include_hidden:
            continue
        row = rows.get(definition.name)
        value = row.value if row else ""
        views.append(
            SettingView(
                definition=definition,
                value=value,
                shown=mask(definition, value),
                is_default=not value,
                updated_at=row.updated_at if row else None,
                updated_by=row.updated_by if row else "",
            )
        )
    return views
