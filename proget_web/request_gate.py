"""Which requests the web server refuses from their headers alone, before reading a byte of the body.

A body over MAX_UPLOAD_REQUEST_BYTES is refused (413) on every route (in JSON under the API, which always
answers JSON); a POST to the upload route that carries
no credentials at all (neither basic auth nor an X-ApiKey header) is refused (401). No I/O here: the server
(proget_web.serve) hands in what it parsed and writes the answer this returns.
"""
from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import unquote

from django.urls import Resolver404, resolve

from feeds.limits import MAX_UPLOAD_REQUEST_BYTES

# The upload route's view name (feeds/urls.py): it authenticates from headers only, so none means 401.
UPLOAD_VIEW = "feeds:legacy-upload"
# The headers that can carry credentials the upload view accepts: basic auth (feeds/access.py) or an
# API key (api_keys/keys.py HEADER); lower-case, as the names handed in are.
CREDENTIAL_HEADERS = frozenset({b"authorization", b"x-apikey"})


@dataclass(frozen=True, kw_only=True)
class Refusal:
    """The answer to a request refused before its body: a status, a one-line reason and, for a 401, the
    WWW-Authenticate challenge."""

    status: int
    message: str
    challenge: str = ""
    as_json: bool = False  # {"error": message}, as the JSON API answers every error

    def response(self) -> bytes:
        """The whole HTTP/1.1 response; it closes the connection (the body is never read)."""
        if self.as_json:
            body, content_type = json.dumps({"error": self.message}).encode(), "application/json"
        else:
            body, content_type = f"{self.message}\n".encode(), "text/plain; charset=utf-8"
        headers = [
            f"HTTP/1.1 {self.status} {HTTPStatus(self.status).phrase}",
            f"Content-Type: {content_type}",
            f"Content-Length: {len(body)}",
            "Connection: close",
        ]
        if self.challenge:
            headers.append(f"WWW-Authenticate: {self.challenge}")
        return "\r\n".join(headers).encode("latin-1") + b"\r\n\r\n" + body


def _path(target: bytes) -> str | None:
    """The decoded path of a request target (path and query, as sent); None when it is not ASCII."""
    try:
        return unquote(target.split(b"?", 1)[0].decode("ascii"))
    except UnicodeDecodeError:
        return None


def _too_large(size: int, target: bytes) -> Refusal:
    from api.middleware import is_api_path  # here, not above: it needs Django's settings, loaded after this module

    path = _path(target)
    return Refusal(status=HTTPStatus.REQUEST_ENTITY_TOO_LARGE, as_json=path is not None and is_api_path(path),
                   message=f"the request body ({size} bytes or more) is over the limit of "
                           f"{MAX_UPLOAD_REQUEST_BYTES} bytes")


def _is_upload_route(target: bytes) -> bool:
    """Whether the request target is the upload route in Django's URL map."""
    path = _path(target)
    try:
        return path is not None and resolve(path).view_name == UPLOAD_VIEW
    except Resolver404:
        return False


def header_refusal(
    *, method: bytes, target: bytes, length: int | None, header_names: Collection[bytes],
) -> Refusal | None:
    """The refusal of a request with this request line, Content-Length (None: chunked or none) and these
    (lower-case) header names; None when its body may be read."""
    if length is not None and length > MAX_UPLOAD_REQUEST_BYTES:
        return _too_large(length, target)
    if method.upper() == b"POST" and CREDENTIAL_HEADERS.isdisjoint(header_names) and _is_upload_route(target):
        from feeds.access import BASIC_REALM  # here, not above: it needs Django's apps, loaded after this module

        return Refusal(status=HTTPStatus.UNAUTHORIZED, challenge=BASIC_REALM,
                       message="authentication required: send a user name and password (HTTP basic auth) "
                               "or an X-ApiKey header")
    return None


def body_refusal(*, target: bytes, received: int) -> Refusal | None:
    """The refusal of a body once `received` bytes of it have come in (chunked bodies announce no length)."""
    return _too_large(received, target) if received > MAX_UPLOAD_REQUEST_BYTES else None
