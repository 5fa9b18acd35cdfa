"""The Cluster page: every node with its identity, heartbeat age (stale flagged), key match and settings version."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from indexer.models import Node
from messenger.config import KEY_SETTING
from messenger.crypto import generate_key, key_fingerprint, parse_key
from proget_web.administration.selectors import HEARTBEAT_SETTING, cluster_view
from proget_web.advanced_settings.selectors import settings_version
from proget_web.advanced_settings.services import setting_set
from proget_web.web_node import web_node_name

pytestmark = pytest.mark.django_db

URL = "/administration/cluster"


@pytest.fixture
def client() -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("root", password="pw"))
    return client


def _row(page: str, name: str) -> str:
    start = page.index(f'<tr data-node="{name}"')
    return page[start : page.index("</tr>", start)]


def _node(name: str, *, age: int, **fields: object) -> Node:
    return Node.objects.create(name=name, heartbeat_at=timezone.now() - timedelta(seconds=age), **fields)


def test_every_node_is_shown_with_its_identity(client: Client) -> None:
    _node("svc-a", age=5, kind="service", ip="10.0.0.5", endpoint="tcp://*:7400", version="1.2.3")
    _node("web-a", age=5, kind="web", ip="10.0.0.9")
    page = client.get(URL).content.decode()
    service = _row(page, "svc-a")
    for text in ("service", "10.0.0.5", "<code>tcp://*:7400</code>", "1.2.3", "s ago"):
        assert text in service
    assert "web" in _row(page, "web-a") and "10.0.0.9" in _row(page, "web-a")


def test_the_web_node_serving_the_page_lists_itself(client: Client) -> None:
    page = client.get(URL).content.decode()
    assert "No node has registered yet." not in page
    assert web_node_name() in _row(page, web_node_name())


def test_a_node_is_stale_after_three_missed_heartbeats(client: Client) -> None:
    _node("fresh", age=30, kind="service")  # default interval 15 s: stale after 45 s
    _node("late", age=60, kind="service")
    page = client.get(URL).content.decode()
    assert 'class="stale"' not in _row(page, "fresh") and "alive" in _row(page, "fresh")
    assert 'class="stale"' in _row(page, "late") and ">stale<" in _row(page, "late")
    assert "older than 45 s" in page

    setting_set(name=HEARTBEAT_SETTING, value="30", actor="t", source="cli")  # now stale after 90 s
    page = client.get(URL).content.decode()
    assert 'class="stale"' not in _row(page, "late")


def test_staleness_boundary_is_exactly_three_intervals() -> None:
    now = timezone.now()
    Node.objects.create(name="edge", kind="service", heartbeat_at=now - timedelta(seconds=45))
    Node.objects.create(name="past", kind="service", heartbeat_at=now - timedelta(seconds=46))
    rows = {row.node.name: row for row in cluster_view(now=now).nodes}
    assert (rows["edge"].stale, rows["past"].stale) == (False, True)
    assert rows["past"].heartbeat_age == "46 s ago"


def test_key_fingerprints_are_compared_with_the_current_key(client: Client) -> None:
    key = generate_key()
    setting_set(name=KEY_SETTING, value=key, actor="t", source="cli")
    current = key_fingerprint(parse_key(key))
    other = key_fingerprint(parse_key(generate_key()))
    _node("same", age=1, kind="service", key_fingerprint=current)
    _node("other", age=1, kind="service", key_fingerprint=other)
    _node("unknown", age=1, kind="web")
    page = client.get(URL).content.decode()
    assert f"Current key fingerprint: <code>{current}</code>" in page
    assert "matches" in _row(page, "same") and "differs" not in _row(page, "same")
    assert other in _row(page, "other") and "differs" in _row(page, "other")
    assert "matches" not in _row(page, "unknown") and "differs" not in _row(page, "unknown")
    assert key not in page


def test_settings_version_applied_per_node(client: Client) -> None:
    setting_set(name="Service.TriggerPollSeconds", value="9", actor="t", source="cli")
    version = settings_version()
    _node("now", age=1, kind="service", settings_version=version)
    _node("behind", age=1, kind="service", settings_version=version - 1)
    page = client.get(URL).content.decode()
    assert f"v{version}" in _row(page, "now") and "current" in _row(page, "now")
    assert f"v{version - 1}" in _row(page, "behind") and "behind</span>" in _row(page, "behind")


def test_get_changes_nothing(client: Client) -> None:
    _node("svc", age=1, kind="service")
    version = settings_version()
    client.get(URL)
    assert settings_version() == version
    assert Node.objects.get(name="svc").settings_version == 0
