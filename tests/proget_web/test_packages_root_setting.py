"""Storage.PackagesRootPath is validated where settings are (page, API, CLI all go through the registry): an absolute,
printable, normalized folder that keeps clear of the data folder; a refused value is a 400, never a later 500."""
from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client

from api_keys.keys import api_key_create
from api_keys.models import SCOPE_NAMES
from feeds.services import feed_create
from node_base.paths import MAX_CONFIGURED_PATH
from settings_store.registry import SettingValueError
from settings_store.selectors import setting_get
from settings_store.services import setting_set

pytestmark = pytest.mark.django_db

NAME = "Storage.PackagesRootPath"


def _data() -> Path:
    return Path(settings.DATA_DIR)


BAD = {
    "relative": lambda: "relative/dir",
    "NUL byte": lambda: "/srv/pack\x00ages",
    "newline": lambda: "/srv/pack\nages",
    "dot-dot": lambda: "/srv/../etc/packages",
    "root": lambda: "/",
    "too long": lambda: "/" + "a" * MAX_CONFIGURED_PATH,
    "the data folder": lambda: str(_data()),
    "containing the data folder": lambda: str(_data().parent),
    "inside the data folder": lambda: str(_data() / "run"),
}


@pytest.mark.parametrize("case", BAD)
def test_a_bad_packages_root_is_refused_by_the_registry(case: str) -> None:
    with pytest.raises(SettingValueError, match=NAME):
        setting_set(name=NAME, value=BAD[case](), actor="test", source="test")
    assert setting_get(NAME) == ""


def test_a_nul_byte_through_the_api_is_400_and_feeds_are_still_created(tmp_path: Path) -> None:
    user = User.objects.create_superuser("admin")  # every scope needs its owner to hold the permission
    token = api_key_create(name="t", owner=user, scopes=SCOPE_NAMES).token
    response = Client().post("/api/settings/set", {"name": NAME, "value": "/srv/pack\x00ages"},
                             content_type="application/json", HTTP_X_APIKEY=token)
    assert response.status_code == 400 and "NUL" in response.json()["error"]
    assert feed_create(name="main").storage == _data() / "packages" / "main"


@pytest.mark.parametrize("good", [lambda tmp: str(tmp / "packages"), lambda tmp: str(_data() / "packages" / "x")])
def test_sane_packages_roots_are_taken(tmp_path: Path, good) -> None:
    setting_set(name=NAME, value=good(tmp_path), actor="test", source="test")
    assert feed_create(name="main").storage == Path(good(tmp_path)) / "main"
