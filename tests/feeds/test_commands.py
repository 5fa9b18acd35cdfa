"""`manage.py feeds create|list|delete`: feeds with folders, clear errors for bad or duplicate names."""
from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from feeds.models import Feed
from settings_store.models import SettingValue
from settings_store.registry import SettingValueError
from settings_store.services import setting_set

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def packages_root(tmp_path: Path) -> Path:
    setting_set(name="Storage.PackagesRootPath", value=str(tmp_path / "pkgs"), actor="test", source="test")
    return tmp_path / "pkgs"


def feeds(*args: str) -> str:
    out = StringIO()
    call_command("feeds", *args, stdout=out)
    return out.getvalue()


def test_create_list_delete(packages_root: Path) -> None:
    assert feeds("create", "internal", "--description", "ours", "--keep", "3") == (
        f"created feed internal (storage {packages_root / 'internal'})\n"
    )
    feed = Feed.objects.get(name="internal")
    assert (feed.description, feed.retention_keep_latest, feed.type) == ("ours", 3, "pypi")
    assert (packages_root / "internal").is_dir()
    assert feeds("list").startswith(f"internal                 {packages_root / 'internal'}  never indexed")
    assert "deleted feed internal; its files stay in" in feeds("delete", "internal")
    assert not Feed.objects.exists() and (packages_root / "internal").is_dir()


@pytest.mark.parametrize("name", ["../etc", "a/b", "..a", ".hidden", "_x", "", "x" * 65, "a b", "caf\u00e9"])
def test_bad_names_are_refused_with_the_rule(name: str, packages_root: Path) -> None:
    with pytest.raises(CommandError, match="invalid feed name"):
        feeds("create", name)
    assert not Feed.objects.exists() and not packages_root.exists()


def test_names_are_unique_ignoring_case_and_delete_needs_a_feed() -> None:
    feeds("create", "Main")
    with pytest.raises(CommandError, match="already exists"):
        feeds("create", "main")
    with pytest.raises(CommandError, match="no feed called 'nope'"):
        feeds("delete", "nope")


def test_a_relative_packages_root_or_drop_path_is_refused() -> None:
    with pytest.raises(CommandError, match="drop path must be an absolute path"):
        feeds("create", "a", "--drop-path", "drop")
    with pytest.raises(SettingValueError, match="must be an absolute path"):
        setting_set(name="Storage.PackagesRootPath", value="relative/dir", actor="test", source="test")
    # A value stored before the setting was validated is checked again where it is used.
    SettingValue.objects.filter(name="Storage.PackagesRootPath").update(value="relative/dir")
    with pytest.raises(CommandError, match="must be an absolute path"):
        feeds("create", "a")
