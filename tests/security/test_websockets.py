"""Every WebSocket route through the real ASGI app: an Origin other than the handshake's own (scheme, host and
port, as Django's CSRF check compares them) or a trusted one is refused before the consumer runs (even for a
superuser's session), and a user without the page's permission is refused in connect.

A refusal by the origin check closes the handshake without accepting it (connect() answers False); the consumer
accepts first and then closes with CLOSE_FORBIDDEN, so the page can tell why and stop retrying.
"""
from __future__ import annotations

import asyncio
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.test import Client

from proget_web.asgi import application
from proget_web.origins import handshake_origin
from proget_web.status.consumers import CLOSE_FORBIDDEN
from tests.security.support import websocket_paths

pytestmark = pytest.mark.django_db(transaction=True)

# Upper bound on one test's event loop: a hang fails fast.
TEST_DEADLINE = 15.0
PATHS = websocket_paths()
# The handshake's Host, as every browser sends it, and the page's own origin for it.
HOST = (b"host", b"localhost")
GOOD_ORIGIN = b"http://localhost"
FOREIGN_ORIGINS = [
    b"http://evil.example",
    b"https://evil.example",
    b"http://localhost.evil.example",  # a look-alike that only starts with an allowed host
    b"http://evil.example:8000",
    b"null",  # sandboxed frames and file:// pages
]


def _run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, TEST_DEADLINE))


def _session(user: User) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def _open(path: str, headers: list[tuple[bytes, bytes]]) -> tuple[bool, Any, WebsocketCommunicator]:
    if not any(name == b"host" for name, _ in headers):
        headers = [HOST, *headers]
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, code = await communicator.connect(timeout=5)
    return connected, code, communicator


def test_the_status_socket_is_routed() -> None:
    assert "/ws/administration/service" in PATHS


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("origin", FOREIGN_ORIGINS, ids=lambda o: o.decode())
def test_a_foreign_origin_is_refused_even_with_an_admins_session(path: str, origin: bytes, superuser: User) -> None:
    cookie = _session(superuser)

    async def main() -> None:
        connected, _, communicator = await _open(path, [(b"origin", origin), (b"cookie", cookie)])
        assert connected is False
        await communicator.disconnect()

    _run(main())


@pytest.mark.parametrize("path", PATHS)
def test_a_request_without_an_origin_is_refused(path: str, superuser: User) -> None:
    cookie = _session(superuser)

    async def main() -> None:
        connected, _, communicator = await _open(path, [(b"cookie", cookie)])
        assert connected is False
        await communicator.disconnect()

    _run(main())


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("who", ["anonymous", "plain", "staff"])
def test_a_user_without_the_permission_is_refused_in_connect(path: str, who: str) -> None:
    """Same origin, so the origin check passes (connect() answers True); the consumer then closes at once."""
    headers = [(b"origin", GOOD_ORIGIN)]
    if who != "anonymous":
        headers.append((b"cookie", _session(User.objects.create_user(who, password="pw", is_staff=who == "staff"))))

    async def main() -> None:
        connected, _, communicator = await _open(path, headers)
        assert connected is True
        closed = await communicator.receive_output(timeout=5)
        assert closed == {"type": "websocket.close", "code": CLOSE_FORBIDDEN}
        await communicator.disconnect()

    _run(main())


def _origin_accepted(headers: list[tuple[bytes, bytes]], cookie: bytes) -> bool:
    """Whether the handshake with `headers` and an admin's `cookie` gets past the origin check."""

    async def main() -> bool:
        connected, _, communicator = await _open(PATHS[0], [*headers, (b"cookie", cookie)])
        await communicator.disconnect()
        return connected

    return _run(main())


# (Host of the handshake, Origin): the same host name (so AllowedHostsOriginValidator let them all in), but
# another origin. A page on any of them is not this site's page.
SAME_HOST_OTHER_ORIGINS = [
    (b"localhost", b"http://localhost:31337"),  # another port (any local dev server)
    (b"127.0.0.1:8000", b"http://127.0.0.1:1"),
    (b"localhost:8000", b"http://localhost"),  # port 80 is another origin than 8000
    (b"localhost", b"https://localhost"),  # https page, plain ws handshake
    (b"127.0.0.1", b"ftp://127.0.0.1"),  # another scheme
    (b"localhost", b"http://127.0.0.1"),  # another allowed host
    (b"localhost", b"http://localhost:80.evil.example"),
]
OWN_ORIGINS = [
    (b"localhost", b"http://localhost"),
    (b"localhost:8000", b"http://localhost:8000"),
    (b"127.0.0.1:8000", b"http://127.0.0.1:8000"),
    (b"[::1]:8000", b"http://[::1]:8000"),
]


