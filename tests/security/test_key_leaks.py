"""The messenger key never leaves the database: not in a page, an API answer, a log line or an error report.

A known key is stored; every route is fetched as a superuser and the API is read with a key holding every scope;
the key is changed through the page and the API (and refused with a malformed value containing it); a fault is
injected while the key is loaded, for a real 500. All logs are captured at DEBUG. Every form of the key (standard
and URL-safe base64, with and without padding, hex, the bytes' repr) must be absent from all of it.
"""
from __future__ import annotations

import base64
import html
import io
import logging
import sys
from collections.abc import Iterator

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.signals import got_request_exception
from django.http import HttpResponse
from django.test import Client
from django.views.debug import ExceptionReporter

from api_keys.keys import api_key_create
from api_keys.models import SCOPE_NAMES
from feeds.models import Feed
from indexer import messenger_config
from indexer.messenger_config import KEY_SETTING
from messenger.crypto import generate_key
from settings_store.selectors import setting_get
from tests.security.support import http_routes

pytestmark = pytest.mark.django_db

API_READS = ["/api/settings/list", "/api/settings/list?showAll=true", "/api/service/status?logs=200",
             "/api/triggers/1", "/api/openapi.json", "/metrics"]


def key_forms(key: str) -> list[str]:
    """Every text a leak of `key` would likely take."""
    raw = base64.b64decode(key)
    urlsafe = base64.urlsafe_b64encode(raw).decode()
    forms = {key, key.rstrip("="), urlsafe, urlsafe.rstrip("="), raw.hex(), raw.hex().upper(), repr(raw)[2:-1]}
    return sorted(forms)


def assert_absent(key: str, text: str, where: str) -> None:
    for haystack in (text, html.unescape(text)):
        for form in key_forms(key):
            assert form not in haystack, f"the messenger key appears in {where} (as {form[:6]}…)"


