"""The one wrapper every JSON API view goes through: method check, API-key authentication, scope check, errors.

Guarantees: API views are CSRF-exempt and authenticate ONLY by API key (a session cookie never counts, so no
cross-site request can use a browser's login); every refusal is JSON `{"error": "..."}` with its HTTP status;
every answer is counted in the API requests metric.
"""
from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable
from typing import Any

from django.core.exceptions import SuspiciousOperation
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.views.decorators.csrf import csrf_exempt

from api import metrics
from api_keys.keys import HEADER, ApiKeyError, key_scopes_usable, request_api_key
from api_keys.models import ApiKey

WWW_AUTHENTICATE = 'Basic realm="api", charset="UTF-8"'
# What an API client should wait before retrying when the service is not reachable (its reconnect backoff).
RETRY_AFTER_SECONDS = 5
# A settings change or an action body is a few hundred bytes; anything larger is not one.
MAX_BODY_BYTES = 64 * 1024

ApiView = Callable[..., HttpResponse]


class ApiError(Exception):
    """A refusal: its message goes to the client as {"error": message} with `status` (and `headers`)."""

    def __init__(self, message: str, *, status: int, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}

    def response(self) -> JsonResponse:
        response = JsonResponse({"error": str(self)}, status=self.status)
        for name, value in self.headers.items():
            response[name] = value
        return response


def unauthorized(message: str) -> ApiError:
    """401 with the challenge pip, twine and curl understand (basic auth, user `api`, the key as password)."""
    return ApiError(message, status=401, headers={"WWW-Authenticate": WWW_AUTHENTICATE})


def service_unavailable(message: str, *, retry: bool) -> ApiError:
    """503; with Retry-After only when waiting can help (the service is down, not misconfigured)."""
    return ApiError(message, status=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)} if retry else None)


def key_required(request: HttpRequest, *, scopes: Iterable[str]) -> ApiKey:
    """The request's API key, holding one of `scopes` that its owner may still use (api_keys.keys.key_scopes_usable);
    raises ApiError 401 (no/refused key) or 403 (scope missing, or the owner lost its permission)."""
    try:
        key = request_api_key(request)
    except ApiKeyError as exc:
        raise unauthorized(str(exc)) from None
    if key is None:
        raise unauthorized(f"an API key is required: send it in the {HEADER} header "
                           "(or as the password of HTTP basic auth user 'api')")
    wanted = tuple(scopes)
    if not set(wanted) & set(key.scopes):
        raise ApiError(f"this API key lacks the {' or '.join(wanted)} scope", status=403)
    if not set(wanted) & key_scopes_usable(key):
        raise ApiError(f"this API key's owner may no longer use the {' or '.join(wanted)} scope", status=403)
    return key


def api_endpoint(*, scopes: Iterable[str], methods: Iterable[str]) -> Callable[[ApiView], ApiView]:
    """Decorate `view(request, *, key, **kwargs)`: allowed `methods`, a key with one of `scopes`, JSON errors."""
    allowed, wanted = tuple(methods), tuple(scopes)

    def decorator(view: ApiView) -> ApiView:
        @csrf_exempt
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            try:
                if request.method not in allowed:
                    raise ApiError(f"{request.method} is not allowed here (allowed: {', '.join(allowed)})",
                                   status=405, headers={"Allow": ", ".join(allowed)})
                key = key_required(request, scopes=wanted)
                response = view(request, *args, key=key, **kwargs)
            except ApiError as exc:
                response = exc.response()
            metrics.api_request_count(endpoint=view.__name__, status=response.status_code)
            return response

        return wrapper

    return decorator


def request_fields(request: HttpRequest) -> dict[str, Any]:
    """The body's fields: a JSON object (Content-Type application/json) or a form; raises ApiError 400."""
    if request.content_type == "application/json":
        if len(request.body) > MAX_BODY_BYTES:
            raise ApiError(f"the body is larger than {MAX_BODY_BYTES} bytes", status=400)
        try:
            data = json.loads(request.body or b"null")
        except (ValueError, UnicodeDecodeError):
            raise ApiError("the body is not valid JSON", status=400) from None
        if not isinstance(data, dict):
            raise ApiError("the body must be a JSON object", status=400)
        return data
    try:
        return {name: request.POST.get(name) for name in request.POST}
    except (MultiPartParserError, SuspiciousOperation) as exc:
        raise ApiError(f"the body is not a valid form: {exc}", status=400) from None


def text_field(fields: dict[str, Any], name: str, *, required: bool = True) -> str:
    """Field `name` as text; raises ApiError 400 when it is missing (and required) or not a string."""
    value = fields.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise ApiError(f"'{name}' is required and must be a string", status=400)
    return value