@pytest.mark.parametrize(("host", "origin"), SAME_HOST_OTHER_ORIGINS, ids=lambda v: v.decode())
def test_another_origin_of_the_same_host_is_refused(host: bytes, origin: bytes, superuser: User) -> None:
    assert _origin_accepted([(b"host", host), (b"origin", origin)], _session(superuser)) is False


@pytest.mark.parametrize(("host", "origin"), OWN_ORIGINS, ids=lambda v: v.decode())
def test_the_handshakes_own_origin_is_accepted(host: bytes, origin: bytes, superuser: User) -> None:
    assert _origin_accepted([(b"host", host), (b"origin", origin)], _session(superuser)) is True


def test_a_host_outside_allowed_hosts_is_refused_even_with_its_own_origin(superuser: User) -> None:
    """DNS rebinding: evil.example resolves to this node; its page's origin matches its Host, which is not ours."""
    headers = [(b"host", b"evil.example"), (b"origin", b"http://evil.example")]
    assert _origin_accepted(headers, _session(superuser)) is False


@pytest.mark.parametrize(("forwarded", "origin", "accepted"), [
    (b"https", b"https://localhost", True),
    (b"https", b"http://localhost", False),  # an http page of the same host, against the https site
    (b"http", b"https://localhost", False),
])
def test_behind_a_proxy_the_scheme_comes_from_x_forwarded_proto(forwarded: bytes, origin: bytes, accepted: bool,
                                                                 superuser: User, settings: Any) -> None:
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")  # DJANGO_BEHIND_PROXY=1
    headers = [(b"origin", origin), (b"x-forwarded-proto", forwarded)]
    assert _origin_accepted(headers, _session(superuser)) is accepted


def test_without_a_proxy_header_the_scheme_is_not_taken_from_the_client(superuser: User) -> None:
    """Without DJANGO_BEHIND_PROXY an X-Forwarded-Proto is the client's word: it cannot make https origins ours."""
    headers = [(b"origin", b"https://localhost"), (b"x-forwarded-proto", b"https")]
    assert _origin_accepted(headers, _session(superuser)) is False


@pytest.mark.parametrize(("origin", "accepted"), [(b"https://localhost", True), (b"http://localhost", False)])
def test_with_https_redirects_on_the_pages_origin_is_https(origin: bytes, accepted: bool, superuser: User,
                                                          settings: Any) -> None:
    """DJANGO_SECURE_SSL=1 (daphne serving TLS itself): every http page is redirected, so only https pages exist."""
    settings.SECURE_SSL_REDIRECT = True
    assert _origin_accepted([(b"origin", origin)], _session(superuser)) is accepted


@pytest.mark.parametrize(("origin", "accepted"), [
    (b"https://pkgs.example.com", True),
    (b"https://mirror.example.org", True),  # by the wildcard entry
    (b"http://pkgs.example.com", False),  # another scheme than the trusted entry's
    (b"https://pkgs.example.com:8443", False),  # another port
    (b"https://example.com.evil.example", False),
])
def test_csrf_trusted_origins_are_trusted_exactly(origin: bytes, accepted: bool, superuser: User,
                                                  settings: Any) -> None:
    """The proxy's public origin differs from the Host daphne sees: DJANGO_CSRF_TRUSTED_ORIGINS, as for forms."""
    settings.CSRF_TRUSTED_ORIGINS = ["https://pkgs.example.com", "https://*.example.org"]
    headers = [(b"host", b"127.0.0.1:8000"), (b"origin", origin)]
    assert _origin_accepted(headers, _session(superuser)) is accepted


@pytest.mark.parametrize(("scheme", "origin"), [("wss", "https://localhost:8443"), ("ws", "http://localhost:8443")])
def test_a_server_that_names_the_scheme_is_believed(scheme: str, origin: str) -> None:
    """uvicorn puts "wss" in the scope of a TLS handshake (daphne leaves the scheme out)."""
    scope = {"type": "websocket", "path": "/ws", "headers": [(b"host", b"localhost:8443")], "scheme": scheme}
    assert handshake_origin(scope) == origin
