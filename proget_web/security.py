"""Browser-facing hardening of the web node: the Content-Security-Policy header and the CSRF failure page.

Guarantees: every response carries CONTENT_SECURITY_POLICY (a view may set its own, stricter one), which
allows no inline script or style at all; a request refused by the CSRF check gets the site's 403 page.
"""
from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.template import TemplateDoesNotExist, loader

logger = logging.getLogger(__name__)

# Scripts, styles, fetch/WebSocket and forms only from this origin; no inline code, no plugins, no framing.
# img-src allows data: for small inline icons; 'self' in connect-src also covers ws(s):// to this host.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "object-src 'none'",
    ]
)
CSP_HEADER = "Content-Security-Policy"
CSRF_FAILURE_TEMPLATE = "403_csrf.html"


class ContentSecurityPolicyMiddleware:
    """Add CONTENT_SECURITY_POLICY to every response that has none (sync and async, like Django's own)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse | Awaitable[HttpResponse]]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> HttpResponse | Awaitable[HttpResponse]:
        if self.is_async:
            return self.__acall__(request)
        return self.process_response(self.get_response(request))  # type: ignore[arg-type]

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        return self.process_response(await self.get_response(request))  # type: ignore[misc]

    @staticmethod
    def process_response(response: HttpResponse) -> HttpResponse:
        response.setdefault(CSP_HEADER, CONTENT_SECURITY_POLICY)
        return response


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: the site's 403 page, saying what to do (reload the form); the reason goes to the log."""
    logger.warning("CSRF check refused %s %s: %s", request.method, request.path, reason)
    try:
        body = loader.render_to_string(CSRF_FAILURE_TEMPLATE, {"reason": reason}, request=request)
    except TemplateDoesNotExist:  # never fail the refusal itself
        body = "<h1>403 Forbidden</h1><p>The form has expired or was sent from another site.</p>"
    return HttpResponseForbidden(body)
