"""The 503 answer for a lost or locked database (proget_web.unavailable), in-process: which errors, which format."""
from __future__ import annotations

import json

import pytest
from django.db import DatabaseError, InterfaceError, OperationalError
from django.test import RequestFactory

from proget_web.unavailable import DATABASE_UNAVAILABLE, RETRY_AFTER_SECONDS, DatabaseUnavailableMiddleware

MIDDLEWARE = DatabaseUnavailableMiddleware(lambda request: None)


@pytest.mark.parametrize("error", [OperationalError("database is locked"), InterfaceError("connection already closed")])
def test_a_page_gets_a_static_503_page_with_retry_after(error: Exception) -> None:
    response = MIDDLEWARE.process_exception(RequestFactory().get("/feeds/main/"), error)
    assert response.status_code == 503 and response["Content-Type"].startswith("text/html")
    assert response["Retry-After"] == str(RETRY_AFTER_SECONDS)
    assert DATABASE_UNAVAILABLE.capitalize() in response.content.decode()
    assert "database is locked" not in response.content.decode(), "the driver's detail is for the log only"


@pytest.mark.parametrize(("path", "accept"),
                         [("/api/settings/list", ""), ("/feeds/main/status.json", "application/json")])
def test_the_api_and_json_clients_get_json(path: str, accept: str) -> None:
    response = MIDDLEWARE.process_exception(RequestFactory().get(path, HTTP_ACCEPT=accept), OperationalError("down"))
    assert response.status_code == 503 and json.loads(response.content) == {"error": DATABASE_UNAVAILABLE}


@pytest.mark.parametrize("error", [DatabaseError("a bug, not an outage"), ValueError("bug")])
def test_other_errors_stay_django_500s(error: Exception) -> None:
    assert MIDDLEWARE.process_exception(RequestFactory().get("/"), error) is None
