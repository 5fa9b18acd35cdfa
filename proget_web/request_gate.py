"""Which requests the web server refuses from their headers alone, before reading a byte of the body.

A body over MAX_UPLOAD_REQUEST_BYTES is refused (413) on every route; a POST to the upload route that carries
no credentials at all (neither basic auth nor an X-ApiKey header) is refused (401). No I/O here: the server
(proget_web.serve) hands in what it parsed and writes the answer this returns.
"""
from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import unquote

from django.urls import Resolver404, resolve

from feeds.limits import MAX_UPLOAD_REQUEST_BYTES

# The upload route's view name (feeds/urls.py): it authenticates from headers only, so none means 401.
UPLOAD_VIEW = "feeds:legacy-upload"
# The headers that can carry credentials the upload view accepts: basic auth (feeds/access.py) or an
# API key (api/keys.py HEADER); lower-case, as the names handed in are.
CREDENTIAL_HEADERS = frozenset({b"authorization", b"x-apikey"})


@dataclass(frozen=True, kw_only=True)
class Refusal:
    """The answer to a request refused before its body: a status, a one-line reason and, for a 401, the
    WWW-Authenticate challenge."""

    status: int
    message: str
    challenge: str = ""

    def response(self) -> bytes:
        """The whole HTTP/1.1 response; it closes the connection (the body is never read)."""
        body = f"{self.message}\n".encode()
        headers = [
            f"HTTP/1.1 {self.status} {HTTPStatus(self.status).phrase}",
            "Content-Type: text/plain; charset=utf-8",
            f"Content-Length: {len(body)}",
            "Connection: close",
        ]
        if self.challenge:
            headers.append(f"WWW-Authenticate: {self.challenge}")
        return "\r\n".join(headers).encode("latin-1") + b"\r\n\r\n" + body


def _too_large(size: int) -> Refusal:
    return Refusal(status=HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                   message=f"the request body ({size} bytes or more) is over the limit of "
                           f"{MAX_UPLOAD_REQUEST_BYTES} bytes")


def _is_upload_route(target: bytes) -> bool:
    """Whether the request target (path and query, as sent) is the upload route in Django's URL map."""
    try:
        path = unquote(target.split(b"?", 1)[0].decode("ascii"))
        return resolve(path).view_name == UPLOAD_VIEW
    except (UnicodeDecodeError, Resolver404):
        return False


def header_refusal(
    *, method: bytes, target: bytes, length: int | None, header_names: Collection[bytes],
) -> Refusal | None:
    """The refusal of a request with this request line, Content-Length (None: chunked or none) and these
    (lower-case) header names; None when its body may be read."""
    if length is not None and length > MAX_UPLOAD_REQUEST_BYTES:
        return _too_large(length)
    if method.upper() == b"POST" and CREDENTIAL_HEADERS.isdisjoint(header_names) and _is_upload_route(target):
        from feeds.access import BASIC_REALM  # here, not above: it needs Django's apps, loaded after this module

        return Refusal(status=HTTPStatus.UNAUTHORIZED, challenge=BASIC_REALM,
                       message="authentication required: send a user name and password (HTTP basic auth) "
                               "or an X-ApiKey header")
    return None


def body_refusal(*, received: int) -> Refusal | None:
    """The refusal of a body once `received` bytes of it have come in (chunked bodies announce no length)."""
    return _too_large(received) if received > MAX_UPLOAD_REQUEST_BYTES else None