def body(response: HttpResponse) -> str:
    content = b"".join(response.streaming_content) if response.streaming else response.content
    return f"{response.status_code} {dict(response.headers)}\n" + content.decode("utf-8", "replace")


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every log record of the test, at DEBUG (the configured levels of named loggers stay as deployed)."""
    caplog.set_level(logging.DEBUG)
    yield caplog


def all_log_text(caplog: pytest.LogCaptureFixture) -> str:
    lines = [caplog.text]
    for record in caplog.records:
        lines.append(record.getMessage())
        lines.append(repr(record.args))
        lines.append(record.exc_text or "")
    return "\n".join(lines)


@pytest.fixture
def api_token(superuser: User) -> str:
    return api_key_create(name="everything", owner=superuser, scopes=SCOPE_NAMES).token


def test_key_forms_are_found_when_present(messenger_key: str) -> None:
    """The control: the checker does see each form of the key (also HTML-escaped)."""
    for form in key_forms(messenger_key):
        with pytest.raises(AssertionError):
            assert_absent(messenger_key, f"x{html.escape(form)}x", "a sample")


def test_pages_and_api_answers_never_hold_the_key(messenger_key: str, feed: Feed, admin_client: Client,
                                                  api_token: str, logs: pytest.LogCaptureFixture) -> None:
    seen = []
    for route in http_routes():
        seen.append((route.path, admin_client.get(route.path)))
    for path in API_READS:
        seen.append((path, Client().get(path, HTTP_X_APIKEY=api_token)))
    assert any(path == "/administration/advanced-settings" and r.status_code == 200 for path, r in seen)
    assert any(path == "/api/settings/list" and r.status_code == 200 for path, r in seen)
    for path, response in seen:
        assert response.status_code != 500, path  # 503 from /api/service/status: no service runs here
        assert_absent(messenger_key, body(response), path)
    assert_absent(messenger_key, all_log_text(logs), "the logs")


def test_changing_the_key_never_echoes_it(messenger_key: str, admin_client: Client, api_token: str,
                                          logs: pytest.LogCaptureFixture) -> None:
    page = "/administration/advanced-settings"
    # Refused: a malformed value that contains the current key must not be echoed back.
    refused = admin_client.post(page, {"name": KEY_SETTING, "action": "set", "value": messenger_key + "!",
                                       "confirm": "yes"})
    assert refused.status_code == 400
    assert_absent(messenger_key, body(refused), "the refused form")
    api_refused = Client().post("/api/settings/set",
                                {"name": KEY_SETTING, "value": messenger_key + "!", "confirm": "yes"},
                                HTTP_X_APIKEY=api_token)
    assert api_refused.status_code == 400
    assert_absent(messenger_key, body(api_refused), "the API's refusal")
    # Accepted through the page, then through the API: the new key is stored, never shown.
    by_page = generate_key()
    changed = admin_client.post(page, {"name": KEY_SETTING, "action": "set", "value": by_page, "confirm": "yes"},
                                follow=True)
    assert changed.status_code == 200 and setting_get(KEY_SETTING) == by_page
    by_api = generate_key()
    api_changed = Client().post("/api/settings/set", {"name": KEY_SETTING, "value": by_api, "confirm": "yes"},
                                HTTP_X_APIKEY=api_token)
    assert api_changed.status_code == 200 and setting_get(KEY_SETTING) == by_api
    generated = admin_client.post(page, {"name": KEY_SETTING, "action": "generate", "confirm": "yes"}, follow=True)
    newest = setting_get(KEY_SETTING)
    assert newest not in (by_page, by_api)
    listing = Client().get("/api/settings/list?showAll=true", HTTP_X_APIKEY=api_token)
    cli = io.StringIO()
    call_command("settings", "list", stdout=cli)
    for key in (messenger_key, by_page, by_api, newest):
        for what, response in (("the page", changed), ("the API", api_changed), ("the generate page", generated),
                               ("the listing", listing)):
            assert_absent(key, body(response), what)
        assert_absent(key, cli.getvalue(), "manage.py settings list")
        assert_absent(key, all_log_text(logs), "the logs")


@pytest.fixture
def fault_while_the_key_is_loaded(monkeypatch: pytest.MonkeyPatch) -> Iterator[list]:
    """An unexpected error inside messenger_settings(), after it has read the key: a real 500 on /health and /.

    Yields the exc_info of every request that ended in an uncaught exception (what error reports are made of).
    """
    def broken(text: str) -> None:
        raise RuntimeError("injected fault while parsing the endpoint")

    monkeypatch.setattr(messenger_config, "parse_endpoint", broken)
    caught: list = []

    def grab(sender: object, request: object = None, **kwargs: object) -> None:
        caught.append((request, *sys.exc_info()))

    got_request_exception.connect(grab)
    yield caught
    got_request_exception.disconnect(grab)


def _server_errors(superuser: User) -> list[HttpResponse]:
    client = Client(raise_request_exception=False)
    client.force_login(superuser)
    return [client.get("/health"), client.get("/")]


def test_a_server_error_does_not_reveal_the_key(messenger_key: str, superuser: User,
                                                fault_while_the_key_is_loaded: list,
                                                logs: pytest.LogCaptureFixture) -> None:
    responses = _server_errors(superuser)
    assert [r.status_code for r in responses] == [500, 500]
    assert len(fault_while_the_key_is_loaded) == 2
    for response in responses:
        assert_absent(messenger_key, body(response), "the 500 page")
    log_text = all_log_text(logs)
    assert "injected fault" in log_text  # the traceback was logged (django.request) ...
    assert_absent(messenger_key, log_text, "the logs of the 500")  # ... without the key
    for request, *exc_info in fault_while_the_key_is_loaded:
        # What AdminEmailHandler mails by default (include_html=False): request, traceback, settings.
        report = ExceptionReporter(request, *exc_info).get_traceback_text()
        assert "injected fault" in report
        assert_absent(messenger_key, report, "the text error report")


def test_the_html_error_report_does_not_reveal_the_key(messenger_key: str, superuser: User,
                                                       fault_while_the_key_is_loaded: list) -> None:
    _server_errors(superuser)
    assert fault_while_the_key_is_loaded
    for request, *exc_info in fault_while_the_key_is_loaded:
        report = ExceptionReporter(request, *exc_info).get_traceback_html()
        assert "injected fault" in report
        assert_absent(messenger_key, report, "the HTML error report (frame locals)")
