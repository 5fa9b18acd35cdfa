"""The Advanced Settings page: listing, in-place edits, field errors, the key by fingerprint only, audit, nodes."""
from __future__ import annotations

import base64
import html
import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from administration import services
from cluster.models import Node
from indexer.messenger_config import KEY_SETTING, MessengerSettings
from messenger.crypto import generate_key, key_fingerprint, parse_key
from settings_store.models import SettingChange, SettingValue
from settings_store.registry import SETTINGS, Kind
from settings_store.selectors import setting_get, settings_version
from settings_store.services import setting_set

pytestmark = pytest.mark.django_db

URL = "/administration/advanced-settings"
PAGES = ["/", URL, "/administration/cluster", "/accounts/login/"]
ENDPOINT_ERROR = ("Service.MessengerEndpoint must be empty, pipe://NAME, tcp://HOST:PORT or tcp://*:PORT "
                  "(got 'x': it must start with pipe:// or tcp://)")

BAD_VALUES = [
    ("Service.TriggerPollSeconds", "abc", "Service.TriggerPollSeconds must be a whole number"),
    ("Service.TriggerPollSeconds", "0", "Service.TriggerPollSeconds must be at least 1"),
    ("Service.TriggerPollSeconds", "99999", "Service.TriggerPollSeconds must be at most 300"),
    ("Diagnostics.MinimumLogLevel", "LOUD", "Diagnostics.MinimumLogLevel must be one of DEBUG, INFO, WARNING, ERROR"),
    ("Service.MessengerEndpoint", "x", ENDPOINT_ERROR),
    ("Service.MessengerAllowedIps", "everyone", "IP addresses or CIDR networks"),
    ("Service.MessengerAllowedIps", "10.0.0.0/33", "IP addresses or CIDR networks"),
    ("Feeds.AnonymousRead", "yes", "Feeds.AnonymousRead must be true or false"),
]
# A well-formed key of the wrong length, so the test also proves a refused key is not echoed.
SHORT_KEY = base64.b64encode(b"k" * 31).decode()
BAD_KEYS = [
    ("AAAA", "Service.MessengerKey must be base64 of 32 bytes: it decodes to 3 bytes"),
    ("not base64!", "Service.MessengerKey must be base64 of 32 bytes: it is not valid base64"),
    (SHORT_KEY, "Service.MessengerKey must be base64 of 32 bytes: it decodes to 31 bytes"),
    ("", "Service.MessengerKey needs a value"),
]


@pytest.fixture
def client() -> Client:
    client = Client()
    client.force_login(User.objects.create_user("alice", password="pw", is_staff=True, is_superuser=True))
    return client


def _state() -> tuple:
    return settings_version(), SettingChange.objects.count(), sorted(SettingValue.objects.values_list("name", "value"))


def _block(page: str, opening: str, closing: str = "</tr>") -> str:
    """The HTML from `opening` (e.g. '<tr id="NAME"') to the next `closing`."""
    start = page.index(opening)
    return page[start : page.index(closing, start)]


def _field_error(page: str, row_id: str) -> str:
    match = re.search(r'<p class="field-error"[^>]*>(.*?)</p>', _block(page, f'<tr id="{row_id}"'), re.S)
    assert match, f"no field error in the row of {row_id}"
    return html.unescape(match.group(1))


def test_every_setting_is_listed_with_its_description_type_default_and_live_flag(client: Client) -> None:
    page = client.get(URL).content.decode()
    for definition in SETTINGS:
        row = html.unescape(_block(page, f'<tr id="{definition.name}"'))
        assert definition.description in row
        assert f'<span class="tag">{definition.kind.value}</span>' in row
        assert ("applies live" if definition.live else "needs restart") in row
        if definition.default:
            assert f"<code>{definition.default}</code>" in row


def test_get_changes_nothing_not_even_the_key(client: Client) -> None:
    before = _state()
    for _ in range(2):
        assert client.get(URL).status_code == 200
        assert client.get("/administration/cluster").status_code == 200
    assert _state() == before
    assert not SettingValue.objects.filter(name=KEY_SETTING).exists()


def test_a_good_change_is_stored_audited_with_the_username_and_reported(client: Client) -> None:
    version = settings_version()
    response = client.post(URL, {"name": "Service.TriggerPollSeconds", "value": " 12 "}, follow=True)
    assert response.redirect_chain == [(URL, 302)]
    assert SettingValue.objects.get(name="Service.TriggerPollSeconds").value == "12"
    assert settings_version() > version
    change = SettingChange.objects.filter(name="Service.TriggerPollSeconds").get()
    assert (change.changed_by, change.source, change.old_value, change.new_value) == ("alice", "web", "", "12")
    page = html.unescape(response.content.decode())
    # The one-line outcome of config_changed_notify (no service runs in this test).
    assert "Service.TriggerPollSeconds changed (default → 12); the service will apply it within" in page
    audit = _block(page, '<section class="card" id="audit"', "</section>")
    assert re.search(r"<td>alice</td>\s*<td>web</td>\s*<td><code>Service.TriggerPollSeconds</code></td>", audit)
    assert "<code>12</code>" in _block(page, '<tr id="Service.TriggerPollSeconds"')


