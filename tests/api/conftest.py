"""Fixtures of the API tests: keys with given scopes/states, a feed, and a fake service behind the messenger."""
from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.utils import timezone

from api import service as api_service
from api_keys.keys import SCOPE_PERMISSIONS, api_key_create, api_key_revoke
from api_keys.models import SCOPE_NAMES, ApiKey
from feeds.models import Feed
from feeds.services import feed_create
from indexer import trigger_requests
from messenger.errors import RemoteError
from messenger.messages import UNKNOWN_RUNNER, UNKNOWN_TYPE
from settings_store.services import setting_set

RUNNER = {"name": "Feed Indexing", "state": "idle", "progressPercent": None, "progressMessage": "",
          "lastStartedAt": "2024-01-01T00:00:00+00:00", "lastDuration": 1.5, "lastResult": "failed",
          "lastError": "boom", "lastMessage": "", "nextRunAt": None, "interval": 300.0}
SNAPSHOT = {
    "service": {"node": "svc-1", "version": "0.1.0", "uptime": 12.5, "fingerprint": "abcd", "endpoint": "x",
                "settingsVersion": 3, "subscribers": 2,
                "messenger": {"connections_open": 1, "connections_total": 9, "handshakes_ok": 8,
                              "rejects": {"bad-proof": 4}, "frames_in": 100, "frames_out": 120,
                              "bytes_in": 5000, "bytes_out": 7000}},
    "logs": [], "runners": {"Feed Indexing": RUNNER}, "heartbeat": None, "seq": 5,
}


class FakeService:
    """Stands in for indexer.messenger_config.service_call: canned replies, and every request it was sent."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict | None]] = []
        self.running: set[str] = set()

    def __call__(self, type: str, *, body: dict | None = None, timeout: float, config: Any = None) -> dict:
        self.calls.append((type, body))
        name = (body or {}).get("name")
        if type.startswith("runner.") and name != RUNNER["name"]:
            raise RemoteError(f"unknown runner {name!r} (known: Feed Indexing)", code=UNKNOWN_RUNNER)
        if type == "status.snapshot":
            return SNAPSHOT
        if type == "runner.run":
            if name in self.running:
                return {"started": False, "message": f"{name} is already running"}
            return {"started": True, "message": f"{name} started"}
        if type in ("runner.pause", "runner.resume"):
            return {**RUNNER, "state": "paused" if type == "runner.pause" else "idle"}
        if type == "trigger.nudge":
            return {"outcomes": [f"trigger {body['id']} started"]}
        raise RemoteError("not supported", code=UNKNOWN_TYPE)


@pytest.fixture
def service(monkeypatch: pytest.MonkeyPatch) -> FakeService:
    fake = FakeService()
    monkeypatch.setattr(api_service, "service_call", fake)
    monkeypatch.setattr(trigger_requests, "service_call", fake)  # the nudge after a reindex
    return fake


@pytest.fixture
def owner(db: None) -> User:
    """A user holding every permission a scope stands for, so make_key can give a key any scope."""
    user = User.objects.create_user("keyowner", password="pw")
    for perm in filter(None, SCOPE_PERMISSIONS.values()):
        app_label, codename = perm.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return user


KeyMaker = Callable[..., str]


@pytest.fixture
def make_key(owner: User) -> KeyMaker:
    """make_key(*scopes, revoked=False, expired=False) -> the key's token."""

    def make(*scopes: str, revoked: bool = False, expired: bool = False) -> str:
        issued = api_key_create(name="test", owner=owner, scopes=scopes or SCOPE_NAMES)
        if revoked:
            api_key_revoke(key_id=issued.key.id)
        if expired:
            ApiKey.objects.filter(id=issued.key.id).update(expires_at=timezone.now() - timedelta(seconds=1))
        return issued.token

    return make


@pytest.fixture
def feed(db: None, tmp_path: Path) -> Feed:
    setting_set(name="Storage.PackagesRootPath", value=str(tmp_path / "packages"), actor="test", source="test")
    return feed_create(name="main")
