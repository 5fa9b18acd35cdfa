"""A web process registers itself in the node registry on its first request and records the settings it runs with."""
from __future__ import annotations

import pytest
from django.db import DatabaseError
from django.test import Client

from cluster.models import Node
from proget_web import web_node
from settings_store.selectors import settings_version
from settings_store.services import setting_set

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_beat(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test's client gets a middleware chain of its own; make every request beat."""
    monkeypatch.setattr(web_node, "beat_interval", lambda: 0.0)


def test_the_first_request_registers_the_web_node_with_the_current_settings_version() -> None:
    setting_set(name="Service.MessengerEndpoint", value="tcp://127.0.0.1:4999", actor="t", source="cli")
    Client().get("/accounts/login/")
    node = Node.objects.get(name=web_node.web_node_name())
    assert node.kind == Node.Kind.WEB
    assert node.settings_version == settings_version() and node.settings_applied_at is not None


def test_a_later_beat_records_a_newer_settings_version() -> None:
    client = Client()
    client.get("/accounts/login/")
    setting_set(name="Service.MessengerEndpoint", value="pipe://other", actor="t", source="cli")
    client.get("/accounts/login/")
    assert Node.objects.get(name=web_node.web_node_name()).settings_version == settings_version()


def test_a_registry_failure_never_fails_the_page(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(**_: object) -> None:
        raise DatabaseError("database is locked")

    monkeypatch.setattr(web_node, "node_register", broken)
    assert Client().get("/accounts/login/").status_code == 200
    assert not Node.objects.filter(name=web_node.web_node_name()).exists()
