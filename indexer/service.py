"""The service node: holds (or waits for) the primary lease, runs the task runners while primary, serves the
messenger, streams its status, applies settings live.

Only the lease holder runs task runners and claims triggers; a standby serves its messenger and schedules
nothing. Signal handlers only set the stop event. Stopping (or restarting in place) publishes the new
state, gives running tasks a bounded time to finish, fails the triggers it had to interrupt, releases the
lease and removes the messenger's socket file.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import functools
import logging
import signal
import socket
import time
from collections.abc import Callable, Coroutine
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections, connections

import node_base
from cluster.lease import (
    LeaseHeld,
    LeaseTiming,
    lease_acquire,
    lease_get,
    lease_release,
    lease_timing,
    term_end,
    term_join,
    term_leave,
    term_set,
    term_trusted,
)
from cluster.nodes import ApplyOutcome, NodeIdentity, node_heartbeat, node_register, node_settings_applied
from indexer.logstream import HubLogHandler
from indexer.messenger_config import MessengerSettings, messenger_settings
from indexer.runner import RunContext, RunnerState, Scheduler, State
from indexer.service_handlers import ServiceHandlers
from indexer.status import StatusHub
from indexer.tasks import default_runners
from indexer.tasks.trigger_dispatch import triggers_dispatch
from messenger.endpoint import Endpoint
from messenger.errors import MessengerError
from messenger.server import MessengerServer
from settings_store.push import settings_push
from settings_store.selectors import setting_get, settings_version

logger = logging.getLogger(__name__)

# Running tasks get this long to finish on stop or restart before they are cancelled.
SHUTDOWN_GRACE_SECONDS = 10.0
# How often the node looks for a settings change it was not nudged about (config.changed missed).
SETTINGS_POLL_SECONDS = 5.0
LOG_LEVEL_SETTING = "Diagnostics.MinimumLogLevel"
# A run that becomes due in the instant between taking the lease and trusting it waits this long at most.
GATE_WAIT_SECONDS = 1.0
# How long a new term waits for its scheduler to have recovered and loaded before claims are allowed.
TERM_START_TIMEOUT = 10.0
PRIMARY, STANDBY = "primary", "standby"


def _bind_error(exc: Exception) -> str:
    """Why listening failed, without repeating the endpoint the message names anyway."""
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    cause = exc.__cause__
    return (cause.strerror or str(cause)) if isinstance(cause, OSError) else str(exc)


def _same_port(old: Endpoint, new: Endpoint) -> bool:
    return old.kind == new.kind == "tcp" and old.port == new.port


def _listen_problem(endpoint: Endpoint, any_host: str) -> str:
    """Why TCP `endpoint` cannot be listened on now (e.g. its port is in use), "" when it can (or is a pipe).

    Binds a throwaway socket as the server would (address reuse on); blocking: run it in a thread.
    """
    if endpoint.kind != "tcp":
        return ""
    host = any_host if endpoint.is_any_host else endpoint.host
    try:
        for family, kind, proto, _, address in socket.getaddrinfo(host, endpoint.port, type=socket.SOCK_STREAM,
                                                                   flags=socket.AI_PASSIVE):
            with socket.socket(family, kind, proto) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind(address)
    except OSError as exc:
        return exc.strerror or str(exc)
    return ""


def _any_host() -> str:
    """The address a `tcp://*:PORT` endpoint listens on: this node's PROGET_NODE_IP, else every interface."""
    return settings.NODE_IP or "0.0.0.0"


class NotPrimary(RuntimeError):
    """A task runner was due on a node that does not (or no longer) hold the primary lease."""


async def _primary_gate(ctx: RunContext) -> None:
    """Let a run start only while this process holds (and trusts) the primary lease: a node woken from a
    pause starts nothing. Waits briefly for the instant between taking the lease and trusting it."""
    deadline = time.monotonic() + GATE_WAIT_SECONDS
    while not term_trusted(node=ctx.node):
        if time.monotonic() >= deadline:
            raise NotPrimary(f"{ctx.node} does not hold the primary lease; {ctx.runner_name} not run")
        await asyncio.sleep(0.05)


