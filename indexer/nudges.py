"""Trigger nudges from synchronous code over one long-lived messenger connection per process.

A web process's Reindex and Run write a durable trigger, then nudge the service. Here the nudge goes over a
connection this process keeps open (its own thread and event loop, keepalive and reconnect with backoff), not a
new connection, handshake and event loop per click. The caller never waits for the service once the connection's
state is known: connected, the nudge is on its way and the caller answers the user; unreachable, the caller says
"queued: the service is not reachable" with the reason at once (the nudge still goes out, in case the service is
just back). Only the first nudge after a start or a settings change waits (at most its `wait`) for the connection.
A nudge already on its way for the same trigger is not sent twice. A lost nudge loses nothing: the trigger stays
pending and Trigger Dispatch claims it on its poll.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from dataclasses import dataclass

from django.conf import settings

from indexer.messenger_config import (
    ALLOWED_IPS_SETTING,
    ENDPOINT_SETTING,
    KEY_GRACE_SETTING,
    KEY_SETTING,
    MessengerSettings,
    local_resolver_async,
    messenger_settings,
)
from messenger.client import MessengerClient
from messenger.errors import MessengerError, MessengerUnavailable
from messenger.messages import TRIGGER_NUDGE
from settings_store.models import SettingValue

logger = logging.getLogger(__name__)



@dataclass(frozen=True, kw_only=True)
class NudgeSent:
    reachable: bool  # False: the service could not be reached now; the trigger waits for Trigger Dispatch
    reason: str = ""  # why not reachable
    reply: dict | None = None  # the service's answer, when the caller waited for it


# Connection states in which the caller is answered at once (messenger.client.ClientState.status).
KNOWN_UP = "connected"
KNOWN_DOWN = ("unreachable", "key-mismatch")


class Nudger:
    """This process's nudge connection: created on first use, then kept open in the background."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: MessengerClient | None = None
        self._config_key: tuple | None = None  # the stored messenger settings and data dir the client was built for
        self._in_flight: set[int] = set()

    def nudge(self, trigger_id: int, *, wait: float) -> NudgeSent:
        """Send `trigger.nudge {id}`; wait (at most `wait` s) only while the connection's state is not known yet.

        Call it from synchronous code (it reads the stored settings); raises nothing: failures come back as
        NudgeSent(reachable=False, reason=...).
        """
        try:
            client, loop = self._client_for_settings()
        except MessengerError as exc:
            return NudgeSent(reachable=False, reason=str(exc))
        state = client.state
        with self._lock:
            if trigger_id in self._in_flight and state.status == KNOWN_UP:
                return NudgeSent(reachable=True)
            self._in_flight.add(trigger_id)
        future = asyncio.run_coroutine_threadsafe(self._send(client, trigger_id, wait), loop)
        if state.status == KNOWN_UP:
            return NudgeSent(reachable=True)
        if state.status in KNOWN_DOWN:
            return NudgeSent(reachable=False, reason=state.reason)
        try:
            reply = future.result(timeout=wait + 1.0)  # the request itself gives up after `wait`
        except MessengerUnavailable as exc:
            return NudgeSent(reachable=False, reason=exc.reason)
        except (MessengerError, concurrent.futures.TimeoutError) as exc:
            return NudgeSent(reachable=False, reason=str(exc) or f"no answer within {wait:g} s")
        return NudgeSent(reachable=True, reply=reply)

    async def _send(self, client: MessengerClient, trigger_id: int, timeout: float) -> dict:
        try:
            return await client.request(TRIGGER_NUDGE, {"id": trigger_id}, timeout=timeout)
        except MessengerError as exc:
            logger.info("trigger %s not nudged (it waits for Trigger Dispatch): %s", trigger_id,
                        getattr(exc, "reason", None) or exc)
            raise
        finally:
            with self._lock:
                self._in_flight.discard(trigger_id)

    def _client_for_settings(self) -> tuple[MessengerClient, asyncio.AbstractEventLoop]:
        """The client for the current messenger settings (one small query; parsed again only when they changed)."""
        key = (*_stored_settings(), str(settings.DATA_DIR))
        with self._lock:
            loop = self._loop
            if loop is None:
                loop = self._loop = _start_loop()
            if key != self._config_key or self._client is None:
                config = messenger_settings()
                old, self._client = self._client, _client(config)
                self._config_key = key
                asyncio.run_coroutine_threadsafe(_replace(old, self._client), loop)
            return self._client, loop


def _stored_settings() -> tuple:
    """The messenger settings as stored, for noticing a change (any node may change them at any time)."""
    names = (ENDPOINT_SETTING, KEY_SETTING, ALLOWED_IPS_SETTING, KEY_GRACE_SETTING)
    return tuple(SettingValue.objects.filter(name__in=names).order_by("name").values_list("name", "value"))


async def _replace(old: MessengerClient | None, new: MessengerClient) -> None:
    """Close the client of the previous settings, keep the new one connected (on the nudge loop)."""
    if old is not None:
        await old.close()
    new.start()


def _client(config: MessengerSettings) -> MessengerClient:
    return MessengerClient(endpoint=config.endpoint, key=config.key, previous_keys=config.previous_keys,
                           run_dir=config.run_dir, resolver=local_resolver_async)


def _start_loop() -> asyncio.AbstractEventLoop:
    """An event loop on a daemon thread of its own, for the nudge connection."""
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, name="trigger-nudges", daemon=True).start()
    return loop


_nudger = Nudger()


def trigger_nudge(*, trigger_id: int, wait: float) -> NudgeSent:
    """Nudge the service about `trigger_id` over this process's long-lived connection (see Nudger.nudge)."""
    return _nudger.nudge(trigger_id, wait=wait)
