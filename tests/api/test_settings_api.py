"""Settings through the API: listed with secrets masked, changed through the same core as the page (validated,
audited with source "api", refused with the same message)."""
from __future__ import annotations

import dataclasses

import pytest
from django.contrib.auth.models import User
from django.test import Client

from indexer.messenger_config import KEY_SETTING
from messenger.crypto import generate_key
from settings_store import selectors
from settings_store.models import SettingChange, SettingValue
from settings_store.registry import SETTINGS
from settings_store.selectors import settings_version
from settings_store.services import setting_set

pytestmark = pytest.mark.django_db

PAGE = "/administration/advanced-settings"
BAD_VALUES = [
    ("Service.TriggerPollSeconds", "abc"),
    ("Service.TriggerPollSeconds", "0"),
    ("Diagnostics.MinimumLogLevel", "LOUD"),
    ("Service.MessengerEndpoint", "x"),
    ("Service.MessengerAllowedIps", "everyone"),
    ("Metrics.AllowedIps", "10.0.0.0/33"),
    ("No.Such.Setting", "1"),
]


def _state() -> tuple:
    return settings_version(), SettingChange.objects.count(), sorted(SettingValue.objects.values_list("name", "value"))


def test_list_masks_secrets_and_hides_hidden_settings_unless_asked(make_key, monkeypatch) -> None:
    setting_set(name=KEY_SETTING, value=(key := generate_key()), actor="t", source="test")
    hidden = dataclasses.replace(SETTINGS[-1], name="Internal.Hidden", hidden=True)
    monkeypatch.setattr(selectors, "SETTINGS", (*SETTINGS, hidden))
    token = make_key("settings:read")
    listed = Client().get("/api/settings/list", HTTP_X_APIKEY=token)
    assert key not in listed.content.decode()
    by_name = {s["name"]: s for s in listed.json()["settings"]}
    assert by_name[KEY_SETTING]["value"] == selectors.SECRET_MASK and by_name[KEY_SETTING]["type"] == "secret"
    assert "Internal.Hidden" not in by_name and "Metrics.AllowedIps" in by_name
    everything = Client().get("/api/settings/list?showAll=true", HTTP_X_APIKEY=token).json()["settings"]
    assert "Internal.Hidden" in {s["name"] for s in everything}


def test_set_stores_and_audits_with_source_api(make_key) -> None:
    token = make_key("settings:write")
    response = Client().post("/api/settings/set", {"name": "Service.TriggerPollSeconds", "value": "9"},
                             content_type="application/json", HTTP_X_APIKEY=token)
    assert response.status_code == 200, response.content
    answer = response.json()
    assert answer["changed"] is True and answer["refused"] is False
    assert "Service.TriggerPollSeconds changed" in answer["message"]
    change = SettingChange.objects.get(name="Service.TriggerPollSeconds")
    assert (change.source, change.new_value) == ("api", "9")
    assert change.changed_by.startswith("keyowner (API key ")
    again = Client().post("/api/settings/set", {"name": "Service.TriggerPollSeconds", "value": "9"},
                          HTTP_X_APIKEY=token)  # a form body works too
    assert again.json()["changed"] is False


def test_bad_values_are_refused_by_page_and_api_with_the_same_message(make_key) -> None:
    """ONE path: the page and the API both go through setting_change, so they refuse alike and change nothing."""
    page = Client()
    page.force_login(User.objects.create_superuser("root", password="pw"))
    token = make_key("settings:write")
    before = _state()
    for name, value in BAD_VALUES:
        page_response = page.post(PAGE, {"name": name, "value": value})
        api_response = Client().post("/api/settings/set", {"name": name, "value": value},
                                     content_type="application/json", HTTP_X_APIKEY=token)
        assert api_response.status_code == 400
        message = api_response.json()["error"]
        assert message  # the page shows it (HTML-escaped) next to the field, or on top for an unknown name
        assert page_response.status_code == 400 and _escape(message) in page_response.content.decode(), name
        assert _state() == before, name


def _escape(text: str) -> str:
    from django.utils.html import escape

    return escape(text)


def test_empty_messenger_key_is_refused_like_on_the_page(make_key) -> None:
    setting_set(name=KEY_SETTING, value=generate_key(), actor="t", source="test")
    before = _state()
    response = Client().post("/api/settings/set", {"name": KEY_SETTING, "value": "", "confirm": "yes"},
                             content_type="application/json",
                             HTTP_X_APIKEY=make_key("settings:write", "settings:messenger-key"))
    assert response.status_code == 400 and "needs a value" in response.json()["error"]
    assert _state() == before


@pytest.mark.parametrize(("body", "content_type", "error"), [
    (b"{", "application/json", "not valid JSON"),
    (b"[1]", "application/json", "must be a JSON object"),
    (b'{"name": "Service.TriggerPollSeconds"}', "application/json", "'value' is required"),
    (b'{"name": 5, "value": "1"}', "application/json", "'name' is required"),
])
def test_malformed_bodies_are_400(make_key, body, content_type, error) -> None:
    response = Client().post("/api/settings/set", body, content_type=content_type,
                             HTTP_X_APIKEY=make_key("settings:write"))
    assert response.status_code == 400 and error in response.json()["error"]
