"""The Cluster page's actions: removing a stale node (a live one or the primary is refused), a node that was
removed while away registering again, and a service node's own messenger endpoint (form, validation, audit)."""
from __future__ import annotations

import html
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.utils import timezone

from administration.services import endpoint_override_audit_name
from cluster.models import Node, ServiceLease
from cluster.nodes import NodeIdentity, node_heartbeat
from indexer.messenger_config import ENDPOINT_SETTING, KEY_SETTING, messenger_settings
from messenger.crypto import generate_key
from proget_web import web_node
from settings_store.models import SettingChange
from settings_store.selectors import settings_version
from settings_store.services import setting_set

pytestmark = pytest.mark.django_db

CLUSTER = "/administration/cluster"
STALE = 60  # seconds since the last heartbeat: past the default 45 s
FRESH = 5


def remove_url(node: str) -> str:
    return f"/administration/cluster/nodes/{node}/remove"


def endpoint_url(node: str) -> str:
    return f"/administration/cluster/nodes/{node}/endpoint"


@pytest.fixture(autouse=True)
def messenger_key(db: None) -> None:
    """The key stored up front, so no request generates it (which would bump the settings version)."""
    setting_set(name=KEY_SETTING, value=generate_key(), actor="test", source="test")


@pytest.fixture
def client() -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("root", password="pw"))
    return client


@pytest.fixture
def viewer() -> Client:
    """A user who may see the Cluster page but not change anything."""
    user = User.objects.create_user("viewer", password="pw")
    user.user_permissions.add(Permission.objects.get(codename="view_service_status"))
    client = Client()
    client.force_login(user)
    return client


def _node(name: str, *, age: int, kind: str = "service", **fields: object) -> Node:
    return Node.objects.create(name=name, kind=kind, heartbeat_at=timezone.now() - timedelta(seconds=age), **fields)


def _holds_lease(name: str, *, expires_in: int) -> None:
    ServiceLease.objects.create(holder=name, token=4, expires_at=timezone.now() + timedelta(seconds=expires_in))


def _identity(name: str, kind: str = "service") -> NodeIdentity:
    return NodeIdentity(name=name, kind=kind, ip="127.0.0.9", endpoint="tcp://127.0.0.9:7400", version="9.9",
                        key_fingerprint="ab12")


# -- removing a stale node -------------------------------------------------------------------------------


def test_a_stale_node_has_a_remove_button_and_is_removed(client: Client) -> None:
    _node("gone", age=STALE)
    _node("here", age=FRESH)
    page = client.get(CLUSTER).content.decode()
    assert f'action="{remove_url("gone")}"' in page
    assert remove_url("here") not in page

    response = client.post(remove_url("gone"), follow=True)
    assert response.redirect_chain == [(CLUSTER, 302)]
    assert "Node gone removed. If it is still running, it registers again" in response.content.decode()
    assert not Node.objects.filter(name="gone").exists() and Node.objects.filter(name="here").exists()


def test_removing_a_node_with_an_override_audits_it_as_cleared(client: Client) -> None:
    """If the node is alive after all, the new settings version makes it drop the override its row no longer has."""
    _node("gone", age=STALE, endpoint_override="tcp://*:7401")
    version = settings_version()
    assert client.post(remove_url("gone")).status_code == 302
    change = SettingChange.objects.get(name="Service.MessengerEndpoint@gone")
    assert (change.old_value, change.new_value, change.changed_by, change.version) == (
        "tcp://*:7401", "", "root", version + 1)
    assert settings_version() == version + 1


def test_removing_a_node_without_an_override_leaves_the_settings_alone(client: Client) -> None:
    _node("gone", age=STALE)
    version = settings_version()
    assert client.post(remove_url("gone")).status_code == 302
    assert settings_version() == version and not SettingChange.objects.filter(name__contains="@").exists()


def test_removal_is_logged_with_who_did_it(client: Client, caplog: pytest.LogCaptureFixture) -> None:
    _node("gone", age=STALE, ip="10.0.0.7")
    client.post(remove_url("gone"))
    assert "root removed service node gone (ip 10.0.0.7" in caplog.text


