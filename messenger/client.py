"""The messenger's asyncio client: requests, subscriptions, connection state and background reconnect.

Guarantees: every failure to talk to the service is one MessengerUnavailable with one human
reason ("not running (no socket at …)", "connection refused (…)", "key mismatch", …); no call
waits forever; `state` always says whether the service is reachable and, if not, why.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from messenger.client_link import CONNECTION_LOST, KEY_MISMATCH, Link
from messenger.endpoint import Endpoint, host_port, socket_path
from messenger.errors import KeyMismatch, MessengerUnavailable, RequestTimeout
from messenger.limits import (
    CONNECT_TIMEOUT,
    FAILOVER_BACKOFF_MAX,
    IDLE_TIMEOUT,
    KEEPALIVE_INTERVAL,
    KEY_UPGRADE_INTERVAL,
    PROTOCOL_VERSION,
    RECONNECT_BACKOFF_MAX,
    RECONNECT_BACKOFF_MIN,
    REQUEST_TIMEOUT,
)
from messenger.messages import PING
from messenger.protocol import Connection, Role

__all__ = ["ClientState", "MessengerClient", "Subscription", "call"]

logger = logging.getLogger(__name__)
# The reconnect jitter's own generator: drawing from it leaves the global `random` state alone (which tests and
# Hypothesis seed), even from a client still reconnecting in a background thread.
_JITTER = random.Random()

# The reconnect backoff's wait, asyncio.sleep unless a test passes one that does not wait.
Sleep = Callable[[float], Awaitable[None]]

# Where `tcp://*:PORT` points (the primary's IP, None: unknown); an async one, awaited, never blocks the loop.
Resolver = Callable[[], str | None] | Callable[[], Awaitable[str | None]]

# Stream items a subscriber may fall behind by before the subscription is ended (bounded memory).
MAX_STREAM_BACKLOG = 10_000
# Request ids are 32-bit on the wire; 0 is left unused.
MAX_REQUEST_ID = 2**32 - 1

Status = Literal["connected", "connecting", "unreachable", "key-mismatch", "closed"]


@dataclass(frozen=True, slots=True)
class ClientState:
    """Whether the service is reachable; `since` is a time.time() timestamp."""

    status: Status
    reason: str
    since: float


class MessengerClient:
    """Talks to the service node; connects lazily, or keeps connected in the background after start()."""

    def __init__(
        self,
        *,
        endpoint: Endpoint,
        key: bytes,
        previous_keys: Sequence[bytes] = (),
        run_dir: Path,
        resolver: Resolver | None = None,
        request_timeout: float = REQUEST_TIMEOUT,
        connect_timeout: float = CONNECT_TIMEOUT,
        keepalive_interval: float = KEEPALIVE_INTERVAL,
        idle_timeout: float = IDLE_TIMEOUT,
        backoff_min: float = RECONNECT_BACKOFF_MIN,
        backoff_max: float = RECONNECT_BACKOFF_MAX,
        on_state_change: Callable[[ClientState], None] | None = None,
        protocol_version: int = PROTOCOL_VERSION,
        sleep: Sleep = asyncio.sleep,
        jitter: random.Random = _JITTER,
    ) -> None:
        """`protocol_version`: the version offered first; a service that refuses it is offered v1 (older services).

        `sleep` and `jitter`: the reconnect backoff's wait and its random draws (tests pass fakes, so never wait).
        """
        self._endpoint = endpoint
        self.protocol_version = protocol_version
        self._keys = _client_keys(key, previous_keys)  # raises InvalidKey now rather than at the first call
        self._run_dir = run_dir
        self._resolver = resolver
        self.request_timeout = request_timeout
        self.connect_timeout = connect_timeout
        self.keepalive_interval = keepalive_interval
        self.idle_timeout = idle_timeout
        self.backoff_min = backoff_min
        self.backoff_max = backoff_max
        self.on_state_change = on_state_change
        self._backoff_sleep = sleep
        self._jitter = jitter
        self._state = ClientState("connecting", "not connected yet", time.time())
        self._link: Link | None = None
        self._connecting: asyncio.Task[Link] | None = None
        self._generation = 0  # bumped by reconfigure(): a connect started before it is discarded
        self._last_id = 0
        self._closed = False
        self._runner: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    # --- public API ---

    @property
    def state(self) -> ClientState:
        return self._state

    async def request(self, type: str, body: dict | None = None, *, timeout: float | None = None) -> dict:
        """Send one request and return the reply body.

        Raises RemoteError (the service answered with an error), RequestTimeout (no reply within
        `timeout`, default request_timeout; connecting has its own connect_timeout) or
        MessengerUnavailable (could not reach the service, or the connection was lost).
        """
        timeout = self.request_timeout if timeout is None else timeout
        link = self._link
        if link is None or self._closed or not link.usable:
            link = await self._connected()
        id = self._next_id(link)
        # The link's one lazy deadline timer fails the future with TimeoutError: no timer (or
        # asyncio.timeout, ~5 us) per request.
        future = link.send_request(id=id, type=type, body={} if body is None else body, timeout=timeout)
        try:
            return await future
        except TimeoutError:
            raise RequestTimeout(f"no reply to {type} within {timeout:g} s") from None
        finally:
            link.forget(id)

    def subscribe(self, type: str, body: dict | None = None) -> Subscription:
        """Open a stream: `async with client.subscribe("status.subscribe") as items: async for item in items: ...`."""
        return Subscription(self, type, {} if body is None else body)

    async def ping(self) -> float:
        """Round-trip time of one `ping`, in seconds."""
        started = time.perf_counter()
        await self.request(PING)
        return time.perf_counter() - started

    def start(self) -> None:
        """Keep connected in the background: reconnect with jittered backoff, keepalive when idle."""
        if self._closed:
            raise MessengerUnavailable("client closed")
        if self._runner is None:
            self._runner = asyncio.get_running_loop().create_task(self._maintain())

    async def close(self) -> None:
        """Stop the background task, drop the connection; later calls raise MessengerUnavailable."""
        self._closed = True
        runner, self._runner = self._runner, None
        connecting = self._connecting
        for task in (runner, connecting):
            if task is not None:
                task.cancel()
                await asyncio.wait({task})
        link, self._link = self._link, None
        if link is not None:
            link.fail(MessengerUnavailable(CONNECTION_LOST))
        self._set_state("closed", "client closed")

    def reconfigure(
        self, *, endpoint: Endpoint | None = None, key: bytes | None = None, previous_keys: Sequence[bytes] = ()
    ) -> None:
        """Use a new endpoint and/or key (and `previous_keys`, tried when the service refuses `key`).

        A new endpoint drops the current connection. A new key alone fails nothing: the current connection
        (the service accepts its key during the rotation's grace) finishes what is in flight on it and
        closes, while new requests go over a new connection with the new key.
        """
        if key is not None:
            self._keys = _client_keys(key, previous_keys)
        self._generation += 1
        link, self._link = self._link, None
        if link is not None:
            if endpoint is None or endpoint == self._endpoint:
                link.drain()
            else:
                link.fail(MessengerUnavailable(CONNECTION_LOST))
        if endpoint is not None:
            self._endpoint = endpoint
        if not self._closed:
            self._set_state("connecting", "messenger settings changed")
        self._wake.set()

    # --- connecting ---

    async def _connected(self) -> Link:
        """The open link, connecting first if needed; concurrent callers share one attempt."""
        if self._closed:
            raise MessengerUnavailable("client closed")
        link = self._link
        if link is not None and link.usable:
            return link
        task = self._connecting
        if task is None:
            task = self._connecting = asyncio.get_running_loop().create_task(self._connect())
            task.add_done_callback(self._connect_done)
        await asyncio.wait({task})  # never cancels the shared attempt on our own cancellation
        if task.cancelled():
            raise MessengerUnavailable("client closed")
        return task.result()

    def _connect_done(self, task: asyncio.Task[Link]) -> None:
        if self._connecting is task:
            self._connecting = None
        if not task.cancelled():
            task.exception()  # retrieved here; the waiters re-raise it

    async def _connect(self) -> Link:
        if self._state.status not in ("unreachable", "key-mismatch"):
            self._set_state("connecting", "connecting")
        while True:
            generation = self._generation
            try:
                link, target = await self._open_link()
            except MessengerUnavailable as exc:
                if generation != self._generation:
                    continue  # reconfigured meanwhile: try the new settings
                status: Status = "key-mismatch" if isinstance(exc.__cause__, KeyMismatch) else "unreachable"
                self._set_state(status, exc.reason)
                raise
            if generation == self._generation and not self._closed:
                break
            link.fail(MessengerUnavailable(CONNECTION_LOST))
            if self._closed:
                raise MessengerUnavailable("client closed")
        self._link = link
        self._set_state("connected", f"connected to {target}")
        return link

    async def _open_link(self, keys: tuple[bytes, ...] | None = None) -> tuple[Link, str]:
        """Connect and handshake within connect_timeout, with each key in turn while the service holds another."""
        keys = keys or self._keys
        endpoint = self._endpoint
        path = socket_path(endpoint, self._run_dir) if endpoint.kind == "pipe" else None
        host = endpoint.host if path is None and not endpoint.is_any_host else None
        if path is None and host is None:
            host = self._resolver() if self._resolver is not None else None
            if inspect.isawaitable(host):  # an async resolver (indexer.messenger_config.local_resolver_async)
                host = await host
            if host is None:
                raise MessengerUnavailable("no primary service node is known")
        target = str(path) if path is not None else host_port(host, endpoint.port)
        try:
            async with asyncio.timeout(self.connect_timeout):
                for tried, key in enumerate(keys, 1):
                    try:
                        return await self._handshake(key, path, host, target, self.protocol_version), target
                    except MessengerUnavailable as exc:
                        if tried == len(keys) or not isinstance(exc.__cause__, KeyMismatch):
                            raise
                        logger.info("messenger: the service at %s holds another key; trying the previous one", target)
        except TimeoutError:
            raise MessengerUnavailable(f"timed out connecting to {target}") from None
        raise AssertionError("unreachable: the last key's failure is raised")

    async def _handshake(self, key: bytes, path: Path | None, host: str | None, target: str, version: int) -> Link:
        """One connection and handshake with `key`, offering `version` (then v1, if the service refuses it at once);
        every failure is one human reason."""
        loop = asyncio.get_running_loop()
        link = Link(key=key, on_lost=self._link_lost, version=version)
        try:
            try:
                if path is not None:
                    await loop.create_unix_connection(lambda: link, str(path))
                else:
                    await loop.create_connection(lambda: link, host, self._endpoint.port)
                await link.ready
            except asyncio.CancelledError:
                link.fail(MessengerUnavailable(f"timed out connecting to {target}"))
                raise
        except FileNotFoundError:
            raise MessengerUnavailable(f"not running (no socket at {target})") from None
        except ConnectionRefusedError:
            raise MessengerUnavailable(f"connection refused ({target})") from None
        except PermissionError:
            raise MessengerUnavailable(f"permission denied ({target})") from None
        except MessengerUnavailable as exc:
            if link.key_mismatch:
                raise MessengerUnavailable(KEY_MISMATCH) from KeyMismatch()
            if not (link.hello_rejected and version > 1):
                raise MessengerUnavailable(exc.reason) from None
        except OSError as exc:
            raise MessengerUnavailable(f"cannot connect to {target}: {exc.strerror or exc}") from None
        else:
            return link
        # REJECT right after our ClientHello: a service that predates `version` (a downgrade an attacker could also
        # force, but only to v1, which has every security property; v2 adds speed). Its allowlist, caps and
        # deadlines drop a peer without REJECT, or later, so only a version refusal gets here.
        logger.info("messenger: the service at %s refused protocol v%d; offering v1", target, version)
        return await self._handshake(key, path, host, target, 1)

    def _link_lost(self, link: Link) -> None:
        if self._link is not link:
            return
        self._link = None
        if not self._closed:
            reason = link.error.reason if link.error is not None else CONNECTION_LOST
            self._set_state("unreachable", reason)
            self._wake.set()

    # --- background upkeep ---

    async def _maintain(self) -> None:
        failures = 0
        while not self._closed:
            self._wake.clear()
            try:
                link = await self._connected()
            except MessengerUnavailable:
                # Full jitter: sleep uniform(0, min(max, min * 2**n)); a reconfigure wakes us at once.
                ceiling = min(self._backoff_cap(), self.backoff_min * 2 ** min(failures, 32))
                failures += 1
                await self._sleep(self._jitter.uniform(0, ceiling))
                continue
            failures = 0
            await self._keep_alive(link)

    def _backoff_cap(self) -> float:
        """The longest reconnect delay: short for `tcp://*`, which must find a new primary soon after a failover."""
        if self._endpoint.is_any_host:
            return min(self.backoff_max, FAILOVER_BACKOFF_MAX)
        return self.backoff_max

    async def _keep_alive(self, link: Link) -> None:
        """KEEPALIVE when we sent nothing for keepalive_interval; drop the link after idle_timeout of silence.

        A link on a previous key is replaced by one on the current key as soon as the service accepts it.
        """
        loop = asyncio.get_running_loop()
        upgrade_at = loop.time() + KEY_UPGRADE_INTERVAL if link.key != self._keys[0] else math.inf
        while link.usable and not self._closed and link is self._link:
            now = loop.time()
            if now >= upgrade_at:
                if await self._upgrade_key(link):
                    return
                upgrade_at = loop.time() + KEY_UPGRADE_INTERVAL
                continue
            silent_until = link.last_received + self.idle_timeout
            if now >= silent_until:
                logger.warning("messenger: no answer from the service for %g s; reconnecting", self.idle_timeout)
                link.fail(MessengerUnavailable(CONNECTION_LOST))
                return
            keepalive_due = link.last_sent + self.keepalive_interval
            if now >= keepalive_due:
                link.send_keepalive()
                continue
            await asyncio.wait({link.closed, link.draining}, timeout=min(keepalive_due, silent_until, upgrade_at) - now,
                               return_when=asyncio.FIRST_COMPLETED)

    async def _upgrade_key(self, link: Link) -> bool:
        """Move from `link` (on a previous key) to a new link on the current key; False if the service refuses it."""
        generation = self._generation
        try:
            new, target = await self._open_link(self._keys[:1])
        except MessengerUnavailable:
            return False
        if generation != self._generation or self._closed or self._link is not link:
            new.fail(MessengerUnavailable(CONNECTION_LOST))
            return False
        logger.info("messenger: now on the current key with %s", target)
        self._link = new
        link.drain()
        return True

    async def _sleep(self, seconds: float) -> None:
        """The backoff's wait: `seconds` of the injected sleep, cut short by a wake-up (reconfigure, lost link)."""
        waits = {asyncio.ensure_future(self._backoff_sleep(seconds)), asyncio.ensure_future(self._wake.wait())}
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()

    # --- helpers ---

    def _next_id(self, link: Link) -> int:
        while True:
            self._last_id = self._last_id % MAX_REQUEST_ID + 1
            if self._last_id not in link.pending and self._last_id not in link.streams:
                return self._last_id

    def _set_state(self, status: Status, reason: str) -> None:
        if (status, reason) == (self._state.status, self._state.reason):
            return
        if status != self._state.status:
            level = logging.WARNING if status in ("unreachable", "key-mismatch") else logging.INFO
            logger.log(level, "messenger: service %s (%s)", status, reason)
        self._state = ClientState(status, reason, time.time())
        if self.on_state_change is not None:
            try:
                self.on_state_change(self._state)
            except Exception:
                logger.exception("messenger: on_state_change callback failed")


def _client_keys(key: bytes, previous_keys: Sequence[bytes]) -> tuple[bytes, ...]:
    """The keys to try, the current one first (validated: InvalidKey)."""
    keys = tuple(dict.fromkeys((key, *previous_keys)))
    for each in keys:
        Connection(role=Role.CLIENT, key=each)
    return keys


class Subscription:
    """One open stream: an async iterator of items and an async context manager that CANCELs on exit."""

    def __init__(self, client: MessengerClient, type: str, body: dict) -> None:
        self._client = client
        self._type = type
        self._body = body
        self._link: Link | None = None
        self._id = 0
        self._items: deque[dict] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._finished = False  # no more items will arrive
        self._error: BaseException | None = None
        self._closed = False

    async def __aenter__(self) -> Subscription:
        await self._open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> dict:
        if self._link is None and not self._closed:
            await self._open()
        while not self._items:
            if self._finished or self._closed:
                if self._error is not None:
                    error, self._error = self._error, None
                    raise error
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.popleft()

    async def aclose(self) -> None:
        """End the subscription: CANCEL to the service (if it is still streaming)."""
        if self._closed:
            return
        self._closed = True
        if self._link is not None and not self._finished:
            self._link.send_cancel(self._id)
        self._finished = True
        self._wake()

    async def _open(self) -> None:
        client = self._client
        link = await client._connected()
        self._id = client._next_id(link)
        link.streams[self._id] = self
        self._link = link
        try:
            future = link.send_request(id=self._id, type=self._type, body=self._body)
            async with asyncio.timeout(client.request_timeout):
                await future  # {"subscribed": true}
        except TimeoutError:
            link.send_cancel(self._id)
            self._finished = True
            raise RequestTimeout(f"no reply to {self._type} within {client.request_timeout:g} s") from None
        except BaseException:
            link.streams.pop(self._id, None)
            self._finished = True
            raise
        finally:
            link.pending.pop(self._id, None)

    # StreamSink, called by the link

    def push(self, item: dict) -> None:
        if len(self._items) >= MAX_STREAM_BACKLOG:
            self.end(MessengerUnavailable(f"subscriber fell more than {MAX_STREAM_BACKLOG} items behind"))
            if self._link is not None:
                self._link.send_cancel(self._id)
            return
        self._items.append(item)
        self._wake()

    def end(self, error: BaseException | None) -> None:
        if self._finished:
            return
        self._finished = True
        self._error = error
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


def call(
    *,
    endpoint: Endpoint,
    key: bytes,
    previous_keys: Sequence[bytes] = (),
    run_dir: Path,
    type: str,
    body: dict | None = None,
    timeout: float = REQUEST_TIMEOUT,
    resolver: Resolver | None = None,
) -> dict[str, Any]:
    """One request from synchronous code (management commands): connect, ask, close."""

    async def once() -> dict[str, Any]:
        client = MessengerClient(
            endpoint=endpoint,
            key=key,
            previous_keys=previous_keys,
            run_dir=run_dir,
            resolver=resolver,
            request_timeout=timeout,
            connect_timeout=min(CONNECT_TIMEOUT, timeout),
        )
        try:
            return await client.request(type, body)
        finally:
            await client.close()

    return asyncio.run(once())
