"""The messenger's asyncio server: listens on a Unix socket or TCP and serves one Protocol per peer.

Guarantees: peers are checked (IP allowlist, connection cap, the budget of keyless handshakes) before a
byte is read; every connection lives under absolute deadlines (hello, handshake, frame in progress, idle); every
failure writes the uniform REJECT (or, at accept, drops the peer without a word), is counted exactly in
`stats.rejects` and logged in aggregate (messenger.server_log); a connection whose key is retired runs nothing new.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import stat
import time
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from messenger import limits
from messenger.admission import HandshakeBudget
from messenger.allowlist import IPNetwork, ip_allowed
from messenger.crypto import RetiredKey
from messenger.endpoint import Endpoint, host_port, socket_path
from messenger.errors import MessengerError
from messenger.fair import FairSlots
from messenger.limits import PROTOCOL_VERSION, REJECT_LOG_MAX_KEYS
from messenger.local_socket import run_dir_secure
from messenger.protocol import Connection, Role
from messenger.server_connection import Handler, RequestContext, ServerConnection, ServerStats, StreamHandler
from messenger.server_log import RejectLog

__all__ = ["Handler", "MessengerServer", "RequestContext", "ServerLimits", "ServerStats", "StreamHandler"]

logger = logging.getLogger(__name__)

# The run dir holds the socket: only the service's own user may even look inside it.
RUN_DIR_MODE = 0o700
# The socket file: only the service's own user may connect.
SOCKET_MODE = 0o600
# Umask while binding, so the socket file is never, even for a moment, open to others.
SOCKET_UMASK = 0o177
# How long start() lets an existing socket file answer before concluding a live service holds it.
STALE_SOCKET_PROBE_TIMEOUT = 1.0
# How long close() waits for its connections to report they are gone (they are aborted, so ~instant).
CLOSE_WAIT_TIMEOUT = 1.0


@dataclass(frozen=True, kw_only=True)
class ServerLimits:
    """Per-server limits; the defaults are the protocol's (messenger.limits), tests shrink them."""

    handshake_timeout: float = limits.HANDSHAKE_TIMEOUT
    hello_timeout: float = limits.HELLO_TIMEOUT  # only applies when shorter than handshake_timeout
    frame_timeout: float = limits.FRAME_TIMEOUT
    idle_timeout: float = limits.IDLE_TIMEOUT
    retire_timeout: float = limits.RETIRE_TIMEOUT
    max_connections: int = limits.MAX_CONNECTIONS
    max_handshaking: int = limits.MAX_HANDSHAKING
    max_handshaking_per_source: int = limits.MAX_HANDSHAKING_PER_SOURCE
    reject_log_interval: float = limits.REJECT_LOG_INTERVAL
    max_streams: int = limits.MAX_STREAMS_PER_CONNECTION
    max_requests_in_flight: int = limits.MAX_REQUESTS_IN_FLIGHT
    max_output_bytes: int = limits.MAX_OUTPUT_BUFFER_BYTES
    handler_slots: int = limits.HANDLER_SLOTS


_NO_STREAMS: Mapping[str, StreamHandler] = MappingProxyType({})


