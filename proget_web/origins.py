"""Same-origin check for WebSocket handshakes, by the rules of Django's CSRF Origin check.

Guarantees: a handshake gets to the application only if its Host is one of ALLOWED_HOSTS and its Origin is
exactly the handshake's own origin (scheme, host and port) or one of CSRF_TRUSTED_ORIGINS; any other
handshake, including one without an Origin, is refused before anything reads the session.
"""
from __future__ import annotations

import io
import logging
from typing import Any
from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.core.handlers.asgi import ASGIRequest
from django.utils.http import is_same_domain

logger = logging.getLogger(__name__)


class _Handshake(ASGIRequest):
    """A WebSocket handshake read as a Django request, so get_host() and is_secure() apply Django's own rules.

    is_secure() follows SECURE_PROXY_SSL_HEADER (X-Forwarded-Proto behind DJANGO_BEHIND_PROXY) when that header
    is present; otherwise the server's scope scheme (wss), and daphne, which leaves the scheme out of WebSocket
    scopes, counts as https only with SECURE_SSL_REDIRECT on: then no page of the site is served over http.
    """

    def __init__(self, scope: dict[str, Any]) -> None:
        super().__init__({**scope, "method": "GET"}, io.BytesIO())

    def _get_scheme(self) -> str:
        secure = self.scope.get("scheme") in ("wss", "https") or settings.SECURE_SSL_REDIRECT
        return "https" if secure else "http"


def handshake_origin(scope: dict[str, Any]) -> str | None:
    """The handshake's own origin ("https://host:port"), or None if its Host is not one of ALLOWED_HOSTS."""
    request = _Handshake(scope)
    try:
        host = request.get_host()
    except DisallowedHost:
        return None
    return f"{'https' if request.is_secure() else 'http'}://{host}"


def _trusted(origin: str) -> bool:
    """Whether `origin` is one of CSRF_TRUSTED_ORIGINS: exactly, or by a "scheme://*.domain" entry."""
    parsed = urlsplit(origin)
    for trusted in settings.CSRF_TRUSTED_ORIGINS:
        if origin == trusted:
            return True
        entry = urlsplit(trusted)
        if "*" in trusted and parsed.scheme == entry.scheme and is_same_domain(parsed.netloc, entry.netloc.lstrip("*")):
            return True
    return False


def origin_allowed(scope: dict[str, Any]) -> bool:
    """Whether a WebSocket handshake comes from a page of this site (see the module docstring)."""
    origins = [value for name, value in scope.get("headers", []) if name == b"origin"]
    own = handshake_origin(scope)
    if len(origins) != 1 or own is None:
        return False
    origin = origins[0].decode("latin1")
    try:
        return origin == own or _trusted(origin)
    except ValueError:  # an unparsable origin (e.g. "http://[") is nobody's
        return False


class SameOriginValidator:
    """ASGI middleware for the WebSocket router: refuses the handshake (HTTP 403) unless origin_allowed()."""

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if not origin_allowed(scope):
            logger.warning("refused a WebSocket to %s from origin %r", scope.get("path"),
                           dict(scope.get("headers", [])).get(b"origin"))
            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)