def test_a_live_node_is_refused_with_the_reason(client: Client) -> None:
    _node("here", age=FRESH)
    response = client.post(remove_url("here"))
    page = response.content.decode()
    assert response.status_code == 409
    assert "Nothing was removed: here is alive (last heartbeat 5 s ago)" in page and "Traceback" not in page
    assert Node.objects.filter(name="here").exists()


def test_the_primary_is_refused_even_when_its_registry_heartbeat_is_stale(client: Client) -> None:
    _node("boss", age=STALE)
    _holds_lease("boss", expires_in=8)
    assert remove_url("boss") not in client.get(CLUSTER).content.decode()
    response = client.post(remove_url("boss"))
    assert response.status_code == 409
    assert "boss holds the primary lease" in response.content.decode()
    assert Node.objects.filter(name="boss").exists()


def test_a_holder_whose_lease_expired_can_be_removed(client: Client) -> None:
    _node("old-boss", age=STALE)
    _holds_lease("old-boss", expires_in=-30)
    assert remove_url("old-boss") in client.get(CLUSTER).content.decode()
    assert client.post(remove_url("old-boss")).status_code == 302
    assert not Node.objects.filter(name="old-boss").exists()


def test_a_name_with_spaces_and_slashes_round_trips(client: Client) -> None:
    _node("rack 1/svc (old)", age=STALE, kind="web")
    page = client.get(CLUSTER).content.decode()
    assert 'action="/administration/cluster/nodes/rack%201/svc%20(old)/remove"' in page
    assert client.post("/administration/cluster/nodes/rack%201/svc%20(old)/remove").status_code == 302
    assert not Node.objects.filter(name="rack 1/svc (old)").exists()


def test_removing_an_unknown_node_is_a_404(client: Client) -> None:
    assert client.post(remove_url("nobody")).status_code == 404


def test_remove_is_post_only(client: Client) -> None:
    _node("gone", age=STALE)
    assert client.get(remove_url("gone")).status_code == 405
    assert Node.objects.filter(name="gone").exists()


def test_a_viewer_sees_no_buttons_and_may_not_remove_or_change(viewer: Client) -> None:
    _node("gone", age=STALE)
    page = viewer.get(CLUSTER).content.decode()
    assert "gone" in page and remove_url("gone") not in page and endpoint_url("gone") not in page
    assert viewer.post(remove_url("gone")).status_code == 403
    assert viewer.get(endpoint_url("gone")).status_code == 403
    assert viewer.post(endpoint_url("gone"), {"endpoint": "tcp://*:7401"}).status_code == 403
    assert Node.objects.get(name="gone").endpoint_override == ""


# -- a removed node that is alive registers again ----------------------------------------------------------


def test_a_heartbeat_re_creates_a_removed_row() -> None:
    assert node_heartbeat(identity=_identity("svc-x"), settings_version=7) is True
    node = Node.objects.get(name="svc-x")
    assert (node.kind, node.ip, node.endpoint, node.version, node.key_fingerprint) == (
        "service", "127.0.0.9", "tcp://127.0.0.9:7400", "9.9", "ab12")
    assert node.settings_version == 7 and node.settings_applied_at is not None


def test_a_heartbeat_on_an_existing_row_refreshes_it_in_place() -> None:
    _node("svc-x", age=STALE, settings_version=3, endpoint_override="tcp://*:7500")
    assert node_heartbeat(identity=_identity("svc-x"), settings_version=7) is False
    node = Node.objects.get(name="svc-x")
    assert (timezone.now() - node.heartbeat_at).total_seconds() < FRESH
    assert node.endpoint == "tcp://127.0.0.9:7400" and node.endpoint_override == "tcp://*:7500"
    assert node.settings_version == 3  # recorded when the node applies settings, not by a beat


