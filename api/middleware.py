"""The API answers in JSON, always: every answer under /api/ and /metrics that is an error is `{"error": "..."}`.

Guarantees for those paths: a body over the API's limit is refused with 413 (one without a length, 411) before
any view reads it; HEAD is answered wherever GET is (the GET answer without its body); any error answer made
outside api.endpoint (Django's 404 and 500 pages, the CSRF page, a 405 from a decorator) is turned into the JSON
error shape with its status and headers kept, and a 405's Allow header names HEAD beside GET.
"""
from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse

from api.endpoint import MAX_BODY_BYTES, ApiError

logger = logging.getLogger(__name__)

API_PREFIX = "/api/"
METRICS_PATH = "/metrics"
# Headers of an error answer that tell the client what to do next; they are kept when the body becomes JSON.
KEPT_HEADERS = ("Allow", "WWW-Authenticate", "Retry-After")


def is_api_path(path: str) -> bool:
    """Whether `path` is answered by the JSON API (its errors in JSON)."""
    return path.startswith(API_PREFIX) or path == METRICS_PATH


def body_limit() -> int:
    """The largest body the API takes: its own limit, or Django's DATA_UPLOAD_MAX_MEMORY_SIZE when smaller (so
    Django's RequestDataTooBig, an HTML 400, is never reached under /api/)."""
    django_limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return MAX_BODY_BYTES if django_limit is None else min(MAX_BODY_BYTES, django_limit)


def _body_refused(request: HttpRequest) -> HttpResponse | None:
    """413 when the declared body is over the API's limit, 411 when a body comes without a length; else None.

    Either way the view never reads the body. A chunked body is refused rather than measured: measuring it means
    reading it, before any key is checked, and every API client sends a Content-Length for a small body.
    """
    declared, limit = request.META.get("CONTENT_LENGTH") or "", body_limit()
    if not declared and "HTTP_TRANSFER_ENCODING" in request.META:
        return ApiError("a body needs a Content-Length here (chunked bodies are not taken)", status=411).response()
    if declared.isdigit() and int(declared) > limit:
        return ApiError(f"the body is larger than {limit} bytes", status=413).response()
    return None


def _as_json(response: HttpResponseBase) -> HttpResponseBase:
    """`response` if it is a success or already JSON; else the same status as {"error": ...} (headers kept)."""
    if response.status_code < 400 or response.get("Content-Type", "").startswith("application/json"):
        return response
    reason = response.reason_phrase.lower()
    converted = JsonResponse({"error": reason}, status=response.status_code)
    for name in KEPT_HEADERS:
        if name in response:
            converted[name] = response[name]
    return converted


def _allow_head(response: HttpResponseBase) -> HttpResponseBase:
    """A 405 whose Allow names GET also names HEAD (answered wherever GET is)."""
    allowed = [method.strip() for method in response.get("Allow", "").split(",") if method.strip()]
    if response.status_code == 405 and "GET" in allowed and "HEAD" not in allowed:
        response["Allow"] = ", ".join([*allowed, "HEAD"])
    return response


def _head(response: HttpResponseBase) -> HttpResponseBase:
    """The GET answer for a HEAD request: same status and headers (Content-Length too), no body."""
    if isinstance(response, HttpResponse):
        length = len(response.content)
        response.content = b""
        response["Content-Length"] = str(length)
    return response


class ApiJsonMiddleware:
    """Applies the guarantees of this module to /api/ and /metrics; other paths pass through untouched."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> HttpResponseBase | Awaitable[HttpResponseBase]:
        if self.is_async:
            return self._acall(request)
        if not is_api_path(request.path):
            return self.get_response(request)
        head = self._before(request)
        refused = _body_refused(request)
        return self._after(refused or self.get_response(request), head=head)

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        if not is_api_path(request.path):
            return await self.get_response(request)
        head = self._before(request)
        refused = _body_refused(request)
        return self._after(refused or await self.get_response(request), head=head)

    @staticmethod
    def _before(request: HttpRequest) -> bool:
        """Answer HEAD as GET (the body is dropped after); True when the request was a HEAD."""
        if request.method != "HEAD":
            return False
        request.method = "GET"
        return True

    @staticmethod
    def _after(response: HttpResponseBase, *, head: bool) -> HttpResponseBase:
        response = _allow_head(_as_json(response))
        return _head(response) if head else response