def test_empty_restores_the_default(client: Client) -> None:
    setting_set(name="Diagnostics.MinimumLogLevel", value="DEBUG", actor="bob", source="cli")
    response = client.post(URL, {"name": "Diagnostics.MinimumLogLevel", "value": ""}, follow=True)
    assert not SettingValue.objects.filter(name="Diagnostics.MinimumLogLevel").exists()
    assert "Diagnostics.MinimumLogLevel changed (DEBUG → default)" in html.unescape(response.content.decode())


def test_the_same_value_again_says_unchanged(client: Client) -> None:
    client.post(URL, {"name": "Service.TriggerPollSeconds", "value": "12"})
    before = _state()
    response = client.post(URL, {"name": "Service.TriggerPollSeconds", "value": "12"}, follow=True)
    assert "Service.TriggerPollSeconds unchanged." in response.content.decode()
    assert _state() == before


def test_previous_settings_are_read_before_saving(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    setting_set(name="Service.MessengerEndpoint", value="tcp://127.0.0.1:4000", actor="bob", source="cli")
    seen: list[MessengerSettings | None] = []

    def notify(*, previous: MessengerSettings | None) -> str:
        seen.append(previous)
        return "nudge sent"  # not SERVICE_TOLD: no service runs here to wait for

    monkeypatch.setattr(services, "config_changed_notify", notify)
    response = client.post(URL, {"name": "Service.MessengerEndpoint", "value": "tcp://127.0.0.1:4001"}, follow=True)
    assert [str(p.endpoint) for p in seen if p] == ["tcp://127.0.0.1:4000"]
    assert "nudge sent" in response.content.decode()


def _checkbox(page: str, name: str) -> str:
    row = _block(page, f'<tr id="{name}"')
    assert '<input type="hidden" name="value" value="false">' in row, f"{name}: no 'false' sent when unticked"
    match = re.search(r'<input type="checkbox" name="value" value="true"[^>]*>', row)
    assert match, f"{name} is not a checkbox"
    return match.group(0)


def test_booleans_are_checkboxes_ticked_by_their_value(client: Client) -> None:
    booleans = [d.name for d in SETTINGS if d.kind is Kind.BOOLEAN]
    assert booleans == ["Feeds.AnonymousRead", "Feeds.AllowOverwrite"]
    page = client.get(URL).content.decode()
    assert " checked" in _checkbox(page, "Feeds.AnonymousRead")  # default true
    assert " checked" not in _checkbox(page, "Feeds.AllowOverwrite")  # default false
    # What a browser sends: the hidden "false", then "true" when ticked (the view takes the last one).
    assert client.post(URL, {"name": "Feeds.AllowOverwrite", "value": ["false", "true"]}).status_code == 302
    assert " checked" in _checkbox(client.get(URL).content.decode(), "Feeds.AllowOverwrite")
    assert client.post(URL, {"name": "Feeds.AllowOverwrite", "value": ["false"]}).status_code == 302
    assert SettingValue.objects.get(name="Feeds.AllowOverwrite").value == "false"
    assert " checked" not in _checkbox(client.get(URL).content.decode(), "Feeds.AllowOverwrite")


def test_the_cli_sets_booleans_with_true_or_false_only() -> None:
    call_command("settings", "set", "Feeds.AnonymousRead", "False")
    assert SettingValue.objects.get(name="Feeds.AnonymousRead").value == "false"  # stored in one spelling
    assert setting_get("Feeds.AnonymousRead") is False
    call_command("settings", "set", "Feeds.AnonymousRead", "true")
    assert setting_get("Feeds.AnonymousRead") is True
    with pytest.raises(CommandError, match="must be true or false"):
        call_command("settings", "set", "Feeds.AnonymousRead", "no")
    assert setting_get("Feeds.AnonymousRead") is True


def test_a_boolean_stored_in_an_old_spelling_still_reads(client: Client) -> None:
    SettingValue.objects.create(name="Feeds.AllowOverwrite", value="yes", updated_by="old")
    assert setting_get("Feeds.AllowOverwrite") is True
    assert " checked" in _checkbox(client.get(URL).content.decode(), "Feeds.AllowOverwrite")


@pytest.mark.parametrize(("name", "value", "message"), BAD_VALUES)
def test_bad_values_show_a_field_error_and_change_nothing(client: Client, name: str, value: str, message: str) -> None:
    before = _state()
    response = client.post(URL, {"name": name, "value": value})
    assert response.status_code == 400
    assert message in _field_error(response.content.decode(), name)
    assert _state() == before


def test_unknown_setting_is_refused(client: Client) -> None:
    before = _state()
    response = client.post(URL, {"name": "No.Such", "value": "1"})
    assert response.status_code == 400
    assert "unknown setting" in html.unescape(response.content.decode())
    assert _state() == before


@pytest.mark.parametrize(("value", "message"), BAD_KEYS)
def test_bad_keys_are_refused_next_to_the_field_and_not_echoed(client: Client, value: str, message: str) -> None:
    setting_set(name=KEY_SETTING, value=generate_key(), actor="bob", source="cli")
    before = _state()
    response = client.post(URL, {"name": KEY_SETTING, "action": "set", "value": value, "confirm": "yes"})
    assert response.status_code == 400
    page = response.content.decode()
    error = re.search(r'<p class="field-error" id="key-error"[^>]*>(.*?)</p>', page, re.S)
    assert error and message in html.unescape(error.group(1))
    if value:
        assert value not in html.unescape(page)
    assert _state() == before


@pytest.mark.parametrize("action", ["generate", "set"])
def test_key_actions_need_the_confirmation(client: Client, action: str) -> None:
    before = _state()
    response = client.post(URL, {"name": KEY_SETTING, "action": action, "value": generate_key()})
    assert response.status_code == 400
    assert "tick the confirmation" in response.content.decode()
    assert _state() == before


def _key_forms_warn(page: str) -> None:
    card = _block(page, '<section class="card" id="messenger-key"', "</section>")
    assert "Every node switches to the new key." in card
    assert card.count('name="confirm" value="yes" required') == 2


def test_generate_and_set_key_show_only_fingerprints_never_the_key(client: Client) -> None:
    _key_forms_warn(client.get(URL).content.decode())
    bodies = [client.post(URL, {"name": KEY_SETTING, "action": "generate", "confirm": "yes"}, follow=True)]
    generated = SettingValue.objects.get(name=KEY_SETTING).value
    assert "Service.MessengerKey changed" in bodies[0].content.decode()
    chosen = generate_key()
    set_key = {"name": KEY_SETTING, "action": "set", "value": chosen, "confirm": "yes"}
    bodies.append(client.post(URL, set_key, follow=True))
    assert SettingValue.objects.get(name=KEY_SETTING).value == chosen
    changes = SettingChange.objects.filter(name=KEY_SETTING, source="web")
    assert changes.count() == 2 and {c.changed_by for c in changes} == {"alice"}
    Node.objects.create(name="svc-1", kind="service", key_fingerprint=key_fingerprint(parse_key(chosen)))
    bodies += [client.get(page) for page in PAGES]
    bodies.append(client.post(URL, {"name": KEY_SETTING, "action": "set", "value": "AAAA", "confirm": "yes"}))
    settings_page = bodies[-1].content.decode()
    assert key_fingerprint(parse_key(chosen)) in settings_page
    for response in bodies:
        body = response.content.decode()
        for key in (generated, chosen):
            raw = base64.b64decode(key)
            for form in (key, base64.urlsafe_b64encode(raw).decode(), raw.hex()):
                assert form.rstrip("=") not in body, f"key leaked into {response.request['PATH_INFO']}"


@pytest.mark.parametrize(
    "data",
    [
        {"name": "Service.TriggerPollSeconds", "value": "7"},
        {"name": KEY_SETTING, "action": "generate", "confirm": "yes"},
        {"name": KEY_SETTING, "action": "set", "value": generate_key(), "confirm": "yes"},
    ],
    ids=["setting", "key-generate", "key-set"],
)
def test_csrf_is_enforced_on_every_post(data: dict) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(User.objects.create_superuser("root", password="pw"))
    client.get(URL)
    before = _state()
    assert client.post(URL, data).status_code == 403
    assert _state() == before
    token = client.cookies["csrftoken"].value
    assert client.post(URL, {**data, "csrfmiddlewaretoken": token}).status_code == 302
    assert settings_version() > before[0]


def test_each_node_shows_whether_it_applied_the_current_version(client: Client) -> None:
    client.post(URL, {"name": "Service.MessengerAllowedIps", "value": "10.0.0.0/8"})
    version = settings_version()
    applied_at = timezone.now() - timedelta(seconds=3)
    Node.objects.create(name="svc-up", kind="service", settings_version=version, settings_applied_at=applied_at)
    Node.objects.create(name="svc-old", kind="service", settings_version=version - 1, settings_applied_at=applied_at)
    Node.objects.create(name="web-new", kind="web")
    page = client.get(URL).content.decode()
    nodes = _block(page, '<section class="card" id="nodes"', "</section>")
    assert f"Current settings version: <strong>{version}</strong>" in nodes
    up = _block(nodes, '<tr data-node="svc-up"')
    assert "applied" in up and "not applied yet" not in up and applied_at.strftime("%Y-%m-%d %H:%M:%S") in up
    assert "not applied yet" in _block(nodes, '<tr data-node="svc-old"')
    web = _block(nodes, '<tr data-node="web-new"')
    assert "never" in web and "not applied yet" in web


def test_the_audit_trail_lists_the_latest_fifty(client: Client) -> None:
    for seconds in range(10, 65):
        setting_set(name="Service.TriggerPollSeconds", value=str(seconds), actor=f"user{seconds}", source="cli")
    section = _block(client.get(URL).content.decode(), '<section class="card" id="audit"', "</section>")
    audit = _block(section, "<tbody>", "</tbody>")
    assert audit.count("<tr>") == 50
    assert "<td>user64</td>" in audit and "<td>user15</td>" in audit and "<td>user14</td>" not in audit
