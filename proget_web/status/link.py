"""The per-process link from this web process to the service: one messenger client, at most one status stream.

Guarantees: service→web traffic does not grow with viewers (one `status.subscribe` per process, opened with
the first viewer, cancelled LINGER_SECONDS after the last); viewers get coalesced, bounded messages at most
every FLUSH_INTERVAL; nothing here waits without a timeout, so no page or consumer blocks on the service.

Following the primary: a service that answers nothing for SILENCE_SECONDS (not even keepalives: frozen, cut
off) is dropped and connected to again; in `tcp://*` mode the link also asks the registry every
PRIMARY_CHECK_SECONDS who holds the primary lease and moves there when it is not where the link is, and it never
takes a standby's snapshot or events for the primary's (nor sends it the viewers' actions).

Fan-out is in-process: the viewers of this process register with the link, which hands each flush to all of
them directly. A Channels group would add nothing (it has to be per process anyway: with channels_redis a
shared group would deliver every process's fan-out to every viewer) and costs O(viewers²) per message on the
in-memory layer, whose every receive sweeps all channels for expiry.
"""
from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import time
from collections.abc import Coroutine
from typing import Any, Protocol

import orjson
from channels.db import database_sync_to_async
from django.db import DatabaseError

from cluster.primary import primary_address
from indexer.messenger_config import MessengerSettings, last_resolved_address, local_resolver_async, messenger_settings
from messenger.client import ClientState, MessengerClient
from messenger.endpoint import host_port, socket_path
from messenger.errors import MessengerError, MessengerUnavailable, RequestTimeout
from messenger.messages import PING, STATUS_SUBSCRIBE
from node_base.metrics import VIA_STATUS_LINK, round_trip_observe
from proget_web.status.state import HEARTBEAT, RUNNER, SERVICE, ServiceStatus, event_data
from settings_store.push import settings_listener

logger = logging.getLogger(__name__)

# Message types handed to viewers (Viewer.deliver).
EVENT_SNAPSHOT = "status.snapshot"  # {"snapshot": {...} | None, "link": {...}}: replaces everything
EVENT_EVENTS = "status.events"  # {"events": [...], "dropped": n}: apply in order
EVENT_LINK = "status.link"  # {"link": {...}}: the link's own connection state
# The browser messages the link encodes ONCE per flush for every viewer: events and link state are handed over
# as ready JSON text ("text"), so a viewer costs neither a copy nor a JSON encode per batch.
BROWSER_EVENTS = "events"  # {"events": [...], "dropped": n}
BROWSER_LINK = "link"  # {"link": {...}}


# Absorbs a page reload: the stream stays open this long after the last viewer left.
LINGER_SECONDS = 2.0
# At most ten messages a second to the viewers, whatever the service's event rate (DESIGN flow 2).
FLUSH_INTERVAL = 0.1
# Events waiting for the next flush; beyond this a fresh snapshot (bounded: 200 log lines) replaces them.
MAX_PENDING_EVENTS = 1000
# Events per message: keeps one WebSocket message a browser parses at once small.
BATCH_EVENTS = 500
# How often the settings are polled while viewers exist, when no push came (the service itself polls every 5 s).
SETTINGS_POLL_SECONDS = 3.0
# Round-trip measurement cadence while connected.
PING_INTERVAL = 5.0
# A ping slower than this counts as failed: the page shows no round trip rather than waiting.
PING_TIMEOUT = 2.0
# A viewer's action (run, pause, restart) gets its answer or an error within about this long.
ACTION_TIMEOUT = 3.0
# Connecting to a local or LAN service takes milliseconds; 2 s is the messenger's own default.
CONNECT_TIMEOUT = 2.0
# Reading settings from the database: a locked SQLite file must not stall the link forever.
DB_TIMEOUT = 5.0
# A viewer whose WebSocket does not take a message in this long misses it (it gets the next snapshot).
DELIVER_TIMEOUT = 2.0
# A keepalive goes out after this long without traffic to the service; the service answers each one.
KEEPALIVE_SECONDS = 1.0
# A service that sends nothing (events, replies, keepalive answers) for this long is dropped: a frozen or cut-off
# primary is noticed in seconds rather than at the messenger's 60 s idle timeout.
SILENCE_SECONDS = 3.0
# In `tcp://*` mode: how often the registry is asked who holds the primary lease (one small query).
PRIMARY_CHECK_SECONDS = 1.0
# A node that answers as a standby although the registry names it: asked again this often, not at every check.
STANDBY_RETRY_SECONDS = 5.0
STANDBY = "standby"
# Between status.subscribe attempts on a connection that refuses it: doubles up to the max.
RESUBSCRIBE_MIN = 0.2
RESUBSCRIBE_MAX = 10.0