def _on_lease_connection(function: Callable[..., Any], /, **kwargs: Any) -> Any:
    """Run `function` on the lease thread, first dropping its database connection if it broke or aged out."""
    close_old_connections()
    return function(**kwargs)


def _read_settings() -> tuple[MessengerSettings, int, str]:
    """Messenger settings, the settings version they belong to, and the log level (one DB round)."""
    messenger = messenger_settings(serving=True)  # may create the key, which bumps the version: read that afterwards
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
        self._apply_queued = False  # an apply_settings_soon() waits to start: later nudges share it
        self._refused: Endpoint | None = None  # the TCP endpoint the settings name but the last apply could not bind
        # The lease is renewed on its own thread, hence its own database connection: work of the peers (nudges,
        # actions) queues on asgiref's shared thread and can never hold a renewal up (issue 12).
        self._lease_thread = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="lease")
        self._background: set[asyncio.Task] = set()
        self._running: set[str] = set()
        self.role = STANDBY
        self.lease_token: int | None = None
        self._term_task: asyncio.Task | None = None
        self._term_scheduler: Scheduler | None = None
        self._term_opening: asyncio.Task | None = None  # waits for the new term's scheduler, then allows claims
        self._term_open = False
        self._trusted_until = 0.0  # time.monotonic(): the lease is trusted until then (see _hold_lease)
        # A standby's scheduler is loaded (for the status page) but never run; each term as primary gets its own.
        self.scheduler = self._new_scheduler()
        handlers = ServiceHandlers(node=self)
        self.server = MessengerServer(
            key=messenger.key,
            previous_keys=messenger.retired_keys,
            handlers=handlers.requests(),
            stream_handlers=handlers.streams(),
            allowed_ips=messenger.allowed_ips,
        )

    # -- what the handlers and the status page read ----------------------------------------------

    def info(self) -> dict:
        """Who this node is and how its messenger is doing."""
        return {
            "node": settings.NODE_NAME,
            "version": node_base.__version__,
            "uptime": round(time.time() - self.started_at, 3),
            "fingerprint": self.messenger.fingerprint,
            "endpoint": self.server.address,
            "settingsVersion": self.settings_version,
            "role": self.role,
            "leaseToken": self.lease_token,
            "messenger": self.server.stats.as_dict(),
            "subscribers": self.hub.subscriber_count,
        }

    def identity(self) -> NodeIdentity:
        return NodeIdentity(
            name=settings.NODE_NAME, kind="service", ip=settings.NODE_IP, endpoint=self.server.address,
            version=node_base.__version__, key_fingerprint=self.messenger.fingerprint,
        )

    def heartbeat(self) -> str:
        """Keep this node's registry row alive and tell status viewers (called by the heartbeat runner)."""
        node_heartbeat(identity=self.identity(), settings_version=self.settings_version)
        self.hub.publish_heartbeat(self.info())
        return f"alive ({self.role}, lease token {self.lease_token})"

    def _new_scheduler(self, *, on_loaded: asyncio.Event | None = None, token: int | None = None) -> Scheduler:
        def changed(state: RunnerState) -> None:
            if on_loaded is not None:
                on_loaded.set()  # the first change comes from load(), after run_forever's trigger recovery
            self._runner_changed(state)

        return Scheduler(default_runners(heartbeat=self.heartbeat), node=settings.NODE_NAME, on_change=changed,
                         gate=_primary_gate, fencing_token=token)

    def _runner_changed(self, state: RunnerState) -> None:
        """Stream the change; when a run ends, start triggers that were queued behind it."""
        self.hub.publish_runner(state.as_json())
        if state.state is State.RUNNING:
            self._running.add(state.name)
        elif state.name in self._running:
            self._running.discard(state.name)
            self._in_background(triggers_dispatch(scheduler=self.scheduler))

    def _in_background(self, coroutine: Coroutine) -> None:
        """Run `coroutine` as a task that is kept referenced until done; a failure is logged in one line."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Task) -> None:
        self._background.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            # Work done in the background is retried by its own poll (e.g. Trigger Dispatch): say why, go on.
            logger.warning("background %s failed: %s", task.get_coro().__qualname__, error)

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
            await self.server.start(self.messenger.endpoint, run_dir=self.messenger.run_dir, any_host=_any_host())
            await sync_to_async(node_register)(identity=self.identity())
            await sync_to_async(node_settings_applied)(name=settings.NODE_NAME, version=self.settings_version,
                                                       outcome=ApplyOutcome(serves_endpoint=str(self.messenger.endpoint)))
            await self.scheduler.load()
            await self.scheduler.stop(0)  # the standby's scheduler: states only, it never runs
            for state in self.scheduler.states():
                self.hub.publish_runner(state.as_json())
            self.hub.publish_event("service", {"state": "running"})
            logger.info("service node %s listening on %s (key %s)",
                        settings.NODE_NAME, self.server.address, self.messenger.fingerprint)
            term_join(node=settings.NODE_NAME)
            async with asyncio.TaskGroup() as group:
                lease_task = group.create_task(self._hold_lease())
                watcher = group.create_task(self._watch_settings())
                await self._stop.wait()
                state = "restarting" if self.restart_requested else "stopping"
                logger.info("service node %s %s", settings.NODE_NAME, state)
                self.hub.publish_event("service", {"state": state})
                watcher.cancel()
                lease_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await lease_task
                token = self.lease_token
                await self._end_term(f"service node {state}", grace=SHUTDOWN_GRACE_SECONDS)
                if token is not None:
                    await self._on_lease_thread(lease_release, node=settings.NODE_NAME, token=token)
        finally:
            term_leave(node=settings.NODE_NAME)
            await self.server.close()
            root.removeHandler(self.log_handler)
            await self._on_lease_thread(connections.close_all)
            self._lease_thread.shutdown()

    async def _on_lease_thread(self, function: Callable[..., Any], /, **kwargs: Any) -> Any:
        """Run the database function on the lease's own thread and connection."""
        call = functools.partial(_on_lease_connection, function, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._lease_thread, call)

    # -- the primary lease -------------------------------------------------------------------------

    async def _hold_lease(self) -> None:
        """Every heartbeat: renew the lease (primary) or try to take it (standby), and beat the registry.

        Never waits for a term's start (a slow database makes that take seconds): renewals go on meanwhile.
        """
        timing = LeaseTiming(heartbeat=3.0, stale=10.0)  # the settings' defaults, until they can be read
        while True:
            try:
                timing = await self._on_lease_thread(lease_timing)
            except Exception as exc:
                logger.error("lease timing not read, keeping %s: %s", timing, exc)
            asked = time.monotonic()
            try:
                held: LeaseHeld | None = await self._on_lease_thread(
                    lease_acquire, node=settings.NODE_NAME, token=self.lease_token, stale_seconds=timing.stale
                )
            except Exception as exc:  # the database is unreachable: keep the term only while it is trusted
                logger.error("primary lease not renewed: %s", exc)
                if self.lease_token is not None and time.monotonic() >= self._trusted_until:
                    await self._end_term("the lease could not be renewed before it went stale")
            else:
                if held is None and self.lease_token is not None:
                    lease = await self._on_lease_thread(lease_get)
                    who = f"{lease.holder} (token {lease.token})" if lease else "nobody"
                    await self._end_term(f"the lease (token {self.lease_token}) is now held by {who}")
                elif held is not None:
                    # The database's expiry is at least `stale` after `asked`: stop trusting the term before it.
                    self._trusted_until = asked + timing.stale - timing.local_margin
                    if held.acquired:
                        await self._end_term("the lease was taken again under a new token")
                        self._begin_term(held.token)
                    elif self._term_open:
                        term_set(node=settings.NODE_NAME, token=held.token, trusted_until=self._trusted_until)
            try:
                await self._on_lease_thread(node_heartbeat, identity=self.identity(),
                                            settings_version=self.settings_version)
            except Exception as exc:
                logger.error("registry heartbeat not recorded: %s", exc)
            await asyncio.sleep(timing.heartbeat)

    def _begin_term(self, token: int) -> None:
        """Become the primary under `token`: run a fresh scheduler; fenced claims open once it has loaded."""
        loaded = asyncio.Event()
        scheduler = self._new_scheduler(on_loaded=loaded, token=token)
        self.lease_token, self.role, self._term_scheduler = token, PRIMARY, scheduler
        loop = asyncio.get_running_loop()
        self._term_task = loop.create_task(scheduler.run_forever())
        self._term_opening = loop.create_task(self._open_term(scheduler, loaded, token))

    async def _open_term(self, scheduler: Scheduler, loaded: asyncio.Event, token: int) -> None:
        """Once the term's scheduler has recovered and loaded (or after TERM_START_TIMEOUT), trust the term."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(loaded.wait(), TERM_START_TIMEOUT)
        if self._term_scheduler is not scheduler:
            return  # the term ended meanwhile
        self.scheduler, self._term_open = scheduler, True
        term_set(node=settings.NODE_NAME, token=token, trusted_until=self._trusted_until)
        logger.info("service node %s runs the task runners (primary, lease token %s)", settings.NODE_NAME, token)
        self.hub.publish_event("service", {"state": "running", "role": PRIMARY, "leaseToken": token})

    async def _end_term(self, reason: str, *, grace: float = 0.0) -> None:
        """Stop being the primary: stop the scheduler (at once when the lease was lost) and say why, in one line.

        A lost term writes nothing more: its cancelled runs are not recorded (their records, and the triggers
        they ran for, belong to the new primary's term, which recovers them).
        """
        if self.lease_token is None:
            return
        level = logging.WARNING if grace == 0.0 else logging.INFO
        logger.log(level, "%s steps down from primary (lease token %s): %s", settings.NODE_NAME, self.lease_token,
                   reason)
        if grace == 0.0:  # lost: nothing may be claimed or recorded from here on
            term_end(node=settings.NODE_NAME, reason=reason)
        opening, self._term_opening, self._term_open = self._term_opening, None, False
        if opening is not None:
            opening.cancel()
        scheduler, self._term_scheduler = self._term_scheduler, None
        if scheduler is not None:
            self.scheduler = scheduler  # stopped from here on: the standby's view of the runners
            await scheduler.stop(grace)
        task, self._term_task = self._term_task, None
        if task is not None:
            try:
                await task
            except Exception:
                logger.exception("the task runners of lease token %s ended with an error", self.lease_token)
        term_end(node=settings.NODE_NAME, reason=reason)
        self.lease_token, self.role = None, STANDBY
        self.hub.publish_event("service", {"state": "running", "role": STANDBY, "reason": reason})

    # -- live settings -----------------------------------------------------------------------------

    async def _watch_settings(self) -> None:
        """Fallback for a missed config.changed: poll the settings version (a failed poll never stops the node).

        Also takes up a refused endpoint by itself once its port is free (checked with a throwaway bind), so the
        admin need not save it again after stopping whatever held the port.
        """
        while True:
            await asyncio.sleep(SETTINGS_POLL_SECONDS)
            try:
                if await sync_to_async(settings_version)() != self.settings_version or await self._refused_freed():
                    await self.apply_settings()
            except Exception as exc:  # e.g. the database unreachable for a moment: the next poll tries again
                logger.error("settings version not polled: %s", exc)

    async def _refused_freed(self) -> bool:
        """Whether the endpoint the last apply refused can be listened on now."""
        refused = self._refused
        if refused is None or await asyncio.to_thread(_listen_problem, refused, _any_host()):
            return False
        logger.info("%s is free now: the messenger moves there", refused)
        return True

    def apply_settings_soon(self) -> None:
        """Apply settings in the background (the caller's reply goes out first).

        Coalesced: while one apply waits to start, later calls share it (it reads the settings after them),
        so a flood of config.changed costs one apply after the one under way, not one apply each.
        """
        if self._apply_queued:
            return
        self._apply_queued = True
        self._in_background(self._apply_queued_settings())

    async def _apply_queued_settings(self) -> None:
        async with self._apply_lock:
            self._apply_queued = False  # from here on a new call needs an apply of its own
            await self._apply_settings_locked()

    async def apply_settings(self) -> dict:
        """Re-read the settings and apply what changed without a restart: key, allowlist, endpoint, log level."""
        async with self._apply_lock:
            return await self._apply_settings_locked()

    async def _apply_settings_locked(self) -> dict:
        try:
            new, version, log_level = await sync_to_async(_read_settings)()
        except MessengerError as exc:
            logger.error("settings not applied, the current messenger stays as it is: %s", exc)
            return {"applied": False, "error": str(exc)}
        applied = []
        if (new.key, new.retired_keys) != (self.messenger.key, self.messenger.retired_keys):
            self.server.set_key(new.key, new.retired_keys)  # cuts nothing in flight: see docs/messenger.md
            applied.append("key" if new.key != self.messenger.key else "previous keys")
        if new.allowed_ips != self.messenger.allowed_ips:
            self.server.set_allowed_ips(new.allowed_ips)
            applied.append("allowed-ips")
        endpoint = self.messenger.endpoint
        problem = ""
        if new.endpoint != endpoint:
            problem = await self._rebind(new)
            if not problem:
                endpoint = new.endpoint
                applied.append("endpoint")
        # Only a TCP port can be probed without touching the server; a refused socket path waits for a save.
        self._refused = new.endpoint if problem and new.endpoint.kind == "tcp" else None
        self.messenger = dataclasses.replace(new, endpoint=endpoint)
        self._apply_log_level(log_level)
        self.settings_version = version
        self.scheduler.nudge()
        outcome = ApplyOutcome(serves_endpoint=str(endpoint), refused_endpoint=str(new.endpoint) if problem else "",
                               problem=problem)
        await sync_to_async(node_settings_applied)(name=settings.NODE_NAME, version=version, outcome=outcome)
        await sync_to_async(node_heartbeat)(identity=self.identity(), settings_version=version)
        await settings_push(version=version)  # web nodes re-read where the messenger is
        logger.info("settings version %s applied (%s)%s", version, ", ".join(applied) or "no messenger change",
                    f"; refused: {problem}" if problem else "")
        return {"applied": not problem, "version": version, "changed": applied, "problem": problem}

    async def _rebind(self, new: MessengerSettings) -> str:
        """Move the messenger to the new endpoint; on failure go back to the old one. "" or why it failed.

        A port known to be taken is refused before the old endpoint is closed, so its peers stay connected.
        """
        old = self.messenger
        any_host = _any_host()
        error = ""
        if not _same_port(old.endpoint, new.endpoint):  # our own listener would make the check fail
            error = await asyncio.to_thread(_listen_problem, new.endpoint, any_host)
        if not error:
            await self.server.close()
            try:
                await self.server.start(new.endpoint, run_dir=new.run_dir, any_host=any_host)
            except (OSError, MessengerError) as exc:
                error = _bind_error(exc)
                await self.server.start(old.endpoint, run_dir=old.run_dir, any_host=any_host)
        if error:
            problem = f"cannot listen on {new.endpoint} ({error}); staying on {old.endpoint}"
            logger.error("%s", problem)
            return problem
        logger.info("messenger moved from %s to %s", old.endpoint, self.server.address)
        return ""

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
