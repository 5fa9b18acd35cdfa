"""WebSockets and the sessions they were opened with: the session's user as of now, and closing at logout.

Guarantees: session_user() reads the session and the user again (an ended, expired or flushed session, or a
changed password, gives None) and never writes the session. A logout served by this process ends every socket
this process holds for that session (each socket's callback runs on its own event loop, whichever thread sent
the signal). A logout served by another web process reaches nothing here (status fan-out is per process too,
docs/deployment.md): there the consumer's per-action session check refuses, and its lifetime ends the socket.

The receiver is connected when this module is imported, which every consumer that registers a socket does: a
process that never imported it holds no socket to close.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model, load_backend
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.signals import user_logged_out
from django.dispatch import receiver
from django.utils.crypto import constant_time_compare

logger = logging.getLogger(__name__)

_lock = threading.Lock()  # logouts arrive on Django's sync thread, registrations on the event loop
_sockets: dict[str, dict[object, tuple[asyncio.AbstractEventLoop, Callable[[], None]]]] = {}


def session_user(session_key: str) -> AbstractBaseUser | None:
    """The user `session_key` stands for now, checked as django.contrib.auth.get_user does; None if none.

    Read-only, unlike get_user: a socket cannot hand the browser a new cookie, so a session verified by a
    SECRET_KEY_FALLBACKS hash is accepted as it is rather than cycled (which would delete the browser's session).
    Runs database queries: call it from a sync context (database_sync_to_async).
    """
    session = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    try:
        user_id = get_user_model()._meta.pk.to_python(session[SESSION_KEY])
        backend_path = session[BACKEND_SESSION_KEY]
    except KeyError:  # ended or expired: the store loads an empty session
        return None
    if backend_path not in settings.AUTHENTICATION_BACKENDS:
        return None
    user = load_backend(backend_path).get_user(user_id)
    session_hash = session.get(HASH_SESSION_KEY)
    if user is None or not session_hash:
        return None
    hashes = [user.get_session_auth_hash(), *user.get_session_auth_fallback_hash()]
    return user if any(constant_time_compare(session_hash, known) for known in hashes) else None


def session_socket_add(*, session_key: str, socket: object, on_end: Callable[[], None]) -> None:
    """Remember `socket` as open under `session_key`; `on_end` runs on the current event loop at logout."""
    loop = asyncio.get_running_loop()
    with _lock:
        _sockets.setdefault(session_key, {})[socket] = (loop, on_end)


def session_socket_remove(*, session_key: str, socket: object) -> None:
    """Forget `socket` (it closed); nothing happens if it was not registered."""
    with _lock:
        sockets = _sockets.get(session_key, {})
        sockets.pop(socket, None)
        if not sockets:
            _sockets.pop(session_key, None)


def session_sockets_end(*, session_key: str) -> int:
    """Tell every socket open under `session_key` to end, and forget them; how many were told."""
    with _lock:
        sockets = _sockets.pop(session_key, {})
    for loop, on_end in sockets.values():
        with contextlib.suppress(RuntimeError):  # that loop is closed: its sockets are gone with it
            loop.call_soon_threadsafe(on_end)
    return len(sockets)


@receiver(user_logged_out, dispatch_uid="proget_web.session_sockets")
def _end_on_logout(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    session_key = getattr(getattr(request, "session", None), "session_key", None)
    if session_key:
        ended = session_sockets_end(session_key=session_key)
        if ended:
            logger.info("closed %d WebSocket(s) of %s at logout", ended, user)