class Viewer(Protocol):
    """What the link fans out to: a Service Status consumer of this process."""

    async def deliver(self, message: dict) -> None: ...


def _encode(message: dict) -> str:
    """A browser message as JSON text, encoded once for all viewers."""
    return orjson.dumps(message).decode()


def _run_eagerly(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None] | None:
    """Run `coro` now up to its first wait: None if it finished (its exception raised), else a task that goes on."""
    try:
        awaiting = coro.send(None)
    except StopIteration:
        return None
    return asyncio.get_running_loop().create_task(_go_on(coro, awaiting))


async def _go_on(coro: Coroutine[Any, Any, None], awaiting: Any) -> None:
    """Drive a coroutine that _run_eagerly started, as a task would: wait for what it awaits, then resume it."""
    while True:
        cancel = False
        if awaiting is not None:
            awaiting._asyncio_future_blocking = False  # taken over, as a task takes the future its coroutine yields
        try:
            await (awaiting if awaiting is not None else asyncio.sleep(0))
        except asyncio.CancelledError:
            cancel = awaiting is None or not awaiting.cancelled()  # else the coroutine sees the cancelled future
        except BaseException:  # noqa: BLE001, S110 - the coroutine sees what it awaited raise when it resumes
            pass
        try:
            awaiting = coro.throw(asyncio.CancelledError()) if cancel else coro.send(None)
        except StopIteration:
            return


