"""API keys: shown once, stored as a hash only, never logged, compared in constant time; the page and the CLI."""
from __future__ import annotations

import hmac
import logging
import re
from io import StringIO

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client

from api_keys import keys
from api_keys.keys import ApiKeyError, api_key_authenticate, api_key_create, request_key_scopes, request_key_user
from api_keys.models import ApiKey
from feeds.upload import upload_permitted

pytestmark = pytest.mark.django_db

TOKEN_RE = re.compile(r"pgk_(\d+)_([A-Za-z0-9_-]{43})")
PAGE = "/administration/api-keys"


def _secret(token: str) -> str:
    """The secret part of a token: what must never be logged (it may itself contain '_')."""
    return keys.token_split(token)[1]


def _database_text() -> str:
    """Every row of every table, as text: what a stolen database backup would reveal."""
    dump = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f'SELECT * FROM "{table}"')
            dump.extend(repr(row) for row in cursor.fetchall())
    return "\n".join(dump)


def test_key_format_and_only_a_hash_is_stored(owner, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    issued = api_key_create(name="ci", owner=owner, scopes=["feeds:read"])
    match = TOKEN_RE.fullmatch(issued.token)
    assert match and int(match[1]) == issued.key.id
    secret = match[2]
    assert api_key_authenticate(token=issued.token, ip="10.0.0.7").id == issued.key.id
    with pytest.raises(ApiKeyError):
        api_key_authenticate(token=issued.token[:-1] + ("A" if issued.token[-1] != "A" else "B"))
    dump = _database_text()
    assert secret not in dump and issued.token not in dump
    assert keys.secret_hash(secret) in dump  # the hash is what is kept
    assert secret not in caplog.text
    assert f"API key {issued.key.id}" in caplog.text  # logged by id


def test_keys_sent_to_the_api_are_not_logged(make_key, caplog, service) -> None:
    caplog.set_level(logging.DEBUG)
    good, revoked = make_key("service:read"), make_key("service:read", revoked=True)
    bad = good[:-4] + "AAAA"
    for token in (good, revoked, bad, "pgk_999_nope"):
        Client().get("/api/service/status", HTTP_X_APIKEY=token)
    for token in (good, revoked, bad):
        assert _secret(token) not in caplog.text
    assert "refused: API key revoked" in caplog.text and "refused: invalid" in caplog.text


def test_secret_is_compared_with_hmac_compare_digest(owner, monkeypatch) -> None:
    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    issued = api_key_create(name="ci", owner=owner, scopes=["feeds:read"])
    api_key_authenticate(token=issued.token)
    assert calls == [(issued.key.secret_hash, issued.key.secret_hash)]
    with pytest.raises(ApiKeyError):
        api_key_authenticate(token=f"pgk_{issued.key.id}_wrong")
    with pytest.raises(ApiKeyError):
        api_key_authenticate(token="pgk_424242_unknown-id")
    assert len(calls) == 3  # a wrong secret and an unknown id are compared too, never short-circuited


@pytest.mark.parametrize("token", ["", "pgk", "pgk_", "pgk_1_", "pgk_x_abc", "xyz_1_abc", "pgk_\u0661_abc",
                                   "pgk_" + "9" * 30 + "_a"])
def test_malformed_tokens_are_invalid(owner, token) -> None:
    with pytest.raises(ApiKeyError, match="invalid API key"):
        api_key_authenticate(token=token)


def test_inactive_owner_disables_the_key(owner) -> None:
    issued = api_key_create(name="ci", owner=owner, scopes=["feeds:read"])
    owner.is_active = False
    owner.save()
    with pytest.raises(ApiKeyError, match="owner is inactive"):
        api_key_authenticate(token=issued.token)


def test_last_use_time_and_ip_are_recorded(make_key, service) -> None:
    token = make_key("service:read")
    Client(REMOTE_ADDR="10.1.2.3").get("/api/service/status", HTTP_X_APIKEY=token)
    key = ApiKey.objects.get()
    assert key.last_used_ip == "10.1.2.3" and key.last_used_at is not None


@pytest.mark.parametrize(("scopes", "name", "error"), [
    ([], "x", "at least one scope"), (["feeds:fly"], "x", "unknown scope"), (["feeds:read"], " ", "name"),
])
def test_create_refuses_bad_input(owner, scopes, name, error) -> None:
    with pytest.raises(ApiKeyError, match=error):
        api_key_create(name=name, owner=owner, scopes=scopes)
    assert not ApiKey.objects.exists()


# --- feeds: what a key lets pip and twine do (the hook feeds/access.py and feeds/views_upload.py call) ---

def test_feed_scopes_and_the_upload_principal(make_key, feed, rf) -> None:
    def request(token: str | None):
        return rf.get("/pypi/main/simple/", **({"HTTP_X_APIKEY": token} if token else {}))

    reader, uploader = make_key("feeds:read"), make_key("feeds:upload")
    assert request_key_scopes(request(reader)) == {"feeds:read"}
    assert request_key_scopes(request(reader[:-2] + "zz")) == frozenset()
    assert request_key_scopes(request(None)) == frozenset()
    assert request_key_user(request(reader[:-2] + "zz")) is None
    assert upload_permitted(user=request_key_user(request(uploader)), feed=feed) is True
    assert upload_permitted(user=request_key_user(request(reader)), feed=feed) is False
    assert request_key_user(request(uploader)).get_username().startswith("keyowner (API key ")


# --- the page ---

def _page_client(*, perm: bool) -> Client:
    user = User.objects.create_user("admin", password="pw")
    if perm:
        user.user_permissions.add(Permission.objects.get(codename="change_settings"))
    client = Client()
    client.force_login(user)
    return client


def test_page_needs_change_settings() -> None:
    assert _page_client(perm=False).get(PAGE).status_code == 403
    assert Client().get(PAGE).status_code == 302  # to the login page


def test_page_creates_shows_once_lists_and_revokes(caplog) -> None:
    caplog.set_level(logging.DEBUG)
    client = _page_client(perm=True)
    User.objects.get(username="admin").user_permissions.add(Permission.objects.get(codename="upload_package"))
    response = client.post(PAGE, {"action": "create", "name": "CI uploads", "scopes": ["feeds:upload", "feeds:read"],
                                  "expires_days": "30"})
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    token = TOKEN_RE.search(response.content.decode())[0]
    key = ApiKey.objects.get()
    assert key.scopes == ["feeds:read", "feeds:upload"] and key.expires_at is not None
    assert key.owner.username == "admin"
    listing = client.get(PAGE).content.decode()
    assert "CI uploads" in listing and token not in listing and _secret(token) not in caplog.text
    client.post(PAGE, {"action": "revoke", "key_id": str(key.id)})
    key.refresh_from_db()
    assert key.revoked
    with pytest.raises(ApiKeyError, match="revoked"):
        api_key_authenticate(token=token)


def test_page_refuses_a_key_without_scopes() -> None:
    response = _page_client(perm=True).post(PAGE, {"action": "create", "name": "x"})
    assert response.status_code == 400 and not ApiKey.objects.exists()


# --- the command ---

def test_command_create_list_revoke(owner, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    out, err = StringIO(), StringIO()
    call_command("apikeys", "create", "deploy", "--owner", "keyowner", "--scope", "settings:read",
                 "--scope", "metrics:read", "--expires-days", "7", verbosity=2, stdout=out, stderr=err)
    token = out.getvalue().strip()
    key = api_key_authenticate(token=token)
    assert key.scopes == ["settings:read", "metrics:read"] and key.expires_at is not None
    listing = StringIO()
    call_command("apikeys", "list", stdout=listing)
    assert "deploy" in listing.getvalue() and token not in listing.getvalue()
    call_command("apikeys", "revoke", str(key.id), stdout=StringIO())
    assert ApiKey.objects.get().revoked
    assert f"API key {key.id} (deploy) created" in caplog.text and _secret(token) not in caplog.text
    with pytest.raises(CommandError, match="no user called 'ghost'"):
        call_command("apikeys", "create", "x", "--owner", "ghost", "--scope", "feeds:read")
    with pytest.raises(CommandError, match="no API key 999"):
        call_command("apikeys", "revoke", "999")