class MessengerServer:
    """Serve messenger requests to authenticated peers; see docs/messenger.md."""

    def __init__(
        self,
        *,
        key: bytes,
        previous_keys: Sequence[RetiredKey] = (),
        handlers: Mapping[str, Handler],
        stream_handlers: Mapping[str, StreamHandler] = _NO_STREAMS,
        allowed_ips: Sequence[IPNetwork] = (),
        limits: ServerLimits = ServerLimits(),  # noqa: B008 - frozen, so sharing the default is safe
        protocol_version: int = PROTOCOL_VERSION,
    ) -> None:
        """`protocol_version`: the newest version served (every older one is served too)."""
        self.key = key
        self.protocol_version = protocol_version
        self.previous_keys: tuple[RetiredKey, ...] = ()
        self.accepted_previous: tuple[bytes, ...] = ()  # the raw keys of previous_keys, for each new Connection
        self._grace_timer: asyncio.TimerHandle | None = None
        self._set_keys(key, previous_keys)  # raises InvalidKey now rather than at the first peer
        self.handlers = dict(handlers)
        self.stream_handlers = dict(stream_handlers)
        self.allowed_ips: tuple[IPNetwork, ...] = tuple(allowed_ips)
        self.limits = limits
        self.handler_slots = FairSlots(limits.handler_slots)  # shared by all connections, round-robin
        self.stats = ServerStats()
        self.connections: set[ServerConnection] = set()
        self.handshakes: HandshakeBudget[ServerConnection] = HandshakeBudget(
            size=limits.max_handshaking, per_source=limits.max_handshaking_per_source)
        self.reject_log = RejectLog(interval=limits.reject_log_interval, max_keys=REJECT_LOG_MAX_KEYS)
        self._server: asyncio.AbstractServer | None = None
        self._socket_file: tuple[Path, int] | None = None  # (path, inode) of the socket we created

    # --- lifecycle ---

    async def start(self, endpoint: Endpoint, *, run_dir: Path, any_host: str = "0.0.0.0") -> None:
        """Listen on `endpoint` (pipe: a Unix socket in run_dir; tcp://*:PORT: on any_host:PORT)."""
        if self._server is not None:
            raise MessengerError(f"the messenger server is already listening on {self.address}")
        loop = asyncio.get_running_loop()
        if endpoint.kind == "pipe":
            self._server = await self._start_unix(loop, socket_path(endpoint, run_dir), run_dir)
        else:
            host = any_host if endpoint.is_any_host else endpoint.host
            try:
                self._server = await loop.create_server(self._new_connection, host, endpoint.port, reuse_address=True)
            except OSError as exc:
                raise MessengerError(f"cannot listen on {endpoint}: {exc.strerror or exc}") from exc
        logger.info("messenger: listening on %s", self.address)
        self._arm_grace_timer()

    async def close(self) -> None:
        """Stop accepting, close every connection and remove our socket file (if it is still ours)."""
        server, self._server = self._server, None
        if server is None:
            return
        if self._grace_timer is not None:
            self._grace_timer.cancel()
            self._grace_timer = None
        server.close()
        gone = [conn.lost for conn in self.connections]
        for conn in list(self.connections):
            conn.close(abort=True, why="server closing")
        if gone:
            await asyncio.wait(gone, timeout=CLOSE_WAIT_TIMEOUT)
        await server.wait_closed()
        self.reject_log.close()
        if self._socket_file is not None:
            path, inode = self._socket_file
            self._socket_file = None
            with suppress(FileNotFoundError):
                if os.lstat(path).st_ino == inode:
                    path.unlink()
        logger.info("messenger: server closed")

    @property
    def address(self) -> str:
        """Where we really listen: the socket path, or tcp://HOST:PORT with the bound port."""
        if self._server is None:
            raise MessengerError("the messenger server is not listening")
        if self._socket_file is not None:
            return str(self._socket_file[0])
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"tcp://{host_port(host, port)}"

    # --- live reconfiguration ---

    def set_key(self, key: bytes, previous_keys: Sequence[RetiredKey] = ()) -> None:
        """Accept `key` and, each until its grace ends, `previous_keys`.

        Connections on a key still accepted go on. A connection on a key dropped here (a rotation with no grace)
        is closed at once, with what it had in flight; see _grace_ended for a key whose grace ran out.
        """
        self._apply_keys(key, previous_keys, at_once=True)

    def accepts(self, key: bytes) -> bool:
        """Whether a connection authenticated with `key` may go on."""
        return key == self.key or key in self.accepted_previous

    def set_allowed_ips(self, networks: Sequence[IPNetwork]) -> None:
        """Apply a new allowlist; TCP peers that no longer qualify are closed."""
        self.allowed_ips = tuple(networks)
        for conn in list(self.connections):
            if conn.peer_ip is not None and not ip_allowed(conn.peer_ip, self.allowed_ips):
                conn.close(abort=False, why="peer no longer in Service.MessengerAllowedIps")

    # --- internals ---

    def _set_keys(self, key: bytes, previous_keys: Sequence[RetiredKey]) -> None:
        now = time.time()
        previous = tuple(retired for retired in previous_keys if retired.until > now and retired.key != key)
        raw = tuple(dict.fromkeys(retired.key for retired in previous))
        Connection(role=Role.SERVER, key=key, previous_keys=raw)  # validate every key
        self.key, self.previous_keys, self.accepted_previous = key, previous, raw

    def _arm_grace_timer(self) -> None:
        """Drop each previous key when its grace ends (needs a running loop: armed again by start())."""
        if self._grace_timer is not None:
            self._grace_timer.cancel()
            self._grace_timer = None
        if not self.previous_keys:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        delay = min(retired.until for retired in self.previous_keys) - time.time()
        self._grace_timer = loop.call_later(max(0.0, delay), self._grace_ended)

    def _grace_ended(self) -> None:
        """Drop the keys whose grace ran out: their connections may finish what is in flight (retire_timeout)."""
        self._grace_timer = None
        self._apply_keys(self.key, self.previous_keys, at_once=False)  # drops what expired, re-arms for the rest
        logger.info("messenger: a previous key's grace ended; %d previous key(s) still accepted",
                    len(self.previous_keys))

    def _apply_keys(self, key: bytes, previous_keys: Sequence[RetiredKey], *, at_once: bool) -> None:
        self._set_keys(key, previous_keys)
        self._arm_grace_timer()
        for conn in list(self.connections):
            if conn.authenticated and not self.accepts(conn.key):
                conn.retire(at_once=at_once)

    def _new_connection(self) -> ServerConnection:
        return ServerConnection(self)

    async def _start_unix(self, loop: asyncio.AbstractEventLoop, path: Path, run_dir: Path) -> asyncio.AbstractServer:
        run_dir_secure(run_dir, mode=RUN_DIR_MODE)  # refuses a symlink or another user's dir
        path.parent.mkdir(mode=RUN_DIR_MODE, parents=True, exist_ok=True)
        await _remove_stale_socket(loop, path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            old_umask = os.umask(SOCKET_UMASK)
            try:
                sock.bind(str(path))
            finally:
                os.umask(old_umask)
            os.chmod(path, SOCKET_MODE)
            self._socket_file = (path, os.lstat(path).st_ino)
            return await loop.create_unix_server(self._new_connection, sock=sock)
        except OSError as exc:
            sock.close()
            if self._socket_file is not None:
                with suppress(FileNotFoundError):
                    path.unlink()
                self._socket_file = None
            raise MessengerError(f"cannot listen on {path}: {exc.strerror or exc}") from exc


async def _remove_stale_socket(loop: asyncio.AbstractEventLoop, path: Path) -> None:
    """Unlink a socket file left by a crashed service; refuse to touch one a live service answers on."""
    try:
        before = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(before.st_mode):
        raise MessengerError(f"{path} exists and is not a socket; refusing to replace it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.setblocking(False)
    try:
        await asyncio.wait_for(loop.sock_connect(probe, str(path)), STALE_SOCKET_PROBE_TIMEOUT)
    except (ConnectionRefusedError, FileNotFoundError):
        logger.info("messenger: removing stale socket %s (nothing answers on it)", path)
        with suppress(FileNotFoundError):
            if os.lstat(path).st_ino == before.st_ino:
                path.unlink()
        return
    except TimeoutError:
        pass  # a listener too busy to accept is still a listener
    finally:
        probe.close()
    raise MessengerError(f"another service is already listening on {path}")
