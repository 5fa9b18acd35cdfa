"""Every WebSocket route through the real ASGI app: a foreign Origin is refused before the consumer runs (even for
a superuser's session), and a user without the page's permission is refused in connect.

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
from proget_web.status.consumers import CLOSE_FORBIDDEN
from tests.security.support import websocket_paths

pytestmark = pytest.mark.django_db(transaction=True)

# Upper bound on one test's event loop: a hang fails fast.
TEST_DEADLINE = 15.0
PATHS = websocket_paths()
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
        await communicator.wait(timeout=1)

    _run(main())


@pytest.mark.parametrize("path", PATHS)
def test_a_request_without_an_origin_is_refused(path: str, superuser: User) -> None:
    cookie = _session(superuser)

    async def main() -> None:
        connected, _, communicator = await _open(path, [(b"cookie", cookie)])
        assert connected is False
        await communicator.wait(timeout=1)

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
        await communicator.wait(timeout=1)

    _run(main())
