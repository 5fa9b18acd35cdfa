"""Top-level pages of the web node: the home page and /health."""
from __future__ import annotations

from asgiref.sync import sync_to_async
from django.contrib.auth.decorators import login_required
from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

import proget_web
from proget_web.service_probe import ServiceProbe, service_probe


def _database_ok() -> tuple[bool, str]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True, connection.vendor
    except Exception as exc:  # any driver error means "down"; the detail says which
        return False, f"{type(exc).__name__}: {exc}"[:200]


async def health(request: HttpRequest) -> JsonResponse:
    """Machine-readable health: the web node, its database, and the service (contract: serviceStatus OK/Error)."""
    db_ok, db_detail = await sync_to_async(_database_ok)()
    try:
        probe = await service_probe()
    except DatabaseError as exc:  # the messenger's endpoint and key are settings in the database
        probe = ServiceProbe(ok=False, detail=f"unknown: the messenger settings cannot be read ({type(exc).__name__})")
    body = {
        "status": "OK" if db_ok else "Error",
        "version": proget_web.__version__,
        "database": {"status": "OK" if db_ok else "Error", "detail": db_detail},
        "serviceStatus": "OK" if probe.ok else "Error",
        "serviceDetail": probe.detail,
        "serviceRoundTripMs": probe.rtt_ms,
    }
    return JsonResponse(body, status=200 if db_ok else 503)


@login_required
async def home(request: HttpRequest) -> HttpResponse:
    """Landing page: what this server is and whether its service node answers."""
    probe = await service_probe()
    return await sync_to_async(render)(request, "home.html", {"probe": probe, "version": proget_web.__version__})
