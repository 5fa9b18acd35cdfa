"""The JSON API (settings, service, feeds, triggers), its OpenAPI description, and /metrics: thin interfaces.

Each view parses its input and calls the core (administration.services, selectors, indexer, the messenger);
authentication, scopes and error shapes are api.endpoint's job, so no view sees a request without a valid key.
"""
from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

from administration.services import setting_change
from api import metrics, openapi
from api.endpoint import ApiError, api_endpoint, key_required, request_fields, service_unavailable, text_field
from api.messenger_key import messenger_key_change_check
from api.metrics_access import metrics_ip_allowed
from api.service import service_request
from api.trigger_access import trigger_visible
from api_keys.keys import api_key_actor, request_ip
from api_keys.models import ApiKey
from feeds.selectors import feed_get
from indexer.models import Trigger
from indexer.runner_requests import RUNNER_NAME_MAX, RUNNER_REQUESTS, runner_name_valid
from indexer.trigger_json import trigger_as_json
from indexer.trigger_requests import trigger_request
from indexer.triggers import TriggerError, trigger_get
from messenger.errors import MessengerError, MessengerUnavailable, RemoteError
from messenger.messages import STATUS_SNAPSHOT, UNKNOWN_FEED, UNKNOWN_RUNNER
from node_base.metrics import REGISTRY
from settings_store.registry import SettingValueError, UnknownSetting
from settings_store.selectors import mask, settings_list, settings_version

logger = logging.getLogger(__name__)

API_SOURCE = "api"
# Ids are 64-bit database keys; a longer number is no trigger (and must not reach the database driver).
MAX_ID = 2**63 - 1
# The service's log lines a status request may ask for (the service itself caps it at 200).
MAX_STATUS_LOGS = 200
# The refusals (by code, messenger.messages) that mean "no such thing": 404 with their text. Any other refusal is
# 502 from the service (it refused what the API sent) or 400 from the trigger core (a bad target).
NOT_FOUND_CODES = frozenset({UNKNOWN_RUNNER, UNKNOWN_FEED})
# The spellings of a boolean query parameter: OpenAPI's true/false, and 1/0, yes/no as people type them.
FLAG_VALUES = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _service_reply(type: str, body: dict | None = None) -> dict:
    """The service's reply; ApiError 503 (Retry-After when waiting helps), 404 or 502 when it refused (by code)."""
    try:
        return service_request(type, body=body)
    except MessengerUnavailable as exc:
        raise service_unavailable(f"service not reachable: {exc.reason}", retry=True) from None
    except RemoteError as exc:
        if exc.code in NOT_FOUND_CODES:
            raise ApiError(str(exc), status=404) from None
        raise ApiError(f"the service refused: {exc}", status=502) from None
    except MessengerError as exc:
        raise service_unavailable(f"messenger error: {exc}", retry=False) from None


def _query_flag(request: HttpRequest, name: str, *, default: bool = False) -> bool:
    """Boolean query parameter `name`; ApiError 400 for any value outside FLAG_VALUES (any letter case)."""
    text = request.GET.get(name)
    if text is None:
        return default
    try:
        return FLAG_VALUES[text.lower()]
    except KeyError:
        raise ApiError(f"'{name}' must be true or false", status=400) from None


# --- settings ---

@api_endpoint(scopes=["settings:read"], methods=["GET"])
def settings_list_view(request: HttpRequest, *, key: ApiKey) -> HttpResponse:
    """Every setting (hidden ones with ?showAll=true); secrets masked."""
    show_all = _query_flag(request, "showAll")
    settings = [
        {
            "name": view.definition.name,
            "type": view.definition.kind.value,
            "value": view.shown,
            "default": mask(view.definition, view.definition.default),
            "isDefault": view.is_default,
            "live": view.definition.live,
            "description": view.definition.description,
            "updatedAt": view.updated_at.isoformat() if view.updated_at else None,
            "updatedBy": view.updated_by,
        }
        for view in settings_list(include_hidden=show_all)
    ]
    return JsonResponse({"version": settings_version(), "settings": settings})


@api_endpoint(scopes=["settings:write"], methods=["POST"])
def settings_set_view(request: HttpRequest, *, key: ApiKey) -> HttpResponse:
    """Change one setting exactly as the Advanced Settings page does (validated, audited with source "api").

    The messenger key also needs the settings:messenger-key scope and confirm=yes, as the page asks for a tick.
    """
    fields = request_fields(request)
    name, value = text_field(fields, "name"), text_field(fields, "value")
    actor = api_key_actor(key)
    messenger_key_change_check(request, fields, name=name)
    try:
        outcome = setting_change(name=name, value=value, actor=actor, source=API_SOURCE)
    except (UnknownSetting, SettingValueError) as exc:
        raise ApiError(str(exc), status=400) from None
    return JsonResponse({"name": outcome.name, "changed": outcome.change is not None, "refused": outcome.refused,
                         "version": settings_version(), "message": str(outcome)})


