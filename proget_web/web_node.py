"""This web process in the node registry: registered on its first request, heartbeat at most every WEB_HEARTBEAT.

A web node reads the messenger settings afresh for every request it sends to the service, so it runs with
the current settings version whenever it beats; that is what the Advanced Settings page shows for it.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable

from asgiref.sync import iscoroutinefunction, sync_to_async
from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.utils.decorators import sync_and_async_middleware

import proget_web
from indexer.nodes import NodeIdentity, node_heartbeat, node_register, node_settings_applied
from proget_web.administration.selectors import messenger_key_state
from proget_web.advanced_settings.selectors import settings_version

logger = logging.getLogger(__name__)

# As often as a service node's default heartbeat: the cluster page flags a node stale after 3 beats.
WEB_HEARTBEAT = 15.0


def web_node_name() -> str:
    """This web node's registry name: the machine's node name, marked as the web side."""
    return f"{settings.NODE_NAME} (web)"


class _Beat:
    """When this process last recorded itself, and the recording itself (synchronous ORM)."""

    def __init__(self) -> None:
        self.registered = False
        self.next_at = 0.0

    def due(self) -> bool:
        now = time.monotonic()
        if now < self.next_at:
            return False
        self.next_at = now + WEB_HEARTBEAT
        return True

    def run(self) -> None:
        name = web_node_name()
        try:
            fingerprint = messenger_key_state().fingerprint  # never generates the key: a GET changes no setting
            identity = NodeIdentity(name=name, kind="web", ip=settings.NODE_IP, endpoint="",
                                    version=proget_web.__version__, key_fingerprint=fingerprint)
            version = settings_version()
            if not self.registered:
                node_register(identity=identity)
                self.registered = True
            else:
                node_heartbeat(identity=identity, settings_version=version)
            node_settings_applied(name=name, version=version)
        except DatabaseError as exc:  # the registry is information: a page never fails for it
            logger.warning("web node %s not recorded in the registry: %s", name, exc)


@sync_and_async_middleware
def web_node_heartbeat(get_response: Callable) -> Callable:
    """Middleware: keep this web process's registry row fresh without a background task (daphne has none)."""
    beat = _Beat()
    if iscoroutinefunction(get_response):

        async def middleware(request: HttpRequest) -> HttpResponse:
            if beat.due():
                await sync_to_async(beat.run)()
            return await get_response(request)

    else:

        def middleware(request: HttpRequest) -> HttpResponse:
            if beat.due():
                beat.run()
            return get_response(request)

    return middleware
