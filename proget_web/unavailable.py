"""A lost or locked database gets a 503 that says so, with Retry-After, instead of a bare 500.

Only connection-level failures (OperationalError: unreachable, locked, disk full; InterfaceError: the connection
is gone) are answered this way; any other exception stays Django's 500. The page is static: rendering the site's
templates would need the database (session, user) again. The next request reconnects on its own.
"""
from __future__ import annotations

import logging

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.deprecation import MiddlewareMixin

logger = logging.getLogger(__name__)

# How long a client should wait before it retries: a lock or a failover usually lasts seconds.
RETRY_AFTER_SECONDS = 5
DATABASE_UNAVAILABLE = "the database is not available right now (unreachable or locked); try again in a few seconds"
_PAGE = ('<!doctype html>\n<html lang="en"><head><title>Service unavailable (503)</title></head>\n'
         f"<body><h1>Service unavailable</h1><p>{DATABASE_UNAVAILABLE.capitalize()}.</p></body></html>\n")


def database_unavailable(request: HttpRequest) -> HttpResponse:
    """The 503 answer: JSON for the API and for clients that ask for JSON, else a small HTML page."""
    if request.path.startswith("/api/") or "application/json" in request.headers.get("Accept", ""):
        response: HttpResponse = JsonResponse({"error": DATABASE_UNAVAILABLE}, status=503)
    else:
        response = HttpResponse(_PAGE, status=503, content_type="text/html; charset=utf-8")
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


class DatabaseUnavailableMiddleware(MiddlewareMixin):
    """Turn a view's (or its template's) database connection failure into `database_unavailable`."""

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, OperationalError | InterfaceError):
            return None
        logger.warning("database unavailable for %s %s: %s", request.method, request.path, exception)
        return database_unavailable(request)
