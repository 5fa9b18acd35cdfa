"""Settings changes pushed to every web process at once through the Channels layer; polling stays the fallback.

A new settings version (and a service node's result of applying one) is published to one group once its
transaction committed; each web process listens on its serving loop and calls its subscribers (the status link,
the registry heartbeat). With the in-memory layer that is this process only; with channels_redis every web
process. A push that cannot go out (Redis down) fails nothing: the polls notice the change a little later.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)

GROUP = "proget.settings"
TYPE_CHANGED = "settings.changed"  # {"version": n}: re-read the settings (and the service's apply results)
# A publish waits this long at most for the layer (Redis): a save never hangs on it.
PUBLISH_TIMEOUT = 1.0
# Group membership expires after a day on both layers (group_expiry): the listener joins again well before.
REJOIN_SECONDS = 3600.0
# After the layer failed (Redis restarting), the listener tries again this much later; the polls cover the gap.
RETRY_SECONDS = 5.0

Subscriber = Callable[[int], None]


async def settings_push(*, version: int) -> None:
    """Tell every web process that settings `version` exists (or was applied); never raises."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async with asyncio.timeout(PUBLISH_TIMEOUT):
            await layer.group_send(GROUP, {"type": TYPE_CHANGED, "version": version})
    except Exception as exc:  # the push is an accelerator: the polls still notice
        logger.warning("settings version %s not pushed to the web nodes (%s); they notice by polling",
                       version, exc or type(exc).__name__)


def settings_push_on_commit(*, version: int) -> None:
    """Push `version` once the current transaction commits (at once outside one)."""
    transaction.on_commit(lambda: async_to_sync(settings_push)(version=version))


class SettingsListener:
    """This process's membership of the settings group, on the loop that serves it; calls each subscriber."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._subscribers: list[Subscriber] = []
        self._task = self.loop.create_task(self._listen(), name="settings push listener")

    def subscribe(self, subscriber: Subscriber) -> None:
        """Call `subscriber(version)` on this loop for every push from now on."""
        self._subscribers.append(subscriber)

    async def _listen(self) -> None:
        layer = get_channel_layer()
        if layer is None:
            return
        channel = await layer.new_channel("settings.")
        while True:
            try:
                await layer.group_add(GROUP, channel)
                async with asyncio.timeout(REJOIN_SECONDS):
                    while True:
                        self._deliver(await layer.receive(channel))
            except TimeoutError:
                continue  # join again before the membership expires
            except Exception as exc:
                logger.warning("settings push not received (%s); polling covers it, retrying in %g s",
                               exc or type(exc).__name__, RETRY_SECONDS)
                await asyncio.sleep(RETRY_SECONDS)

    def _deliver(self, message: dict) -> None:
        version = message.get("version")
        if message.get("type") != TYPE_CHANGED or not isinstance(version, int):
            return
        for subscriber in list(self._subscribers):
            try:
                subscriber(version)
            except Exception:
                logger.exception("a settings push subscriber failed")


_listener: SettingsListener | None = None


def settings_listener() -> SettingsListener:
    """This process's listener (one per event loop: daphne has one), started on first use."""
    global _listener
    loop = asyncio.get_running_loop()
    if _listener is None or _listener.loop is not loop:
        _listener = SettingsListener()
    return _listener

