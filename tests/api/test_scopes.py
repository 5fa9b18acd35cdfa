"""The scope matrix: every endpoint x (no key, bad key, revoked, expired, wrong scope, right scope)."""
from __future__ import annotations

import base64

import pytest
from django.test import Client

from indexer.models import Trigger

pytestmark = pytest.mark.django_db

RUN_PATH = "/api/service/runners/Feed%20Indexing"  # the fake service's runner (conftest.RUNNER)
# (method, path, scope it needs, JSON body, status with the right scope)
ENDPOINTS = [
    ("get", "/api/settings/list", "settings:read", None, 200),
    ("post", "/api/settings/set", "settings:write", {"name": "Service.TriggerPollSeconds", "value": "7"}, 200),
    ("get", "/api/service/status", "service:read", None, 200),
    ("post", f"{RUN_PATH}/run", "service:control", None, 202),
    ("post", f"{RUN_PATH}/pause", "service:control", None, 200),
    ("post", f"{RUN_PATH}/resume", "service:control", None, 200),
    ("post", "/api/feeds/main/reindex", "feeds:reindex", None, 202),
    ("get", "/api/triggers/{trigger}", "feeds:read", None, 200),
    ("get", "/metrics", "metrics:read", None, 200),
]
CASES = ["no key", "bad key", "revoked", "expired", "wrong scope", "right scope"]
# A scope that none of the endpoints above accepts.
UNRELATED_SCOPE = "feeds:upload"


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize(("method", "path", "scope", "body", "ok"), ENDPOINTS, ids=[e[1] for e in ENDPOINTS])
def test_scope_matrix(method, path, scope, body, ok, case, make_key, owner, service, feed) -> None:
    trigger = Trigger.objects.create(kind=Trigger.Kind.FEED_REINDEX, target="main", requested_by=owner.username)
    path = path.format(trigger=trigger.id)
    token = {
        "no key": None,
        "bad key": "pgk_1_not-the-secret",
        "revoked": make_key(scope, revoked=True),
        "expired": make_key(scope, expired=True),
        "wrong scope": make_key(UNRELATED_SCOPE),
        "right scope": make_key(scope),
    }[case]
    headers = {"HTTP_X_APIKEY": token} if token is not None else {}
    kwargs = {"data": body, "content_type": "application/json"} if body is not None else {}
    response = getattr(Client(), method)(path, **kwargs, **headers)

    expected = {"no key": 401, "bad key": 401, "revoked": 401, "expired": 401, "wrong scope": 403,
                "right scope": ok}[case]
    assert response.status_code == expected, response.content
    if expected == 401:
        assert response["WWW-Authenticate"].startswith("Basic ")
        assert response.json()["error"].startswith({
            "no key": "an API key is required: send it in the X-ApiKey header", "bad key": "invalid API key",
            "revoked": "API key revoked", "expired": "API key expired"}[case])
    if expected == 403:
        scopes = "feeds:read or feeds:reindex" if scope == "feeds:read" else scope
        assert response.json() == {"error": f"this API key lacks the {scopes} scope"}


def test_basic_auth_with_user_api_carries_the_key(make_key, service) -> None:
    token = make_key("service:read")
    good = base64.b64encode(f"api:{token}".encode()).decode()
    other_user = base64.b64encode(f"alice:{token}".encode()).decode()
    assert Client().get("/api/service/status", HTTP_AUTHORIZATION=f"Basic {good}").status_code == 200
    assert Client().get("/api/service/status", HTTP_AUTHORIZATION=f"Basic {other_user}").status_code == 401


def test_a_session_cookie_is_never_an_api_credential(make_key, service) -> None:
    """A signed-in superuser's browser gets 401: a cookie would let any site post to the API (CSRF)."""
    from django.contrib.auth.models import User

    client = Client(enforce_csrf_checks=True)
    client.force_login(User.objects.create_superuser("root", password="pw"))
    response = client.post("/api/settings/set", {"name": "Service.TriggerPollSeconds", "value": "9"})
    assert response.status_code == 401
    assert client.get("/api/settings/list").status_code == 401


def test_wrong_method_is_405_json_with_allow(make_key) -> None:
    response = Client().get("/api/settings/set", HTTP_X_APIKEY=make_key("settings:write"))
    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert "not allowed" in response.json()["error"]


def test_unknown_api_path_is_json_404() -> None:
    response = Client().get("/api/nothing/here")
    assert response.status_code == 404
    assert "no API endpoint /api/nothing/here" in response.json()["error"]