def test_a_removed_web_node_registers_again_with_its_next_beat(client: Client) -> None:
    name = web_node.web_node_name()
    beat = web_node._Beat()  # this web process's registry beat, as its middleware runs it
    beat.run()
    client.get(CLUSTER)  # the client's middleware beats on its first request, then not for an interval
    Node.objects.filter(name=name).update(heartbeat_at=timezone.now() - timedelta(seconds=STALE))
    assert client.post(remove_url(name)).status_code == 302
    assert not Node.objects.filter(name=name).exists()
    beat.run()
    node = Node.objects.get(name=name)
    assert node.kind == "web" and node.settings_version == settings_version()


# -- a service node's own endpoint -------------------------------------------------------------------------


def test_the_change_link_is_offered_for_service_nodes_only(client: Client) -> None:
    _node("svc-a", age=FRESH, endpoint="tcp://127.0.0.1:7400")
    _node("web-a", age=FRESH, kind="web")
    page = client.get(CLUSTER).content.decode()
    assert f'href="{endpoint_url("svc-a")}">change</a>' in page
    assert endpoint_url("web-a") not in page
    assert client.get(endpoint_url("web-a")).status_code == 404
    assert client.get(endpoint_url("nobody")).status_code == 404


def test_the_form_shows_the_cluster_wide_and_the_current_endpoint(client: Client) -> None:
    setting_set(name=ENDPOINT_SETTING, value="tcp://*:7400", actor="t", source="cli")
    _node("svc-a", age=FRESH, endpoint="tcp://127.0.0.2:7400", endpoint_override="tcp://*:7401")
    response = client.get(endpoint_url("svc-a"))
    page = response.content.decode()
    assert response.status_code == 200
    assert "The cluster-wide endpoint is <code>tcp://*:7400</code>" in page
    assert "Now listening on: <code>tcp://127.0.0.2:7400</code>" in page
    assert 'value="tcp://*:7401"' in page


def test_saving_an_override_stores_it_audits_it_and_bumps_the_settings_version(client: Client) -> None:
    _node("svc-a", age=FRESH)
    version = settings_version()
    response = client.post(endpoint_url("svc-a"), {"endpoint": " tcp://LOCALHOST:7401 "}, follow=True)
    assert response.redirect_chain == [(CLUSTER, 302)]
    page = response.content.decode()
    assert "svc-a now uses its own endpoint tcp://LOCALHOST:7401; it applies it within 5 s." in page
    assert "own endpoint <code>tcp://LOCALHOST:7401</code>" in page
    assert Node.objects.get(name="svc-a").endpoint_override == "tcp://LOCALHOST:7401"
    assert settings_version() == version + 1
    change = SettingChange.objects.get(name=endpoint_override_audit_name("svc-a"))
    assert (change.name, change.old_value, change.new_value, change.changed_by, change.source, change.version) == (
        "Service.MessengerEndpoint@svc-a", "", "tcp://LOCALHOST:7401", "root", "web", version + 1)


def test_an_ipv6_override_is_stored_in_canonical_form(client: Client) -> None:
    _node("svc-a", age=FRESH)
    client.post(endpoint_url("svc-a"), {"endpoint": "tcp://[0:0::1]:7401"})
    assert Node.objects.get(name="svc-a").endpoint_override == "tcp://[::1]:7401"


def test_saving_the_same_value_changes_nothing(client: Client) -> None:
    _node("svc-a", age=FRESH, endpoint_override="tcp://*:7401")
    version = settings_version()
    response = client.post(endpoint_url("svc-a"), {"endpoint": "tcp://*:7401"}, follow=True)
    assert "The endpoint of svc-a is unchanged." in response.content.decode()
    assert settings_version() == version and not SettingChange.objects.filter(name__contains="@").exists()


def test_a_blank_value_restores_the_cluster_wide_endpoint(client: Client) -> None:
    _node("svc-a", age=FRESH, endpoint_override="tcp://*:7401")
    response = client.post(endpoint_url("svc-a"), {"endpoint": "  "}, follow=True)
    assert "svc-a now uses the cluster-wide endpoint" in response.content.decode()
    assert Node.objects.get(name="svc-a").endpoint_override == ""
    change = SettingChange.objects.get(name="Service.MessengerEndpoint@svc-a")
    assert (change.old_value, change.new_value) == ("tcp://*:7401", "")


