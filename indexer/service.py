"""The service node: runs the task runners, serves the messenger, streams its status, applies settings live.

Signal handlers only set the stop event. Stopping (or restarting in place) publishes the new state,
gives running tasks a bounded time to finish, fails the triggers it had to interrupt, and removes the
messenger's socket file.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
import time
from collections.abc import Coroutine

from asgiref.sync import sync_to_async
from django.conf import settings

import proget_web
from indexer.logstream import HubLogHandler
from indexer.nodes import NodeIdentity, node_heartbeat, node_register, node_settings_applied
from indexer.runner import RunnerState, Scheduler, State
from indexer.service_handlers import ServiceHandlers
from indexer.status import StatusHub
from indexer.tasks import default_runners
from indexer.tasks.trigger_dispatch import triggers_dispatch
from messenger.config import MessengerSettings, messenger_settings
from messenger.errors import MessengerError
from messenger.server import MessengerServer
from proget_web.advanced_settings.selectors import setting_get, settings_version

logger = logging.getLogger(__name__)

# Running tasks get this long to finish on stop or restart before they are cancelled.
SHUTDOWN_GRACE_SECONDS = 10.0
# How often the node looks for a settings change it was not nudged about (config.changed missed).
SETTINGS_POLL_SECONDS = 5.0
LOG_LEVEL_SETTING = "Diagnostics.MinimumLogLevel"


def _read_settings() -> tuple[MessengerSettings, int, str]:
    """Messenger settings, the settings version they belong to, and the log level (one DB round)."""
    messenger = messenger_settings()  # may create the key, which bumps the version: read that afterwards
    return messenger, settings_version(), str(setting_get(LOG_LEVEL_SETTING))


class ServiceNode:
    """One service node's lifetime: from start to stop (or to a restart in place)."""

    def __init__(self, *, messenger: MessengerSettings, settings_version: int, log_level: str) -> None:
        self.messenger = messenger
        self.settings_version = settings_version
        self.started_at = time.time()
        self.restart_requested = False
        self.hub = StatusHub()
        self.log_handler = HubLogHandler(self.hub)
        self._log_level = log_level
        self._stop = asyncio.Event()
        self._apply_lock = asyncio.Lock()
        self._background: set[asyncio.Task] = set()
        self._running: set[str] = set()
        self.scheduler = Scheduler(
            default_runners(heartbeat=self.heartbeat), node=settings.NODE_NAME, on_change=self._runner_changed
        )
        handlers = ServiceHandlers(node=self)
        self.server = MessengerServer(
            key=messenger.key,
            handlers=handlers.requests(),
            stream_handlers=handlers.streams(),
            allowed_ips=messenger.allowed_ips,
        )

    # -- what the handlers and the status page read ----------------------------------------------

    def info(self) -> dict:
        """Who this node is and how its messenger is doing."""
        return {
            "node": settings.NODE_NAME,
            "version": proget_web.__version__,
            "uptime": round(time.time() - self.started_at, 3),
            "fingerprint": self.messenger.fingerprint,
            "endpoint": self.server.address,
            "settingsVersion": self.settings_version,
            "messenger": self.server.stats.as_dict(),
            "subscribers": self.hub.subscriber_count,
        }

    def identity(self) -> NodeIdentity:
        return NodeIdentity(
            name=settings.NODE_NAME, kind="service", ip=settings.NODE_IP, endpoint=self.server.address,
            version=proget_web.__version__, key_fingerprint=self.messenger.fingerprint,
        )

    def heartbeat(self) -> str:
        """Keep this node's registry row alive and tell status viewers (called by the heartbeat runner)."""
        node_heartbeat(name=settings.NODE_NAME, endpoint=self.server.address,
                       key_fingerprint=self.messenger.fingerprint)
        self.hub.publish_heartbeat(self.info())
        return "alive"

    def _runner_changed(self, state: RunnerState) -> None:
        """Stream the change; when a run ends, start triggers that were queued behind it."""
        self.hub.publish_runner(state.as_json())
        if state.state is State.RUNNING:
            self._running.add(state.name)
        elif state.name in self._running:
            self._running.discard(state.name)
            self._in_background(triggers_dispatch(scheduler=self.scheduler))

    def _in_background(self, coroutine: Coroutine) -> None:
        """Run `coroutine` as a task that is kept referenced until done."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- lifecycle ---------------------------------------------------------------------------------

    def stop(self, *, restart: bool = False) -> None:
        """Ask the node to stop, or to restart in place (safe from a signal handler)."""
        self.restart_requested = self.restart_requested or restart
        self._stop.set()

    async def run(self) -> None:
        """Serve until stop() is called, then shut down gracefully."""
        root = logging.getLogger()
        root.addHandler(self.log_handler)
        self._apply_log_level(self._log_level)
        try:
            await self.server.start(
                self.messenger.endpoint, run_dir=self.messenger.run_dir, any_host=settings.NODE_IP or "0.0.0.0"
            )
            await sync_to_async(node_register)(identity=self.identity())
            await sync_to_async(node_settings_applied)(name=settings.NODE_NAME, version=self.settings_version)
            await self.scheduler.load()
            for state in self.scheduler.states():
                self.hub.publish_runner(state.as_json())
            self.hub.publish_event("service", {"state": "running"})
            logger.info("service node %s listening on %s (key %s)",
                        settings.NODE_NAME, self.server.address, self.messenger.fingerprint)
            async with asyncio.TaskGroup() as group:
                scheduler_task = group.create_task(self.scheduler.run_forever())
                watcher = group.create_task(self._watch_settings())
                await self._stop.wait()
                state = "restarting" if self.restart_requested else "stopping"
                logger.info("service node %s %s", settings.NODE_NAME, state)
                self.hub.publish_event("service", {"state": state})
                watcher.cancel()
                await self.scheduler.stop(SHUTDOWN_GRACE_SECONDS)
                await scheduler_task
        finally:
            await self.server.close()
            root.removeHandler(self.log_handler)

    # -- live settings -----------------------------------------------------------------------------

    async def _watch_settings(self) -> None:
        """Fallback for a missed config.changed: poll the settings version."""
        while True:
            await asyncio.sleep(SETTINGS_POLL_SECONDS)
            if await sync_to_async(settings_version)() != self.settings_version:
                await self.apply_settings()

    def apply_settings_soon(self) -> None:
        """Apply settings in the background (the caller's reply goes out first)."""
        self._in_background(self.apply_settings())

    async def apply_settings(self) -> dict:
        """Re-read the settings and apply what changed without a restart: key, allowlist, endpoint, log level."""
        async with self._apply_lock:
            try:
                new, version, log_level = await sync_to_async(_read_settings)()
            except MessengerError as exc:
                logger.error("settings not applied, the current messenger stays as it is: %s", exc)
                return {"applied": False, "error": str(exc)}
            applied = []
            if new.key != self.messenger.key:
                self.server.set_key(new.key)
                applied.append("key")
            if new.allowed_ips != self.messenger.allowed_ips:
                self.server.set_allowed_ips(new.allowed_ips)
                applied.append("allowed-ips")
            endpoint = self.messenger.endpoint
            if new.endpoint != endpoint and await self._rebind(new):
                endpoint = new.endpoint
                applied.append("endpoint")
            self.messenger = dataclasses.replace(new, endpoint=endpoint)
            self._apply_log_level(log_level)
            self.settings_version = version
            self.scheduler.nudge()
            await sync_to_async(node_settings_applied)(name=settings.NODE_NAME, version=version)
            await sync_to_async(node_heartbeat)(name=settings.NODE_NAME, endpoint=self.server.address,
                                                key_fingerprint=self.messenger.fingerprint)
            logger.info("settings version %s applied (%s)", version, ", ".join(applied) or "no messenger change")
            return {"applied": True, "version": version, "changed": applied}

    async def _rebind(self, new: MessengerSettings) -> bool:
        """Move the messenger to the new endpoint; on failure go back to the old one and say why."""
        old = self.messenger
        await self.server.close()
        try:
            await self.server.start(new.endpoint, run_dir=new.run_dir, any_host=settings.NODE_IP or "0.0.0.0")
        except (OSError, MessengerError) as exc:
            logger.error("cannot listen on %s (%s); staying on %s", new.endpoint, exc, old.endpoint)
            await self.server.start(old.endpoint, run_dir=old.run_dir, any_host=settings.NODE_IP or "0.0.0.0")
            return False
        logger.info("messenger moved from %s to %s", old.endpoint, self.server.address)
        return True

    def _apply_log_level(self, name: str) -> None:
        try:
            self.log_handler.set_level_name(name)
        except ValueError:
            logger.error("%s=%r is not a log level; keeping %s", LOG_LEVEL_SETTING, name, self._log_level)
            return
        self._log_level = name
        logging.getLogger().setLevel(self.log_handler.level)


async def serve() -> None:
    """Run a service node until SIGTERM/SIGINT, restarting it in place when asked to."""
    loop = asyncio.get_running_loop()
    while True:
        messenger, version, log_level = await sync_to_async(_read_settings)()
        node = ServiceNode(messenger=messenger, settings_version=version, log_level=log_level)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, node.stop)
        await node.run()
        if not node.restart_requested:
            return
        logger.info("service node restarting in place")


async def run_once() -> list[dict]:
    """Run every due runner once and return their states (`runindexer --once`)."""
    scheduler = Scheduler(default_runners(), node=settings.NODE_NAME)
    return [state.as_json() for state in await scheduler.run_once()]
