"""The Cluster page: every node with its role (primary marker), identity, heartbeat age (stale flagged), key match
and settings version; the primary lease and the latest failovers with their reasons."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from administration.selectors import FAILOVER_HISTORY_LENGTH, HEARTBEAT_SETTING, cluster_view
from cluster.models import Failover, Node, ServiceLease
from indexer.messenger_config import KEY_SETTING
from messenger.crypto import generate_key, key_fingerprint, parse_key
from proget_web.web_node import web_node_name
from settings_store.selectors import settings_version
from settings_store.services import setting_set

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
    for text in ("standby", "10.0.0.5", "<code>tcp://*:7400</code>", "1.2.3", "s ago"):
        assert text in service
    assert "<td>web</td>" in _row(page, "web-a") and "10.0.0.9" in _row(page, "web-a")


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


def _lease(holder: str, *, token: int, expires_in: int, released: bool = False) -> ServiceLease:
    now = timezone.now()
    return ServiceLease.objects.create(holder=holder, token=token, acquired_at=now - timedelta(seconds=200),
                                       renewed_at=now - timedelta(seconds=2),
                                       expires_at=now + timedelta(seconds=expires_in), released=released)


def test_roles_primary_standby_and_web(client: Client) -> None:
    _node("svc-a", age=1, kind="service")
    _node("svc-b", age=1, kind="service")
    _node("web-a", age=1, kind="web")
    _lease("svc-b", token=7, expires_in=8)
    page = client.get(URL).content.decode()
    assert '<span class="tag ok">primary</span>' in _row(page, "svc-b")
    assert '<span class="tag">standby</span>' in _row(page, "svc-a") and "primary" not in _row(page, "svc-a")
    assert "<td>web</td>" in _row(page, "web-a")
    lease = page[page.index('<p id="lease">') : page.index("</p>", page.index('<p id="lease">'))]
    for text in ("<strong>svc-b</strong>", "lease token 7", "held for 3 min", "renewed 2 s ago", "in force"):
        assert text in lease


@pytest.mark.parametrize("expires_in, released", [(-1, False), (8, True)], ids=["expired", "released"])
def test_a_holder_whose_lease_is_not_in_force_is_marked(client: Client, expires_in: int, released: bool) -> None:
    _node("svc-a", age=1, kind="service")
    _lease("svc-a", token=3, expires_in=expires_in, released=released)
    page = client.get(URL).content.decode()
    assert "primary, lease expired" in _row(page, "svc-a")
    assert "in force" not in page


def test_no_lease_yet(client: Client) -> None:
    _node("svc-a", age=1, kind="service")
    page = client.get(URL).content.decode()
    assert "none yet (no service node has taken the lease)" in page
    assert '<span class="tag">standby</span>' in _row(page, "svc-a")
    assert "No primary has been chosen yet." in page


def test_the_latest_failovers_with_their_reasons_newest_first(client: Client) -> None:
    start = timezone.now() - timedelta(hours=1)
    for token in range(1, FAILOVER_HISTORY_LENGTH + 3):
        Failover.objects.create(at=start + timedelta(minutes=token), from_node=f"svc-{token - 1}" if token > 1 else "",
                                to_node=f"svc-{token}", token=token, reason=f"reason number {token}")
    page = client.get(URL).content.decode()
    history = page[page.index('id="failovers"') :]
    shown = [token for token in range(1, FAILOVER_HISTORY_LENGTH + 3) if f"reason number {token}<" in history]
    newest = list(range(FAILOVER_HISTORY_LENGTH + 2, 2, -1))
    assert shown == sorted(newest)
    assert history.index("reason number 7") < history.index("reason number 3")
    assert "<td>svc-6</td>" in history and "<td>7</td>" in history
