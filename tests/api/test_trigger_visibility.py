"""/api/triggers/<id> shows a key only what its owner may see: their own triggers (asked for on a page, by an upload
or with any of their keys); every trigger for owners with view_service_status; anyone else's is a 404 like a missing
one, so sequential ids reveal nothing."""
from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from api_keys.keys import api_key_create
from indexer.models import Trigger

pytestmark = pytest.mark.django_db


def _token(user: User, *scopes: str) -> str:
    return api_key_create(name="test", owner=user, scopes=scopes or ("feeds:read",)).token


def _status(token: str, trigger: Trigger) -> int:
    return Client().get(f"/api/triggers/{trigger.id}", HTTP_X_APIKEY=token).status_code


def _trigger(requested_by: str) -> Trigger:
    return Trigger.objects.create(kind=Trigger.Kind.FEED_REINDEX, target="main", requested_by=requested_by)


def test_another_users_trigger_is_404_like_a_missing_one(service, feed) -> None:
    alice, mallory = User.objects.create_user("alice"), User.objects.create_user("mallory")
    alice.user_permissions.add(Permission.objects.get(codename="reindex_feed"))  # a key's scope needs its permission
    asked = Client().post("/api/feeds/main/reindex", HTTP_X_APIKEY=_token(alice, "feeds:reindex"))
    trigger = Trigger.objects.get(id=asked.json()["trigger"]["id"])
    response = Client().get(f"/api/triggers/{trigger.id}", HTTP_X_APIKEY=_token(mallory))
    missing = Client().get(f"/api/triggers/{trigger.id + 1}", HTTP_X_APIKEY=_token(mallory))
    assert (response.status_code, missing.status_code) == (404, 404)
    assert response.json()["error"].replace(str(trigger.id), "N") == missing.json()["error"].replace(
        str(trigger.id + 1), "N")
    assert _status(_token(alice), trigger) == 200  # another key of the same owner


def test_an_owner_sees_the_triggers_asked_for_on_pages_and_uploads() -> None:
    alice = User.objects.create_user("alice")
    assert _status(_token(alice), _trigger("alice")) == 200
    for someone_else in ("al", "alice2", "alice.b (API key 3)", "", "mallory (API key 1)"):
        assert _status(_token(alice), _trigger(someone_else)) == 404, someone_else
    assert _status(_token(User.objects.create_user("al")), _trigger("alice (API key 1)")) == 404


def test_owners_who_may_watch_the_service_see_every_trigger() -> None:
    watcher, root = User.objects.create_user("watcher"), User.objects.create_superuser("root")
    watcher.user_permissions.add(Permission.objects.get(codename="view_service_status"))
    trigger = _trigger("alice (API key 7)")
    assert _status(_token(watcher), trigger) == 200
    assert _status(_token(root), trigger) == 200
