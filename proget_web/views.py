"""Top-level pages of the web node: the home page and /health."""
from __future__ import annotations

import logging

from asgiref.sync import sync_to_async
from django.contrib.auth.decorators import login_required
from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

import node_base
from api_keys.keys import ApiKeyError, request_api_key
from proget_web.service_probe import ServiceProbe, service_probe

logger = logging.getLogger(__name__)

# Who reads /health's reasons (raw database errors, socket paths under the data folder, the version): API keys
# with this scope, and signed-in users with this permission (the Service Status page shows them the same things).
HEALTH_DETAIL_SCOPE = "service:read"
HEALTH_DETAIL_PERMISSION = "administration.view_service_status"


def _database_ok() -> tuple[bool, str]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True, connection.vendor
    except Exception as exc:  # any driver error means "down"; the detail says which
        return False, f"{type(exc).__name__}: {exc}"[:200]


def _health_details_allowed(request: HttpRequest) -> bool:
    """Whether the request may read /health's details: a service:read key, or a user who may watch the service.

    A refused key, or a database that cannot say (it is down), gets the public answer.
    """
    try:
        key = request_api_key(request)
        if key is not None:
            return HEALTH_DETAIL_SCOPE in key.scopes
        return request.user.has_perm(HEALTH_DETAIL_PERMISSION)
    except (ApiKeyError, DatabaseError):
        return False


async def health(request: HttpRequest) -> JsonResponse:
    """Machine-readable health: the web node, its database, and the service (contract: serviceStatus OK/Error).

    The public answer is the status words only; the reasons go to the log and to `_health_details_allowed` readers.
    """
    db_ok, db_detail = await sync_to_async(_database_ok)()
    try:
        probe = await service_probe()
    except DatabaseError as exc:  # the messenger's endpoint and key are settings in the database
        probe = ServiceProbe(ok=False, detail=f"unknown: the messenger settings cannot be read ({type(exc).__name__})")
    if not db_ok:
        logger.warning("health: database error: %s", db_detail)
    if not probe.ok:
        logger.info("health: service error: %s", probe.detail)
    body: dict = {"status": "OK" if db_ok else "Error", "database": {"status": "OK" if db_ok else "Error"},
                  "serviceStatus": "OK" if probe.ok else "Error"}
    if await sync_to_async(_health_details_allowed)(request):
        body["database"]["detail"] = db_detail
        body.update(version=node_base.__version__, serviceDetail=probe.detail, serviceRoundTripMs=probe.rtt_ms)
    return JsonResponse(body, status=200 if db_ok else 503)


@login_required
async def home(request: HttpRequest) -> HttpResponse:
    """Landing page: what this server is and whether its service node answers."""
    probe = await service_probe()
    return await sync_to_async(render)(request, "home.html", {"probe": probe, "version": node_base.__version__})