# --- service ---

@api_endpoint(scopes=["service:read"], methods=["GET"])
def service_status_view(request: HttpRequest, *, key: ApiKey) -> HttpResponse:
    """The service node's snapshot: identity, messenger counters, runners, and the last ?logs=N log lines."""
    logs_text = request.GET.get("logs", "0")
    if not logs_text.isascii() or not logs_text.isdigit() or int(logs_text) > MAX_STATUS_LOGS:
        raise ApiError(f"'logs' must be a whole number from 0 to {MAX_STATUS_LOGS}", status=400)
    return JsonResponse(_service_reply(STATUS_SNAPSHOT, {"logs": int(logs_text)}))


@api_endpoint(scopes=["service:control"], methods=["POST"])
def runner_action_view(request: HttpRequest, *, key: ApiKey, name: str, action: str) -> HttpResponse:
    """Run, pause or resume a task runner. Run queues a durable trigger as every Run does (202, even with the
    service down); pause and resume ask the service and need it reachable."""
    if not runner_name_valid(name):
        raise ApiError(f"a runner name is 1-{RUNNER_NAME_MAX} characters", status=400)
    if action == "run":
        return _trigger_response(Trigger.Kind.RUNNER_RUN, name, key)
    reply = _service_reply(RUNNER_REQUESTS[action], {"name": name})
    logger.info("api: %s %s by %s", action, name, api_key_actor(key))
    return JsonResponse(reply)


# --- feeds and triggers ---

@api_endpoint(scopes=["feeds:reindex"], methods=["POST"])
def feed_reindex_view(request: HttpRequest, *, key: ApiKey, feed: str) -> HttpResponse:
    """Queue a durable reindex of `feed` and nudge the service; 202 with the trigger, even with the service down."""
    found = feed_get(name=feed)
    if found is None:
        raise ApiError(f"no feed called {feed!r}", status=404)
    return _trigger_response(Trigger.Kind.FEED_REINDEX, found.name, key)


def _trigger_response(kind: str, target: str, key: ApiKey) -> HttpResponse:
    """Queue a trigger through the one core (indexer.trigger_requests) and answer 202 with it; 404 for an unknown
    runner or feed (nothing queued), 400 for another bad target."""
    try:
        outcome = trigger_request(kind=kind, target=target, requested_by=api_key_actor(key))
    except TriggerError as exc:
        raise ApiError(str(exc), status=404 if exc.code in NOT_FOUND_CODES else 400) from None
    logger.info("api: %s %s by %s: %s", kind, target, api_key_actor(key), outcome.message)
    outcome.trigger.refresh_from_db()
    return JsonResponse({"trigger": trigger_as_json(outcome.trigger), "nudged": outcome.nudged,
                         "alreadyQueued": outcome.already_queued, "message": outcome.message}, status=202)


@api_endpoint(scopes=["feeds:read", "feeds:reindex"], methods=["GET"])
def trigger_view(request: HttpRequest, *, key: ApiKey, trigger_id: int) -> HttpResponse:
    """One trigger the key's owner may see (api.trigger_access): pending, running, done or failed, and what happened."""
    trigger = trigger_get(trigger_id=trigger_id) if 0 < trigger_id <= MAX_ID else None
    if trigger is None or not trigger_visible(trigger=trigger, owner=key.owner):
        raise ApiError(f"no trigger {trigger_id} (finished triggers are deleted after a few days)", status=404)
    return JsonResponse(trigger_as_json(trigger))


# --- the description, unknown paths, metrics ---

@csrf_exempt  # a POST gets the JSON 405 (api.middleware), not the CSRF page
@require_GET
def openapi_view(request: HttpRequest) -> HttpResponse:
    """The OpenAPI description of this API (public: it holds no data)."""
    return JsonResponse(openapi.DESCRIPTION)


@csrf_exempt
def not_found_view(request: HttpRequest, path: str) -> HttpResponse:
    """Any other /api/ path: a JSON 404 rather than the HTML page."""
    return ApiError(f"no API endpoint /api/{path} (see /api/openapi.json)", status=404).response()


@csrf_exempt
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus text format, for an API key with metrics:read or a client in Metrics.AllowedIps."""
    try:
        if request.method != "GET":
            raise ApiError(f"{request.method} is not allowed here (allowed: GET)", status=405,
                           headers={"Allow": "GET"})
        if not metrics_ip_allowed(request_ip(request)):
            key_required(request, scopes=["metrics:read"])
    except ApiError as exc:
        response: HttpResponse = exc.response()
    else:
        response = HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_PLAIN_0_0_4)
    metrics.api_request_count(endpoint="metrics_view", status=response.status_code)
    return response