class ServiceLink:
    """This process's view of the service; create it with service_link(), on the loop that serves consumers."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.status = ServiceStatus()
        self._viewers: set[Viewer] = set()
        self.subscriptions_opened = 0  # status.subscribe calls that succeeded (diagnostics, tests)
        self._session: asyncio.Task[None] | None = None
        self._linger: asyncio.TimerHandle | None = None
        self._client: MessengerClient | None = None
        self._config: MessengerSettings | None = None
        self._settings_pushed = asyncio.Event()
        settings_listener().subscribe(self._on_settings_pushed)
        self._connected = asyncio.Event()
        self._new_connection = asyncio.Event()
        self._state = ClientState("closed", "no viewers", time.time())
        self._rtt_ms: float | None = None
        self._service_fingerprint: str | None = None
        self._last_seen: float | None = None  # time.time() of the service's last word (stream item, ping reply)
        self._subscribed = False
        self._stream_error: str | None = None
        self._resolved: str | None = None  # `tcp://*`: the address this session's client last resolved to
        self._standby: str | None = None  # the node this session reached, when it answered as a standby
        self._moved_at = -math.inf  # time.monotonic() of the last move to the primary
        # Outbox: what the next flush sends to the group.
        self._out_snapshot = False
        self._out_events: list[dict] = []
        self._out_slots: dict[tuple[str, str], int] = {}  # coalescing key -> index in _out_events
        self._out_dropped = 0
        self._out_link = False
        self._out_wake = asyncio.Event()
        self._last_flush = -math.inf

    # --- viewers ---

    @property
    def viewers(self) -> int:
        """How many viewers of this process watch the status."""
        return len(self._viewers)

    def join(self, viewer: Viewer) -> None:
        """A viewer arrived: open the stream if this is the first one (or cancel a pending close)."""
        self._viewers.add(viewer)
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        if self._session is None:
            self._start_session()

    def leave(self, viewer: Viewer) -> None:
        """A viewer left: after the last one, close the stream once LINGER_SECONDS pass without a new one."""
        self._viewers.discard(viewer)
        if self.viewers == 0 and self._session is not None and self._linger is None:
            self._linger = self.loop.call_later(LINGER_SECONDS, self._linger_expired)

    def reconnect(self) -> None:
        """Drop the connection and the backoff, re-read the settings and connect again at once."""
        if self._session is None and self.viewers == 0:
            return  # nobody is watching: the next viewer connects anyway
        self._stop_session()
        self._start_session()

    @property
    def active(self) -> bool:
        """Whether a session (client + stream) is running."""
        return self._session is not None

    def view(self) -> dict[str, Any]:
        """What a new viewer gets first: the latest snapshot (None until the first arrives) and the link state."""
        return {"snapshot": self.status.as_json(), "link": self.link_json()}

    def link_json(self) -> dict[str, Any]:
        """The link's connection state as the page shows it."""
        config, state = self._config, self._state
        fingerprint = config.fingerprint if config is not None else None
        if state.status == "key-mismatch":
            match: bool | None = False
        elif fingerprint is None or self._service_fingerprint is None:
            match = None
        else:
            match = fingerprint == self._service_fingerprint
        return {
            "status": state.status,
            "reason": state.reason,
            "since": state.since,
            "endpoint": str(config.endpoint) if config is not None else None,
            "address": self._address(),
            "rttMs": self._rtt_ms,
            "fingerprint": fingerprint,
            "serviceFingerprint": self._service_fingerprint,
            "fingerprintMatch": match,
            "subscribed": self._subscribed,
            "streamError": self._stream_error,
            # When the snapshot the viewers hold was last known current: the page shows it once the data is stale.
            "lastSeen": self._last_seen,
        }

    # --- actions ---

    async def request(self, type: str, body: dict | None = None, *, timeout: float = ACTION_TIMEOUT) -> dict:
        """One request to the service through this link's client; raises MessengerError within about `timeout`."""
        if self._standby is not None:
            raise MessengerUnavailable(f"{self._standby} is a standby, not the primary: looking for the primary")
        client = self._client
        if client is None:
            raise MessengerUnavailable(self._state.reason if self._state.status != "closed" else "not connected")
        try:
            async with asyncio.timeout(timeout + CONNECT_TIMEOUT):
                return await client.request(type, body, timeout=timeout)
        except TimeoutError:
            raise RequestTimeout(f"no reply to {type} within {timeout:g} s") from None

    # --- session: one client and its loops, while viewers exist ---

    def _start_session(self) -> None:
        self._state = ClientState("connecting", "connecting", time.time())
        task = self.loop.create_task(self._run_session(), name="service-status-link")
        task.add_done_callback(self._session_done)
        self._session = task
        self._link_changed()

    def _stop_session(self) -> None:
        task, self._session = self._session, None
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        if task is not None:
            task.cancel()
        self._client = None
        self._connected.clear()
        self._state = ClientState("closed", "no viewers", time.time())
        self._rtt_ms = None
        self._subscribed = False
        self._stream_error = None
        self._resolved = self._standby = None
        self.status.clear()
        self._out_snapshot = self._out_link = False
        self._out_events, self._out_slots, self._out_dropped = [], {}, 0
        self._out_wake.clear()

    def _linger_expired(self) -> None:
        self._linger = None
        if self.viewers == 0:
            logger.debug("status link: last viewer gone, closing the status stream")
            self._stop_session()

    def _session_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            logger.error("status link: session failed", exc_info=task.exception())
        if self._session is task:
            self._session = None
            self._client = None
            self._state = ClientState("unreachable", "status link failed; use Reconnect", time.time())
            self._connected.clear()
            self._subscribed = False
            self._link_changed()

    async def _run_session(self) -> None:
        client: MessengerClient | None = None
        try:
            config = await self._load_config()
            client = MessengerClient(
                endpoint=config.endpoint, key=config.key, previous_keys=config.previous_keys, run_dir=config.run_dir,
                resolver=self._resolve, request_timeout=ACTION_TIMEOUT, connect_timeout=CONNECT_TIMEOUT,
                keepalive_interval=KEEPALIVE_SECONDS, idle_timeout=SILENCE_SECONDS,
            )
            client.on_state_change = functools.partial(self._on_client_state, client)
            self._client = client
            self._on_client_state(client, client.state)
            client.start()
            async with asyncio.TaskGroup() as group:
                group.create_task(self._flush_loop())
                group.create_task(self._stream_loop(client))
                group.create_task(self._ping_loop(client))
                group.create_task(self._settings_loop(client))
                group.create_task(self._primary_loop())
        finally:
            if client is not None:
                client.on_state_change = None
                if self._client is client:
                    self._client = None
                await client.close()

    def _on_client_state(self, client: MessengerClient, state: ClientState) -> None:
        if client is not self._client:
            return
        self._state = state
        if state.status == "connected":
            self._connected.set()
            self._new_connection.set()
        else:
            # `_subscribed` is the stream's own to clear (_stream_loop): after a key rotation the stream goes on over
            # the old connection for the grace while the client connects with the new key, and the page is live.
            self._connected.clear()
            self._rtt_ms = None
        self._link_changed()

    async def _load_config(self) -> MessengerSettings:
        """The messenger settings; while they cannot be read or are invalid, say why and retry."""
        while True:
            try:
                async with asyncio.timeout(DB_TIMEOUT):
                    config = await database_sync_to_async(messenger_settings)()
            except MessengerError as exc:
                self._state = ClientState("unreachable", f"messenger misconfigured: {exc}", time.time())
            except (TimeoutError, DatabaseError) as exc:
                self._state = ClientState("unreachable", f"settings not readable: {exc or 'timed out'}", time.time())
            else:
                self._config = config
                return config
            self._link_changed()
            await asyncio.sleep(SETTINGS_POLL_SECONDS)

    async def _stream_loop(self, client: MessengerClient) -> None:
        """Hold one status.subscribe while connected; after a loss, resubscribe when the client is back."""
        delay = RESUBSCRIBE_MIN
        while True:
            await self._connected.wait()  # client.start() reconnects with backoff; we follow it
            try:
                async with client.subscribe(STATUS_SUBSCRIBE) as items:
                    self.subscriptions_opened += 1
                    async for item in items:
                        self._on_stream_item(item)
                        delay = RESUBSCRIBE_MIN
                error = "the service ended the status stream"
            except MessengerError as exc:
                error = getattr(exc, "reason", None) or str(exc)
            except Exception:
                logger.exception("status link: status stream failed")
                error = "status stream failed"
            self._subscribed = False
            self._stream_error = error
            self._link_changed()
            await asyncio.sleep(delay)
            delay = min(delay * 2, RESUBSCRIBE_MAX)

    def _on_stream_item(self, item: dict) -> None:
        self._last_seen = time.time()
        if "snapshot" in item:
            snapshot = item["snapshot"]
            if self._note_role(snapshot.get("service") if isinstance(snapshot, dict) else None):
                self._stream_error = f"{self._standby} is a standby: looking for the primary"
                self._link_changed()
                return
            if not self.status.load(snapshot):
                logger.warning("status link: malformed snapshot ignored")
                return
            self._subscribed = True
            self._stream_error = None
            self._note_service_fingerprint()
            self._out_snapshot = True  # the snapshot includes whatever was pending
            self._out_events, self._out_slots = [], {}
            self._link_changed()
            return
        events = item.get("events")
        if self._follows_primary() and isinstance(events, list):
            for event in events:
                if isinstance(event, dict) and event.get("type") in (HEARTBEAT, SERVICE):
                    self._note_role(event_data(event))
            if self._standby is not None:
                return  # a standby's events are not the primary's: the primary loop moves the link
        dropped = item.get("dropped")
        if isinstance(dropped, int) and not isinstance(dropped, bool) and dropped > 0:
            self._out_dropped += dropped
        for event in self.status.apply(events):
            self._queue(event)
            if event["type"] == HEARTBEAT and self._note_service_fingerprint():
                self._out_link = True
        self._out_wake.set()

    def _note_role(self, info: Any) -> bool:
        """Note whether the node this link reached (its info, or a service event) says it is a standby; True if so.

        Only in `tcp://*` mode, which promises the primary: a fixed endpoint is whatever node it names.
        """
        if not isinstance(info, dict) or "role" not in info or not self._follows_primary():
            return False
        if info["role"] == STANDBY:
            node = info.get("node")
            self._standby = node if isinstance(node, str) and node else (self._resolved or "the service")
            return True
        if self._standby is not None:  # the standby became the primary: start over from its snapshot
            self._standby = None
            self.loop.call_soon(self.reconnect)
        return False

    def _follows_primary(self) -> bool:
        return self._config is not None and self._config.endpoint.is_any_host

    async def _resolve(self) -> str:
        """The client's resolver: where `tcp://*` points now, remembered to tell when the primary moved."""
        self._resolved = await local_resolver_async()
        return self._resolved

    async def _primary_loop(self) -> None:
        """`tcp://*` mode: move to the primary when the registry names another node than the one this link
        reached, or that node answers as a standby (then at most every STANDBY_RETRY_SECONDS)."""
        while True:
            await asyncio.sleep(PRIMARY_CHECK_SECONDS)
            if not self._follows_primary() or self._resolved is None:
                continue
            try:
                async with asyncio.timeout(DB_TIMEOUT):
                    address = await database_sync_to_async(primary_address)()
            except (TimeoutError, DatabaseError) as exc:
                logger.debug("status link: the primary not looked up: %s", exc or "timed out")
                continue
            if address is not None and address != self._resolved:
                reason = f"the primary is now at {address}"
            elif self._standby is not None and time.monotonic() - self._moved_at >= STANDBY_RETRY_SECONDS:
                reason = f"{self._standby} answers as a standby"
            else:
                continue
            logger.info("status link: %s; connecting to the primary", reason)
            self._moved_at = time.monotonic()
            self.loop.call_soon(self.reconnect)  # a new session, outside this one (which it cancels)
            return

    def _note_service_fingerprint(self) -> bool:
        """Take the service's fingerprint from its info; True if it changed."""
        fingerprint = (self.status.service or {}).get("fingerprint")
        if isinstance(fingerprint, str) and fingerprint != self._service_fingerprint:
            self._service_fingerprint = fingerprint
            return True
        return False

    async def _ping_loop(self, client: MessengerClient) -> None:
        """Measure the round trip at once after each connect, then every PING_INTERVAL."""
        while True:
            await self._connected.wait()
            self._new_connection.clear()
            started = time.perf_counter()
            try:
                reply = await client.request(PING, timeout=PING_TIMEOUT)
            except MessengerError:
                self._rtt_ms = None
            else:
                self._last_seen = time.time()
                self._rtt_ms = round((time.perf_counter() - started) * 1000, 2)
                round_trip_observe(seconds=self._rtt_ms / 1000, via=VIA_STATUS_LINK)
                fingerprint = reply.get("fingerprint")
                if isinstance(fingerprint, str):
                    self._service_fingerprint = fingerprint
                self._note_role(reply)
            self._link_changed()
            try:
                async with asyncio.timeout(PING_INTERVAL):
                    await self._new_connection.wait()
            except TimeoutError:
                pass

    async def _settings_loop(self, client: MessengerClient) -> None:
        """Apply messenger endpoint/key changes live: at once when pushed, else by polling while viewers exist.

        The whole messenger configuration is compared, not only the settings version: a service that refused a new
        endpoint changes where web nodes connect (messenger_settings) without a new version.
        """
        while True:
            await self._settings_changed_or_poll()
            try:
                async with asyncio.timeout(DB_TIMEOUT):
                    config = await database_sync_to_async(messenger_settings)()
            except (MessengerError, TimeoutError, DatabaseError) as exc:
                logger.warning("status link: cannot apply the messenger settings: %s", exc or "timed out")
                continue
            previous, self._config = self._config, config
            # Not the retired keys: they shrink by themselves as a rotation's grace ends, which needs no new connection.
            if previous is None or (previous.endpoint, previous.key) != (config.endpoint, config.key):
                logger.info("status link: messenger settings changed; reconnecting to %s", config.endpoint)
                self._service_fingerprint = None
                client.reconfigure(endpoint=config.endpoint, key=config.key, previous_keys=config.previous_keys)
            self._link_changed()

    def _on_settings_pushed(self, version: int) -> None:
        """A settings change was pushed (settings_store.push): re-read the settings now."""
        self._settings_pushed.set()

    async def _settings_changed_or_poll(self) -> None:
        """Wait for a settings push, or SETTINGS_POLL_SECONDS at most (the fallback when no push comes)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SETTINGS_POLL_SECONDS):
                await self._settings_pushed.wait()
        self._settings_pushed.clear()

    # --- fan-out ---

    def _link_changed(self) -> None:
        self._out_link = True
        self._out_wake.set()

    def _queue(self, event: dict) -> None:
        """Add an event to the outbox; a newer runner state or heartbeat replaces an undelivered one."""
        if self._out_snapshot:
            return  # a snapshot is going out anyway, and it includes this event
        kind = event["type"]
        key = (RUNNER, event["name"]) if kind == RUNNER else (HEARTBEAT, "") if kind == HEARTBEAT else None
        if key is not None and key in self._out_slots:
            self._out_events[self._out_slots[key]] = event
            return
        if len(self._out_events) >= MAX_PENDING_EVENTS:
            # Viewers cannot use more than the snapshot's 200 lines from a flood this size anyway.
            self._out_snapshot = True
            self._out_events, self._out_slots = [], {}
            return
        if key is not None:
            self._out_slots[key] = len(self._out_events)
        self._out_events.append(event)

    def _take_outbox(self) -> list[dict]:
        messages: list[dict] = []
        if self._out_snapshot:
            messages.append({"type": EVENT_SNAPSHOT, "snapshot": self.status.as_json(), "link": self.link_json()})
            self._out_snapshot = self._out_link = False
            self._out_dropped = 0
        events, dropped = self._out_events, self._out_dropped
        self._out_events, self._out_slots, self._out_dropped = [], {}, 0
        batches = [events[start:start + BATCH_EVENTS] for start in range(0, len(events), BATCH_EVENTS)]
        if dropped and not batches:
            batches = [[]]
        for index, batch in enumerate(batches):
            last = index == len(batches) - 1
            browser = {"type": BROWSER_EVENTS, "events": batch, "dropped": dropped if last else 0}
            messages.append({"type": EVENT_EVENTS, "text": _encode(browser)})
        if self._out_link:
            messages.append({"type": EVENT_LINK, "text": _encode({"type": BROWSER_LINK, "link": self.link_json()})})
            self._out_link = False
        return messages

    async def _flush_loop(self) -> None:
        """Hand the outbox to every viewer, at most once per FLUSH_INTERVAL."""
        while True:
            await self._out_wake.wait()
            delay = self._last_flush + FLUSH_INTERVAL - self.loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            self._out_wake.clear()
            self._last_flush = self.loop.time()
            for message in self._take_outbox():
                await self._fan_out(message)

    async def _fan_out(self, message: dict) -> None:
        """Deliver `message` to all viewers at once; a stuck or closed one never holds up the others."""
        # Each delivery runs at once, in this task, up to its first wait: daphne writes a WebSocket message without
        # waiting, so nearly every viewer is done there and costs no task. Only one that waits gets a task, and all
        # of those share one deadline. With 500 viewers this runs up to ten times a second on the loop that also
        # answers the web's requests (docs/PERFORMANCE.md, "Where daphne's time goes").
        waiting: list[asyncio.Task[None]] = []
        for viewer in tuple(self._viewers):
            try:
                task = _run_eagerly(viewer.deliver(message))
            except Exception as exc:  # noqa: BLE001 - a closed viewer: the others still get the message
                logger.debug("status link: a viewer missed a message: %s", exc)
                continue
            if task is not None:
                waiting.append(task)
        if not waiting:
            return
        try:
            done, stuck = await asyncio.wait(waiting, timeout=DELIVER_TIMEOUT)
        except asyncio.CancelledError:  # the session ends: nothing of this flush may outlive it
            for task in waiting:
                task.cancel()
            raise
        for task in stuck:
            task.cancel()
            logger.debug("status link: a viewer missed a message: not taken within %g s", DELIVER_TIMEOUT)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                logger.debug("status link: a viewer missed a message: %s", task.exception())

    def _address(self) -> str | None:
        """Where the client connects: the socket path, or HOST:PORT."""
        config = self._config
        if config is None:
            return None
        endpoint = config.endpoint
        if endpoint.kind == "pipe":
            return str(socket_path(endpoint, config.run_dir))
        host = endpoint.host if not endpoint.is_any_host else last_resolved_address()  # no lookup in the loop
        return host_port(host, endpoint.port)


_link: ServiceLink | None = None


def service_link() -> ServiceLink:
    """This process's link (one per event loop: daphne has one; each test's asyncio.run gets its own)."""
    global _link
    loop = asyncio.get_running_loop()
    if _link is None or _link.loop is not loop:
        _link = ServiceLink()
    return _link


def current_link() -> ServiceLink | None:
    """This process's link if a viewer or a page created one, else None (never creates it: for read-only callers)."""
    return _link
