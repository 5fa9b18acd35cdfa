"""This web process in the node registry: registered on its first request, then a heartbeat every interval.

The interval is the service nodes' own (`Runners.ServiceHeartbeat.IntervalSeconds`), since the Cluster page
flags any node stale after three of them. Under an ASGI server (daphne) the beat runs on the serving loop,
requests or not, so an idle web node does not look dead, and at once when a settings change is pushed (Channels
layer); without one (the test client) a request beats when due.
A web node reads the messenger settings afresh for every request it sends to the service, so it runs with
the current settings version whenever it beats; that is what the Advanced Settings page shows for it.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import logging
import time
from collections.abc import Callable

from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.db import DatabaseError, close_old_connections
from django.http import HttpRequest, HttpResponse
from django.utils.decorators import sync_and_async_middleware

import node_base
from administration.selectors import HEARTBEAT_SETTING, messenger_key_state
from cluster.nodes import NodeIdentity, node_heartbeat, node_register, node_settings_applied
from settings_store.push import settings_listener
from settings_store.selectors import setting_get, settings_version

logger = logging.getLogger(__name__)

# Until the interval can be read (the database is down), beat at the setting's default pace.
FALLBACK_INTERVAL = 15.0


def web_node_name() -> str:
    """This web node's registry name: the machine's node name, marked as the web side."""
    return f"{settings.NODE_NAME} (web)"


def beat_interval() -> float:
    """Seconds between two heartbeats of a web node: the service nodes' heartbeat interval."""
    return float(setting_get(HEARTBEAT_SETTING))


class _Beat:
    """When this process last recorded itself, the recording itself (synchronous ORM), and the background beat."""

    def __init__(self) -> None:
        self.registered = False
        self.next_at = 0.0
        self.task: asyncio.Task | None = None
        self.wake: asyncio.Event | None = None  # set by a settings push: beat now, recording the new version

    def due(self) -> bool:
        return time.monotonic() >= self.next_at

    def run(self) -> float:
        """Record this process in the registry; returns the seconds until the next beat."""
        name = web_node_name()
        interval = FALLBACK_INTERVAL
        try:
            interval = beat_interval()
            fingerprint = messenger_key_state().fingerprint  # never generates the key: a GET changes no setting
            identity = NodeIdentity(name=name, kind="web", ip=settings.NODE_IP, endpoint="",
                                    version=node_base.__version__, key_fingerprint=fingerprint)
            version = settings_version()
            if not self.registered:
                node_register(identity=identity)
                self.registered = True
            else:
                node_heartbeat(identity=identity, settings_version=version)
            node_settings_applied(name=name, version=version)
        except DatabaseError as exc:  # the registry is information: a page never fails for it
            logger.warning("web node %s not recorded in the registry: %s", name, exc)
        self.next_at = time.monotonic() + interval
        return interval

    def keep_beating(self) -> None:
        """Beat from the running (serving) loop from now on, whether requests come or not; once per process."""
        if self.task is None:
            self.wake = asyncio.Event()
            settings_listener().subscribe(lambda version: self.wake.set())
            # A context of its own: the request's would tie the beat to that request's sync thread, gone after it.
            self.task = asyncio.get_running_loop().create_task(
                self._beat_forever(), name="web node heartbeat", context=contextvars.Context()
            )

    def _run_outside_requests(self) -> float:
        close_old_connections()  # no request cycle here to drop a connection that a database restart broke
        return self.run()

    async def _beat_forever(self) -> None:
        # One thread of its own, so the beat holds one database connection, and never waits behind a view.
        thread = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="web-node-heartbeat")
        loop = asyncio.get_running_loop()
        while True:
            try:
                interval = await loop.run_in_executor(thread, self._run_outside_requests)
            except Exception:  # never let the beat die: the node would look stale while it serves
                logger.exception("web node heartbeat failed")
                interval = FALLBACK_INTERVAL
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self.wake.wait()
            self.wake.clear()


def web_node_settings_applied() -> None:
    """Record that this web process runs with the current settings version now (after it saved a change)."""
    try:
        node_settings_applied(name=web_node_name(), version=settings_version())
    except DatabaseError as exc:
        logger.warning("web node %s not recorded in the registry: %s", web_node_name(), exc)


@sync_and_async_middleware
def web_node_heartbeat(get_response: Callable) -> Callable:
    """Middleware: register this web process on its first request and keep its registry row fresh."""
    beat = _Beat()
    if iscoroutinefunction(get_response):

        async def middleware(request: HttpRequest) -> HttpResponse:
            beat.keep_beating()
            return await get_response(request)

    else:

        def middleware(request: HttpRequest) -> HttpResponse:
            if beat.due():
                beat.run()
            return get_response(request)

    return middleware
