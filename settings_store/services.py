"""Changing settings: validate, store, bump the settings version and audit, in one transaction."""
from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from settings_store.models import RetiredValue, SettingChange, SettingsVersion, SettingValue
from settings_store.push import settings_push_on_commit
from settings_store.registry import Setting, SettingValueError, setting_definition
from settings_store.selectors import mask

logger = logging.getLogger(__name__)


def settings_version_bump() -> int:
    """Raise the settings version by one (call inside the transaction that stores the change); the new version.

    Web nodes are told at once when the transaction commits (push), or notice by polling.
    """
    SettingsVersion.objects.get_or_create(pk=1)
    SettingsVersion.objects.filter(pk=1).update(version=F("version") + 1)
    version = SettingsVersion.objects.get(pk=1).version
    settings_push_on_commit(version=version)
    return version


@transaction.atomic
def setting_set(*, name: str, value: str, actor: str, source: str) -> SettingChange | None:
    """Validate and store `value` for setting `name` ("" restores the default, where the setting allows it).

    Raises UnknownSetting or SettingValueError (whose message is meant for the user) and then
    changes nothing. Returns the audit entry, or None when the value did not change.
    """
    definition = setting_definition(name)
    text = definition.clean(value)
    row = SettingValue.objects.select_for_update().filter(name=name).first()
    old = row.value if row else ""
    if old == text:
        return None
    if text:
        SettingValue.objects.update_or_create(name=name, defaults={"value": text, "updated_by": actor})
    else:
        SettingValue.objects.filter(name=name).delete()
    if old and definition.keep_replaced_seconds:
        _retire(definition, old)
    change = SettingChange.objects.create(
        name=name,
        old_value=mask(definition, old),
        new_value=mask(definition, text),
        changed_by=actor,
        source=source,
        version=settings_version_bump(),
    )
    logger.info("setting %s changed by %s via %s", name, actor, source)
    return change


def _retire(definition: Setting, value: str) -> None:
    """Keep the replaced `value` (if it is valid) for keep_replaced_seconds; forget what is older."""
    now = timezone.now()
    horizon = now - timedelta(seconds=definition.keep_replaced_seconds)
    RetiredValue.objects.filter(name=definition.name, retired_at__lt=horizon).delete()
    try:
        definition.parse(value)
    except SettingValueError:
        return  # a broken value (written around the validation) is not worth keeping
    RetiredValue.objects.create(name=definition.name, value=value, retired_at=now)


def setting_get_or_init(*, name: str, factory: Callable[[], str]) -> str:
    """The stored value of `name`; when empty, store `factory()` first — exactly once across processes.

    Racing processes each try a conditional insert/update; only one wins, and all return its value.
    """
    definition = setting_definition(name)
    current = SettingValue.objects.filter(name=name).values_list("value", flat=True).first()
    if current:
        return current
    candidate = factory()
    definition.parse(candidate)
    with transaction.atomic():
        row, created = SettingValue.objects.select_for_update().get_or_create(
            name=name, defaults={"value": candidate, "updated_by": "system"}
        )
        if not created and not row.value:
            row.value = candidate
            row.updated_by = "system"
            row.save(update_fields=["value", "updated_by", "updated_at"])
            created = True
        if created:
            SettingChange.objects.create(
                name=name, old_value="", new_value=mask(definition, candidate),
                changed_by="system", source="system", version=settings_version_bump(),
            )
            logger.info("generated %s on first use", name)
        return row.value
