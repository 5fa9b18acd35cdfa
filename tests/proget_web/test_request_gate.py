"""The gate that refuses a request from its headers alone (proget_web.request_gate), without a server."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from feeds.limits import MAX_UPLOAD_REQUEST_BYTES
from proget_web.request_gate import body_refusal, header_refusal
from tests.processes import ROOT

UPLOAD = b"/pypi/main/legacy/"
MIB = 1024 * 1024


def refusal_status(*, method: bytes = b"POST", target: bytes = UPLOAD, length: int | None = 1000,
                   headers: tuple[bytes, ...] = (b"authorization",)) -> int | None:
    refusal = header_refusal(method=method, target=target, length=length, header_names=set(headers))
    return None if refusal is None else refusal.status


@pytest.mark.parametrize("target", [UPLOAD, b"/accounts/login/", b"/api/feeds", b"/nowhere"])
def test_a_body_over_the_cap_is_413_on_every_route(target: bytes) -> None:
    assert refusal_status(target=target, length=MAX_UPLOAD_REQUEST_BYTES + 1) == 413
    assert refusal_status(target=target, length=MAX_UPLOAD_REQUEST_BYTES) is None


@pytest.mark.parametrize("target", [b"/api/feeds", b"/api/settings/set?x=1", b"/metrics"])
def test_the_api_is_refused_in_json_like_its_other_errors(target: bytes) -> None:
    for refusal in (header_refusal(method=b"POST", target=target, length=MAX_UPLOAD_REQUEST_BYTES + 1,
                                   header_names=set()),
                    body_refusal(target=target, received=MAX_UPLOAD_REQUEST_BYTES + 1)):
        head, _, body = refusal.response().partition(b"\r\n\r\n")
        assert b"\r\nContent-Type: application/json\r\n" in head
        assert json.loads(body)["error"].startswith("the request body")
    pages = header_refusal(method=b"POST", target=UPLOAD, length=MAX_UPLOAD_REQUEST_BYTES + 1, header_names=set())
    assert b"Content-Type: text/plain" in pages.response()


@pytest.mark.parametrize("target", [UPLOAD, b"/pypi/main/legacy/?x=1", b"/pypi/m%61in/legacy/"])
def test_an_upload_without_credentials_is_401_with_the_basic_challenge(target: bytes) -> None:
    refusal = header_refusal(method=b"POST", target=target, length=10, header_names={b"content-type"})
    assert refusal is not None and refusal.status == 401
    response = refusal.response()
    assert response.startswith(b"HTTP/1.1 401 Unauthorized\r\n")
    assert b"\r\nWWW-Authenticate: Basic realm=\"feeds\"" in response
    assert b"\r\nConnection: close\r\n" in response


@pytest.mark.parametrize("headers", [(b"authorization",), (b"x-apikey",), (b"content-type", b"x-apikey")])
def test_an_upload_with_a_credentials_header_may_send_its_body(headers: tuple[bytes, ...]) -> None:
    assert refusal_status(headers=headers) is None
    assert refusal_status(headers=headers, length=None) is None  # chunked: body_refusal counts it


@pytest.mark.parametrize(("method", "target"), [
    (b"GET", UPLOAD), (b"POST", b"/accounts/login/"), (b"POST", b"/pypi/main/simple/"), (b"POST", b"/\xff"),
])
def test_anonymous_requests_elsewhere_are_left_to_the_app(method: bytes, target: bytes) -> None:
    assert refusal_status(method=method, target=target, headers=()) is None


def test_a_chunked_body_is_refused_once_it_passes_the_cap() -> None:
    assert body_refusal(target=UPLOAD, received=MAX_UPLOAD_REQUEST_BYTES) is None
    refusal = body_refusal(target=UPLOAD, received=MAX_UPLOAD_REQUEST_BYTES + 1)
    assert refusal is not None and refusal.status == 413
    response = refusal.response()
    assert response.startswith(b"HTTP/1.1 413 ") and b"WWW-Authenticate" not in response
    head, body = response.split(b"\r\n\r\n", 1)
    assert f"Content-Length: {len(body)}".encode() in head


def test_the_nginx_example_caps_bodies_where_the_app_does() -> None:
    """docs/deployment.md's client_max_body_size is the app's cap: nginx neither refuses what the app takes
    nor spools to its disk what the app will refuse."""
    sizes = re.findall(r"client_max_body_size (\d+)m;", (ROOT / "docs" / "deployment.md").read_text())
    assert sizes and {int(size) * MIB for size in sizes} == {MAX_UPLOAD_REQUEST_BYTES}


def test_the_procfile_runs_the_guarded_server() -> None:
    web = next(line for line in Path(ROOT / "Procfile").read_text().splitlines() if line.startswith("web:"))
    assert " -m proget_web.serve " in web
