"""`manage.py settings list|get NAME|set NAME VALUE`: the Advanced Settings from a shell."""
from __future__ import annotations

import getpass

from django.core.management.base import CommandParser

from administration.services import setting_change
from node_base.cli import ActionCommand
from settings_store.models import SettingValue
from settings_store.registry import SettingValueError, UnknownSetting, setting_definition
from settings_store.selectors import mask, settings_list


class Command(ActionCommand):
    help = "List, read or change Advanced Settings (an empty VALUE restores the default)."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        listing = sub.add_parser("list", help="every setting with its value")
        listing.add_argument("--all", action="store_true", help="include hidden settings")
        get = sub.add_parser("get", help="print one setting's value")
        get.add_argument("name")
        get.add_argument("--reveal", action="store_true", help="print a secret in clear")
        setter = sub.add_parser("set", help="validate and store a value")
        setter.add_argument("name")
        setter.add_argument("value")

    expected = (UnknownSetting, SettingValueError)

    def _list(self, *, all: bool, **_: object) -> None:
        for view in settings_list(include_hidden=all):
            shown = view.shown if not view.is_default else f"(default) {view.definition.default}".rstrip()
            live = "live" if view.definition.live else "restart"
            self.stdout.write(f"{view.definition.name}\t{view.definition.kind.value}\t{live}\t{shown}")

    def _get(self, *, name: str, reveal: bool, **_: object) -> None:
        definition = setting_definition(name)
        value = SettingValue.objects.filter(name=name).values_list("value", flat=True).first() or ""
        self.stdout.write(value if reveal else mask(definition, value) or definition.default)

    def _set(self, *, name: str, value: str, **_: object) -> None:
        outcome = setting_change(name=name, value=value, actor=f"cli:{getpass.getuser()}", source="cli")
        self.stdout.write(str(outcome))
