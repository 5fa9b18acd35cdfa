"""The API answers in JSON, always: too big a body (413, through a real daphne), a POST to the description (405 with
Allow, not the CSRF page), HEAD wherever GET is, a bad boolean parameter (400), an unknown path (404), a crash (500),
and /metrics in the Prometheus text format's content type."""
from __future__ import annotations

import dataclasses
import http.client
import json
from pathlib import Path

import pytest
from django.test import Client

from api import views
from api.endpoint import MAX_BODY_BYTES
from settings_store import selectors
from settings_store.registry import SETTINGS
from tests.processes import migrate, start_daphne, stop

pytestmark = pytest.mark.django_db


def _error(response) -> str:
    assert response["Content-Type"] == "application/json", (response.status_code, response.content[:300])
    return response.json()["error"]


@pytest.mark.slow
def test_a_body_over_the_limit_is_413_json_through_daphne(tmp_path: Path) -> None:
    """Daphne hands any body to Django; the API refuses one over its limit with 413 JSON, not Django's HTML 400,
    and a chunked one (no length to judge it by) with 411 JSON."""
    migrate(tmp_path)
    daphne, port = start_daphne(tmp_path, log=tmp_path / "daphne.log")
    try:
        for size in (MAX_BODY_BYTES + 1, 3 * 1024 * 1024):  # over the API's limit; over DATA_UPLOAD_MAX_MEMORY_SIZE
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            connection.request("POST", "/api/settings/set", body=b"{" + b" " * (size - 2) + b"}",
                               headers={"Content-Type": "application/json", "X-ApiKey": "pgk_1_whatever"})
            response = connection.getresponse()
            body = response.read()
            connection.close()
            assert response.status == 413, (size, response.status, body[:300])
            assert response.getheader("Content-Type") == "application/json"
            assert str(MAX_BODY_BYTES) in json.loads(body)["error"]
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        chunks = [b"{", b" " * 8192, b"}"]  # no Content-Length: measuring it would mean reading it, keyless
        connection.request("POST", "/api/settings/set", body=iter(chunks), encode_chunked=True,
                           headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
        response = connection.getresponse()
        assert response.status == 411 and "Content-Length" in json.loads(response.read())["error"]
        connection.close()
    finally:
        stop(daphne)


def test_a_body_django_finds_too_big_is_413_json(make_key, settings) -> None:
    """Django's own limit when smaller (RequestDataTooBig, an HTML 400 before) gives a 413 JSON too."""
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    response = Client().post("/api/settings/set", {"name": "x" * 200, "value": "1"},
                             HTTP_X_APIKEY=make_key("settings:write"))
    assert response.status_code == 413 and "larger than 100 bytes" in _error(response)


def test_post_to_the_description_is_405_json_with_allow() -> None:
    response = Client(enforce_csrf_checks=True).post("/api/openapi.json", {})
    assert response.status_code == 405 and _error(response)
    assert response["Allow"] == "GET, HEAD"


@pytest.mark.parametrize("path", ["/api/openapi.json", "/api/settings/list", "/api/service/status", "/metrics",
                                  "/api/triggers/1"])
def test_head_is_answered_wherever_get_is(make_key, service, path: str) -> None:
    headers = {"HTTP_X_APIKEY": make_key()}
    got = Client().get(path, **headers)
    head = Client().head(path, **headers)
    assert head.status_code == got.status_code != 405, (path, head.status_code, head.content)
    assert head.content == b""
    assert head["Content-Type"] == got["Content-Type"]


def test_a_405_names_head_beside_get(make_key) -> None:
    response = Client().post("/api/service/status", HTTP_X_APIKEY=make_key())
    assert response.status_code == 405 and set(response["Allow"].split(", ")) == {"GET", "HEAD"}


@pytest.mark.parametrize("value", ["maybe", "", "2", "truthy"])
def test_a_bad_boolean_parameter_is_400_json(make_key, value: str) -> None:
    response = Client().get(f"/api/settings/list?showAll={value}", HTTP_X_APIKEY=make_key("settings:read"))
    assert response.status_code == 400 and "'showAll' must be true or false" in _error(response)


@pytest.mark.parametrize(("value", "hidden_shown"), [("true", True), ("False", False), ("1", True), ("0", False)])
def test_good_boolean_spellings_are_taken(make_key, monkeypatch: pytest.MonkeyPatch, value: str,
                                          hidden_shown: bool) -> None:
    hidden = dataclasses.replace(SETTINGS[-1], name="Internal.Hidden", hidden=True)
    monkeypatch.setattr(selectors, "SETTINGS", (*SETTINGS, hidden))
    response = Client().get(f"/api/settings/list?showAll={value}", HTTP_X_APIKEY=make_key("settings:read"))
    assert ("Internal.Hidden" in {s["name"] for s in response.json()["settings"]}) is hidden_shown


@pytest.mark.parametrize("path", ["/api/nothing", "/api/triggers/abc", "/api/settings/list/"])
def test_an_unknown_api_path_is_404_json(path: str) -> None:
    response = Client().get(path)
    assert response.status_code == 404 and _error(response)


def test_a_crash_under_api_is_500_json(make_key, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(**kwargs: object) -> None:
        raise RuntimeError("injected fault: secret detail")

    monkeypatch.setattr(views, "settings_list", boom)
    response = Client(raise_request_exception=False).get("/api/settings/list", HTTP_X_APIKEY=make_key())
    assert response.status_code == 500 and _error(response) == "internal server error"
    assert b"secret detail" not in response.content


def test_metrics_is_served_as_prometheus_text_004(make_key, service) -> None:
    response = Client().get("/metrics", HTTP_X_APIKEY=make_key("metrics:read"))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