def test_the_audit_name_of_a_long_node_name_fits_the_audit_table(client: Client) -> None:
    name = "n" * 200
    _node(name, age=FRESH)
    assert client.post(endpoint_url(name), {"endpoint": "tcp://*:7401"}).status_code == 302
    (change,) = SettingChange.objects.filter(name__startswith="Service.MessengerEndpoint@")
    assert len(change.name) == 100 and Node.objects.get(name=name).endpoint_override == "tcp://*:7401"


ENDPOINT_FORMS = "Service.MessengerEndpoint must be empty, pipe://NAME, tcp://HOST:PORT or tcp://*:PORT (got "
PORT_RANGE = "the port must be a number from 1 to 65535"


@pytest.mark.parametrize(
    "value, errors",
    [
        ("tcp://", [ENDPOINT_FORMS, "the host and port are missing"]),
        ("tcp://host:99999", [ENDPOINT_FORMS, PORT_RANGE]),
        ("tcp://host:0", [ENDPOINT_FORMS, PORT_RANGE]),
        ("http://x", [ENDPOINT_FORMS, "it must start with pipe:// or tcp://"]),
        ("pipe://../etc", [ENDPOINT_FORMS, "the pipe name must be 1 to 64 letters, digits"]),
        ("tcp://*:7401" + "0" * 10_240, ["Ensure this value has at most 300 characters (it has 10252)."]),
        ("tcp://*:74\x0001", ["Null characters are not allowed."]),
    ],
    ids=["no-host-or-port", "port-out-of-range", "port-zero", "http", "pipe-path", "10-KB", "NUL"],
)
def test_a_bad_endpoint_is_refused_with_the_field_error(client: Client, value: str, errors: list[str]) -> None:
    _node("svc-a", age=FRESH, endpoint_override="tcp://*:7401")
    version = settings_version()
    response = client.post(endpoint_url("svc-a"), {"endpoint": value})
    page = response.content.decode()
    assert response.status_code == 400
    field_error = html.unescape(
        page[page.index('class="field-error"') : page.index("</p>", page.index('class="field-error"'))]
    )
    for error in errors:
        assert error in field_error
    assert Node.objects.get(name="svc-a").endpoint_override == "tcp://*:7401"
    assert settings_version() == version and not SettingChange.objects.filter(name__contains="@").exists()


# -- the node whose name this process runs as uses its override --------------------------------------------


def test_messenger_settings_use_this_nodes_override_only(settings: object) -> None:
    setting_set(name=ENDPOINT_SETTING, value="tcp://127.0.0.1:7400", actor="t", source="cli")
    _node("svc-a", age=FRESH, endpoint_override="tcp://127.0.0.1:7401")
    _node("svc-b", age=FRESH)
    settings.NODE_NAME = "svc-a"
    assert str(messenger_settings().endpoint) == "tcp://127.0.0.1:7401"
    settings.NODE_NAME = "svc-b"
    assert str(messenger_settings().endpoint) == "tcp://127.0.0.1:7400"
    Node.objects.filter(name="svc-a").update(endpoint_override="")
    settings.NODE_NAME = "svc-a"
    assert str(messenger_settings().endpoint) == "tcp://127.0.0.1:7400"


def test_an_override_the_primary_refuses_is_a_warning_not_a_success(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    _node("svc-a", age=FRESH)
    _holds_lease("svc-a", expires_in=10)  # the primary is nudged and asked how applying went
    refusal = "the service refused it: cannot listen on tcp://*:7401 (Address already in use); staying on pipe://x"
    monkeypatch.setattr("administration.services._service_told", lambda **_: (refusal, True))
    response = client.post(endpoint_url("svc-a"), {"endpoint": "tcp://*:7401"}, follow=True)
    page = html.unescape(response.content.decode())
    assert f'class="message warning" role="status">svc-a keeps its endpoint: {refusal}.' in page
    assert "now uses" not in page
