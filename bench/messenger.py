"""Benchmark: the encrypted service messenger against raw asyncio (no crypto) and pyzmq, same transport, same run.

Run `.venv/bin/python bench/messenger.py [--quick] [--rounds N] [--transport unix|tcp|both] [--uvloop] [--flood-only]`.

What is measured, for 512-byte payloads (ours: a JSON body of exactly 512 bytes; raw: 512 payload bytes):

- request/reply round trip p50/p99: sequential requests after a warm-up, each timed with perf_counter_ns. Ours is
  `MessengerClient.request("ping", body)` against `MessengerServer` with an echo handler. The fair reference is a raw
  length-prefixed echo written like our adapter (asyncio.Protocol + data_received, one whole-frame fast path); a
  second reference line is the same echo with asyncio streams (reader.readexactly); the stretch reference is pyzmq
  REQ/REP (ipc:// over the Unix transport, tcp:// over TCP). Rounds are split into blocks and the implementations
  take turns block by block, so machine drift hits all of them alike.
- streaming throughput: ours subscribes to a `status.subscribe` stream handler that yields the 512-byte body as fast
  as the client consumes it (the server's own flow control); the raw references send the same number of
  length-prefixed frames the same way (a pump honouring pause_writing / drain). messages/s and MB/s, median of blocks.
- handshakes per second: connect + handshake + close with MessengerClient against MessengerServer, sequentially and
  with 16 concurrent connectors; the server's `stats.handshakes_ok` must grow by exactly the number attempted.
  The public client connects lazily, so each connection also carries one empty `ping` (connect-handshake-ask-close,
  what `messenger.client.call` does).
- RSS with 1,000 idle connections: a fresh server process; VmRSS (/proc/PID/status) of the server and of this
  process before and after 1,000 handshaken, idle MessengerClient connections (delta in MB = 10^6 bytes).
- under a keyless flood (TCP): a fresh server with the production limits (ServerLimits()); a flood process keeps
  300 connections open from 127.0.0.2 and 127.0.0.3, reopening each the moment the server drops it (idle, then
  again with each sending a ClientHello under a random key, which makes the server derive keys), while
  this process times sequential MessengerClient connect+ping+close calls from 127.0.0.1 (p50/p99, and how many
  failed; the same calls without the flood are the reference). Then, with only the flood running for 2 s, the
  server's CPU time (/proc/PID/stat) divided by the connections it accepted is the CPU per keyless connection.
  `--flood-only` runs just this.

Every server (ours and each reference) runs in its own process (multiprocessing, spawn) and every client in this
process, so no pair shares an event loop or a GIL; `--uvloop` puts uvloop under both sides alike. The servers take
commands (stats, stop) over a multiprocessing pipe watched by their event loop. The output is a report (exit code
0 whatever the numbers): one row per measurement, then "targets met: X/Y".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import multiprocessing
import os
import resource
import statistics
import sys
import tempfile
import time
import traceback
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import suppress
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from bench.nodes import cpu_seconds  # noqa: E402
from messenger.client import MessengerClient  # noqa: E402
from messenger.client_link import Link  # noqa: E402
from messenger.endpoint import Endpoint, parse_endpoint  # noqa: E402
from messenger.errors import MessengerUnavailable  # noqa: E402
from messenger.protocol import Connection, Role  # noqa: E402
from messenger.server import MessengerServer, RequestContext, ServerLimits  # noqa: E402

try:
    import zmq
except ImportError:  # the stretch reference is optional
    zmq = None

# --- what the issue asks for ---

PAYLOAD_BYTES = 512
TARGET_RTT_RATIO = 1.25  # ours p50 / raw asyncio (Protocol) echo p50
TARGET_STREAM_RATIO = 0.8  # ours msgs/s / raw asyncio (Protocol) msgs/s (issue 16; 0.5 before protocol v2)
TARGET_HANDSHAKES_PER_SECOND = 1_000
TARGET_IDLE_SERVER_MB = 50.0  # RSS the server may grow by with IDLE_CONNECTIONS idle peers
STRETCH_ZMQ_RATIO = 1.0  # ours p50 at or below pyzmq REQ/REP
IDLE_CONNECTIONS = 1_000
HANDSHAKE_CONCURRENCY = 16
TARGET_FLOOD_P99_MS = 50.0  # a legitimate connect+ping while keyless peers flood the server (issue 12)
FLOOD_CONNECTIONS = 300  # idle keyless connections the attacker keeps open: more than MAX_CONNECTIONS
FLOOD_SOURCES = ("127.0.0.2", "127.0.0.3")  # the attacker's addresses (Linux routes all of 127/8 to lo)

# --- bench mechanics ---

KEY = bytes(range(32))
PIPE_NAME = "bench"
LOCALHOST = "127.0.0.1"
# Round trips before the timed ones: the first ones pay for connecting, caches and the JIT-less warm path.
WARMUP_ROUNDS = 300
# Timed rounds and stream messages are split into this many blocks, taken in turns by the implementations.
BLOCKS = 10
# How long the --uvloop check waits for its one ping.
UVLOOP_PREFLIGHT_TIMEOUT = 2.0
# How long a server process may take to start listening (spawn + imports).
SERVER_START_TIMEOUT = 20.0
# How long a server process may take to stop before it is terminated.
SERVER_STOP_TIMEOUT = 5.0
# Connections opened at once while building up the idle set (the listen backlog is 100).
IDLE_OPEN_CONCURRENCY = 50
# Let the server finish its bookkeeping for the last connections before reading its RSS.
RSS_SETTLE_SECONDS = 0.5
# Head room above IDLE_CONNECTIONS for the server's connection cap (the default cap is 256).
CONNECTION_CAP_SLACK = 64
# The throughput measurements open up to IDLE_OPEN_CONCURRENCY handshakes at once from one address: their
# server's handshake budget allows that many (the flood measurement uses the production budget).
BENCH_LIMITS = ServerLimits(max_connections=IDLE_CONNECTIONS + CONNECTION_CAP_SLACK,
                            max_handshaking=IDLE_OPEN_CONCURRENCY + HANDSHAKE_CONCURRENCY,
                            max_handshaking_per_source=IDLE_OPEN_CONCURRENCY + HANDSHAKE_CONCURRENCY)
# Flood connections opened at once while building it up: within the listen backlog (100), so no SYN waits for
# a retransmit, and a pause between batches for the server to accept them.
FLOOD_RAMP_BATCH = 50
FLOOD_RAMP_PAUSE = 0.05
# Timed legitimate connect+ping+close calls, with and without the flood.
FLOOD_PROBES = 300
# How long the server's CPU is sampled under the flood alone.
FLOOD_CPU_SECONDS = 2.0
# A raw-reference payload starting with this byte asks for a stream; the next 8 bytes are the count.
STREAM_REQUEST = b"S"
ECHO_REQUEST = b"E"
HEADER_BYTES = 4
MB = 1_000_000

_EMPTY_JSON_BODY = len(json.dumps({"p": ""}, separators=(",", ":")))
# Our body: JSON of exactly PAYLOAD_BYTES bytes.
OURS_BODY = {"p": "x" * (PAYLOAD_BYTES - _EMPTY_JSON_BODY)}
RAW_PAYLOAD = ECHO_REQUEST + b"x" * (PAYLOAD_BYTES - 1)
RAW_FRAME = len(RAW_PAYLOAD).to_bytes(HEADER_BYTES, "big") + RAW_PAYLOAD


@dataclass(frozen=True, kw_only=True)
class Settings:
    rounds: int
    stream_messages: int  # per block
    handshakes: int  # per mode
    transports: tuple[str, ...]
    use_uvloop: bool
    flood_only: bool = False


@dataclass(frozen=True, kw_only=True)
class Target:
    """Where a server listens: a Unix socket path, or 127.0.0.1:port."""

    transport: str  # "unix" | "tcp"
    path: str | None = None
    port: int | None = None

    @property
    def zmq_address(self) -> str:
        return f"ipc://{self.path}" if self.transport == "unix" else f"tcp://{LOCALHOST}:{self.port}"


@dataclass(frozen=True, kw_only=True)
class ServerSpec:
    kind: str  # a key of SERVERS
    transport: str
    workdir: str
    use_uvloop: bool


# ============================================================================================================
# Event loops, processes, RSS
# ============================================================================================================


def run_loop(coro: Coroutine[Any, Any, Any], use_uvloop: bool) -> Any:
    if use_uvloop:
        import uvloop

        return uvloop.run(coro)
    return asyncio.run(coro)


def uvloop_problem() -> str | None:
    """Why our messenger cannot run on uvloop here (None if it can): one in-process ping over a Unix socket."""
    try:
        import uvloop
    except ImportError:
        return "uvloop is not installed"
    errors: list[str] = []

    async def ping_once() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: errors.append(loop_error(context)))
        with tempfile.TemporaryDirectory(prefix="messenger-bench-") as workdir:
            server = MessengerServer(key=KEY, handlers={"ping": ours_echo})
            await server.start(parse_endpoint(f"pipe://{PIPE_NAME}"), run_dir=Path(workdir))
            client = MessengerClient(
                endpoint=parse_endpoint(f"pipe://{PIPE_NAME}"),
                key=KEY,
                run_dir=Path(workdir),
                connect_timeout=UVLOOP_PREFLIGHT_TIMEOUT,
            )
            try:
                await client.request("ping")
            finally:
                await client.close()
                await server.close()

    quiet = logging.getLogger("messenger")
    level, quiet.level = quiet.level, logging.CRITICAL
    try:
        uvloop.run(ping_once())
    except Exception as exc:  # noqa: BLE001 - any failure means: not on uvloop
        return errors[0] if errors else repr(exc)
    finally:
        quiet.setLevel(level)
    return None


def loop_error(context: dict[str, Any]) -> str:
    exc = context.get("exception")
    if exc is None:
        return context["message"]
    frame = traceback.extract_tb(exc.__traceback__)[-1]
    return f"{type(exc).__name__} at {Path(frame.filename).name}:{frame.lineno}: {frame.line}"


def raise_nofile_limit() -> None:
    """IDLE_CONNECTIONS sockets on each side need more descriptors than a default soft limit of 1024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = IDLE_CONNECTIONS * 2 + 512
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(
            resource.RLIMIT_NOFILE, (min(wanted, hard) if hard != resource.RLIM_INFINITY else wanted, hard)
        )


def rss_bytes(pid: int | str = "self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/PID/status")


class Worker:
    """A child process (spawned: a fresh interpreter) driven over a pipe: its first message says it is ready."""

    def __init__(self, entry: Callable[..., None], spec: Any, name: str) -> None:
        self.spec = spec
        self._pipe, child_pipe = multiprocessing.Pipe()
        context = multiprocessing.get_context("spawn")
        self._process = context.Process(target=entry, args=(spec, child_pipe), daemon=True, name=name)
        self._process.start()
        child_pipe.close()
        try:
            if not self._pipe.poll(SERVER_START_TIMEOUT):
                raise TimeoutError(f"did not start within {SERVER_START_TIMEOUT:g} s")
            self.ready: Any = self._pipe.recv()
        except (EOFError, TimeoutError) as exc:
            self.stop()
            raise RuntimeError(f"bench process {name!r} failed to start: {exc or 'it exited'}") from None

    @property
    def pid(self) -> int:
        assert self._process.pid is not None
        return self._process.pid

    def rss(self) -> int:
        return rss_bytes(self.pid)

    def ask(self, command: str) -> Any:
        self._pipe.send(command)
        return self._pipe.recv()

    def stop(self) -> None:
        with suppress(OSError):
            self._pipe.send("stop")
        self._process.join(SERVER_STOP_TIMEOUT)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join()
        self._pipe.close()


class ServerProcess(Worker):
    """One benchmark server; `target` is where it listens, `stats()` its counters (ours only)."""

    def __init__(self, spec: ServerSpec) -> None:
        super().__init__(serve, spec, spec.kind)
        self.target: Target = self.ready

    def stats(self) -> dict[str, Any]:
        return self.ask("stats")


def _set_once(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def obey(pipe: Pipe, commands: dict[str, Callable[[], Awaitable[Any]]]) -> None:
    """Child side of Worker: answer each command from the pipe until "stop" (or the bench process is gone)."""
    loop = asyncio.get_running_loop()
    while True:
        readable = loop.create_future()
        loop.add_reader(pipe.fileno(), _set_once, readable)
        try:
            await readable
        finally:
            loop.remove_reader(pipe.fileno())
        try:
            command = pipe.recv()
        except EOFError:
            return
        if command == "stop":
            return
        pipe.send(await commands[command]())


# ============================================================================================================
# Server side (runs in the child process)
# ============================================================================================================


@dataclass(kw_only=True)
class Running:
    """A listening asyncio server: where it listens, its counters, how to stop it."""

    target: Target
    close: Callable[[], Awaitable[None]]
    stats: Callable[[], dict[str, Any]] = dict


def serve(spec: ServerSpec, pipe: Pipe) -> None:
    """Child process entry point: start the server, report where it listens, obey the pipe until "stop"."""
    raise_nofile_limit()
    if spec.kind == "zmq":
        serve_zmq(spec, pipe)
    else:
        run_loop(_serve_asyncio(spec, pipe), spec.use_uvloop)


async def _serve_asyncio(spec: ServerSpec, pipe: Pipe) -> None:
    running = await SERVERS[spec.kind](spec)
    pipe.send(running.target)

    async def stats() -> dict[str, Any]:
        return running.stats()

    try:
        await obey(pipe, {"stats": stats})
    finally:
        await running.close()


def unix_path(spec: ServerSpec, kind: str) -> str:
    return str(Path(spec.workdir) / f"{kind}.sock")


async def listen(spec: ServerSpec, factory: Callable[[], asyncio.Protocol]) -> asyncio.AbstractServer:
    loop = asyncio.get_running_loop()
    if spec.transport == "unix":
        return await loop.create_unix_server(factory, unix_path(spec, spec.kind))
    return await loop.create_server(factory, LOCALHOST, 0)


def bound_target(spec: ServerSpec, server: asyncio.AbstractServer) -> Target:
    if spec.transport == "unix":
        return Target(transport="unix", path=unix_path(spec, spec.kind))
    return Target(transport="tcp", port=server.sockets[0].getsockname()[1])


# --- ours ---


def ours_echo(body: dict, context: RequestContext) -> dict:
    """A plain-function handler, answered inline like the raw echo (no task per request)."""
    return body


# One status log event as the service's hub publishes it (indexer/status.py): ~200 bytes of JSON.
LOG_EVENT = {"type": "log", "seq": 1_234_567, "at": 1_733_300_000.123, "level": "INFO", "logger": "indexer.runners",
             "message": "Feed Indexing: pypi-mirror: indexed 12 of 340 packages " + "x" * 60}


def status_batch(events: int) -> dict:
    """A status hub batch of `events` log events (the hub sends at most 500 per batch)."""
    return {"events": [LOG_EVENT] * events}


async def ours_flood(body: dict, context: RequestContext) -> AsyncIterator[dict]:
    """status.subscribe-style stream: `count` items (the 512-byte body, or a status batch of body["events"] log
    events), as fast as the client takes them."""
    item = OURS_BODY if body.get("events") is None else status_batch(body["events"])
    for _ in range(body["count"]):
        yield item


def ours_endpoint(target: Target) -> Endpoint:
    if target.transport == "unix":
        return parse_endpoint(f"pipe://{PIPE_NAME}")
    return parse_endpoint(f"tcp://{LOCALHOST}:{target.port}")


async def start_ours(spec: ServerSpec) -> Running:
    server = MessengerServer(
        key=KEY,
        handlers={"ping": ours_echo},
        stream_handlers={"status.subscribe": ours_flood},
        limits=ServerLimits() if spec.kind == "ours-defaults" else BENCH_LIMITS,
    )
    run_dir = Path(spec.workdir)
    if spec.transport == "unix":
        await server.start(parse_endpoint(f"pipe://{PIPE_NAME}"), run_dir=run_dir)
        target = Target(transport="unix", path=server.address)
    else:
        await server.start(parse_endpoint(f"tcp://{LOCALHOST}:0", allow_port_zero=True), run_dir=run_dir)
        target = Target(transport="tcp", port=int(server.address.rpartition(":")[2]))
    return Running(target=target, close=server.close, stats=server.stats.as_dict)


# --- raw asyncio.Protocol echo: the same shape as our adapter, minus crypto and JSON ---


class RawServerProtocol(asyncio.Protocol):
    """Length-prefixed echo; a STREAM_REQUEST payload starts a pump of that many frames (with flow control)."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._drained: asyncio.Future[None] | None = None
        self._closing = False
        self._tasks: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.Transport) -> None:  # uvloop's is no asyncio.Transport subclass
        self._transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        for task in self._tasks:
            task.cancel()
        self.resume_writing()

    def data_received(self, data: bytes) -> None:
        for payload in parse_frames(self._buffer, data):
            if payload[:1] == STREAM_REQUEST:
                count, size = int.from_bytes(payload[1:9], "big"), int.from_bytes(payload[9:13], "big")
                task = asyncio.get_running_loop().create_task(self._pump(count, size))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            else:
                self._transport.write(len(payload).to_bytes(HEADER_BYTES, "big") + payload)  # type: ignore[union-attr]

    def pause_writing(self) -> None:
        self._drained = asyncio.get_running_loop().create_future()
        self._transport.pause_reading()  # type: ignore[union-attr]

    def resume_writing(self) -> None:
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        self._drained = None
        if not self._closing:
            self._transport.resume_reading()  # type: ignore[union-attr]

    async def _pump(self, count: int, size: int) -> None:
        write = self._transport.write  # type: ignore[union-attr]
        frame = RAW_FRAME if size == PAYLOAD_BYTES else size.to_bytes(HEADER_BYTES, "big") + b"x" * size
        for _ in range(count):
            if self._closing:
                return
            write(frame)
            if self._drained is not None:
                await self._drained


def parse_frames(buffer: bytearray, data: bytes) -> list[bytes]:
    """Split received bytes into length-prefixed payloads; a lone whole frame skips the buffer (like ours)."""
    if not buffer:
        length = int.from_bytes(data[:HEADER_BYTES], "big")
        if length == len(data) - HEADER_BYTES:
            return [data[HEADER_BYTES:]]
    buffer += data
    payloads = []
    pos = 0
    while len(buffer) - pos >= HEADER_BYTES:
        end = pos + HEADER_BYTES + int.from_bytes(buffer[pos : pos + HEADER_BYTES], "big")
        if end > len(buffer):
            break
        payloads.append(bytes(buffer[pos + HEADER_BYTES : end]))
        pos = end
    del buffer[:pos]
    return payloads


async def start_raw_protocol(spec: ServerSpec) -> Running:
    server = await listen(spec, RawServerProtocol)
    return Running(target=bound_target(spec, server), close=closer(server))


# --- raw asyncio streams echo: the textbook readexactly loop ---


async def streams_handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            header = await reader.readexactly(HEADER_BYTES)
            payload = await reader.readexactly(int.from_bytes(header, "big"))
            if payload[:1] == STREAM_REQUEST:
                for _ in range(int.from_bytes(payload[1:9], "big")):
                    writer.write(RAW_FRAME)
                    await writer.drain()
            else:
                writer.write(header + payload)
                await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
        pass  # the client left, or the server is shutting down
    finally:
        writer.close()


async def start_raw_streams(spec: ServerSpec) -> Running:
    if spec.transport == "unix":
        server = await asyncio.start_unix_server(streams_handle, unix_path(spec, spec.kind))
    else:
        server = await asyncio.start_server(streams_handle, LOCALHOST, 0)
    return Running(target=bound_target(spec, server), close=closer(server))


def closer(server: asyncio.AbstractServer) -> Callable[[], Awaitable[None]]:
    async def close() -> None:
        server.close()

    return close


# --- pyzmq REQ/REP (synchronous: pyzmq's own fast path) ---


def serve_zmq(spec: ServerSpec, pipe: Pipe) -> None:
    context = zmq.Context()
    rep = context.socket(zmq.REP)
    if spec.transport == "unix":
        path = unix_path(spec, "zmq")
        rep.bind(f"ipc://{path}")
        target = Target(transport="unix", path=path)
    else:
        port = rep.bind_to_random_port(f"tcp://{LOCALHOST}")
        target = Target(transport="tcp", port=port)
    poller = zmq.Poller()
    poller.register(rep, zmq.POLLIN)
    poller.register(pipe.fileno(), zmq.POLLIN)
    pipe.send(target)
    while True:
        ready = dict(poller.poll())
        if rep in ready:
            rep.send(rep.recv(copy=False), copy=False)
        if pipe.fileno() in ready:
            try:
                command = pipe.recv()
            except EOFError:  # the bench process is gone
                command = "stop"
            if command == "stats":
                pipe.send({})
            else:
                break
    rep.close(linger=0)
    context.term()


SERVERS: dict[str, Callable[[ServerSpec], Awaitable[Running]]] = {
    "ours": start_ours,
    "ours-defaults": start_ours,  # the production limits: for the flood measurement
    "raw-protocol": start_raw_protocol,
    "raw-streams": start_raw_streams,
}


# ============================================================================================================
# Client side (this process): one interface, four implementations
# ============================================================================================================


class BenchClient:
    """What the measurements need: one round trip, one stream of `count` messages, close."""

    name = ""

    async def roundtrip(self) -> None:
        raise NotImplementedError

    async def stream(self, count: int) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


def ours_client(target: Target, workdir: str) -> MessengerClient:
    return MessengerClient(endpoint=ours_endpoint(target), key=KEY, run_dir=Path(workdir))


class OursClient(BenchClient):
    name = "ours"

    def __init__(self, target: Target, workdir: str) -> None:
        self._client = ours_client(target, workdir)

    async def roundtrip(self) -> None:
        await self._client.request("ping", OURS_BODY)

    async def stream(self, count: int) -> None:
        received = 0
        async with self._client.subscribe("status.subscribe", {"count": count}) as items:
            async for _ in items:
                received += 1
        if received != count:
            raise RuntimeError(f"ours: stream delivered {received} of {count} items")

    async def close(self) -> None:
        await self._client.close()


class RawClientProtocol(asyncio.Protocol):
    """The raw client, shaped like our Link: parse frames in data_received, hand payloads to a waiting reader."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._payloads: deque[bytes] = deque()
        self._waiter: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # uvloop's is no asyncio.Transport subclass
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._payloads.extend(parse_frames(self._buffer, data))
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ConnectionError("raw server went away"))

    async def next_payload(self) -> bytes:
        while not self._payloads:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._payloads.popleft()


class RawProtocolClient(BenchClient):
    name = "raw asyncio Protocol echo"

    def __init__(self, protocol: RawClientProtocol) -> None:
        self._protocol = protocol

    @classmethod
    async def connect(cls, target: Target) -> RawProtocolClient:
        _, protocol = await open_connection(RawClientProtocol, target)
        return cls(protocol)

    async def roundtrip(self) -> None:
        self._protocol.transport.write(RAW_FRAME)  # type: ignore[union-attr]
        await self._protocol.next_payload()

    async def stream(self, count: int) -> None:
        self._protocol.transport.write(stream_request(count))  # type: ignore[union-attr]
        for _ in range(count):
            await self._protocol.next_payload()

    async def close(self) -> None:
        self._protocol.transport.close()  # type: ignore[union-attr]


class RawStreamsClient(BenchClient):
    name = "raw asyncio streams echo"

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def connect(cls, target: Target) -> RawStreamsClient:
        if target.transport == "unix":
            return cls(*await asyncio.open_unix_connection(target.path))
        return cls(*await asyncio.open_connection(LOCALHOST, target.port))

    async def _read_frame(self) -> bytes:
        header = await self._reader.readexactly(HEADER_BYTES)
        return await self._reader.readexactly(int.from_bytes(header, "big"))

    async def roundtrip(self) -> None:
        self._writer.write(RAW_FRAME)
        await self._writer.drain()
        await self._read_frame()

    async def stream(self, count: int) -> None:
        self._writer.write(stream_request(count))
        await self._writer.drain()
        for _ in range(count):
            await self._read_frame()

    async def close(self) -> None:
        self._writer.close()


class ZmqClient(BenchClient):
    """REQ socket used synchronously (blocking inside the coroutine: nothing else runs meanwhile)."""

    name = "pyzmq REQ/REP"

    def __init__(self, target: Target) -> None:
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.REQ)
        self._socket.connect(target.zmq_address)

    async def roundtrip(self) -> None:
        self._socket.send(RAW_PAYLOAD, copy=False)
        self._socket.recv(copy=False)

    async def close(self) -> None:
        self._socket.close(linger=0)
        self._context.term()


async def open_connection(
    factory: Callable[[], asyncio.Protocol], target: Target
) -> tuple[asyncio.BaseTransport, asyncio.Protocol]:
    loop = asyncio.get_running_loop()
    if target.transport == "unix":
        return await loop.create_unix_connection(factory, target.path)
    return await loop.create_connection(factory, LOCALHOST, target.port)


def stream_request(count: int, size: int = PAYLOAD_BYTES) -> bytes:
    """Ask a raw server for `count` frames of `size` payload bytes."""
    payload = STREAM_REQUEST + count.to_bytes(8, "big") + size.to_bytes(4, "big")
    return len(payload).to_bytes(HEADER_BYTES, "big") + payload


async def connect_client(kind: str, target: Target, workdir: str) -> BenchClient:
    if kind == "ours":
        client: BenchClient = OursClient(target, workdir)
    elif kind == "raw-protocol":
        client = await RawProtocolClient.connect(target)
    elif kind == "raw-streams":
        client = await RawStreamsClient.connect(target)
    else:
        client = ZmqClient(target)
    for _ in range(WARMUP_ROUNDS):
        await client.roundtrip()
    return client


# ============================================================================================================
# Measurements
# ============================================================================================================


@dataclass(frozen=True)
class Latency:
    p50_us: float
    p99_us: float


@dataclass(frozen=True)
class Throughput:
    messages_per_second: float

    @property
    def mb_per_second(self) -> float:
        return self.messages_per_second * PAYLOAD_BYTES / MB


def block_sizes(total: int) -> list[int]:
    """Split `total` into BLOCKS nearly equal, non-empty blocks."""
    blocks = min(BLOCKS, max(total, 1))
    return [total // blocks + (1 if i < total % blocks else 0) for i in range(blocks)]


async def timed_roundtrips(client: BenchClient, rounds: int) -> list[int]:
    clock = time.perf_counter_ns
    samples = []
    for _ in range(rounds):
        started = clock()
        await client.roundtrip()
        samples.append(clock() - started)
    return samples


async def measure_latency(clients: dict[str, BenchClient], rounds: int) -> dict[str, Latency]:
    """Round trips in blocks, the clients taking turns; p50/p99 over all samples of each client."""
    samples: dict[str, list[int]] = {kind: [] for kind in clients}
    for size in block_sizes(rounds):
        for kind, client in clients.items():
            samples[kind] += await timed_roundtrips(client, size)
    return {kind: latency(values) for kind, values in samples.items()}


def latency(samples_ns: list[int]) -> Latency:
    cuts = statistics.quantiles(samples_ns, n=100, method="inclusive")
    return Latency(p50_us=statistics.median(samples_ns) / 1000, p99_us=cuts[98] / 1000)


async def measure_throughput(clients: dict[str, BenchClient], messages: int) -> dict[str, Throughput]:
    """Streams of `messages` per block, the clients taking turns; the median rate over the blocks."""
    rates: dict[str, list[float]] = {kind: [] for kind in clients}
    for _ in range(BLOCKS):
        for kind, client in clients.items():
            started = time.perf_counter()
            await client.stream(messages)
            rates[kind].append(messages / (time.perf_counter() - started))
    return {kind: Throughput(statistics.median(values)) for kind, values in rates.items()}


async def link_handshake(target: Target, workdir: str) -> None:
    """Connect + handshake + close with the client's connection class (what every MessengerClient connect runs)."""
    link = Link(key=KEY, on_lost=lambda link: None)
    await open_connection(lambda: link, target)
    await link.ready
    link.fail(MessengerUnavailable("bench: done"))  # aborts the transport, as MessengerClient.close() does


async def client_call(target: Target, workdir: str) -> None:
    """Connect + handshake + one empty ping + close with MessengerClient (what messenger.client.call does)."""
    client = ours_client(target, workdir)
    try:
        await client.request("ping")
    finally:
        await client.close()


Connector = Callable[[Target, str], Awaitable[None]]


async def handshakes_per_second(
    server: ServerProcess, connect: Connector, count: int, concurrency: int
) -> tuple[float, bool]:
    """`count` connections over `concurrency` workers; verified against the server's handshakes_ok."""
    todo = iter(range(count))

    async def worker() -> None:
        for _ in todo:
            await connect(server.target, server.spec.workdir)

    before = server.stats()["handshakes_ok"]
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    verified = server.stats()["handshakes_ok"] - before == count
    return count / elapsed, verified


@dataclass(frozen=True, kw_only=True)
class IdleSpec:
    target: Target
    workdir: str
    use_uvloop: bool


def hold_idle(spec: IdleSpec, pipe: Pipe) -> None:
    """Child process: report RSS, open IDLE_CONNECTIONS handshaken MessengerClients on "open", report RSS again."""
    raise_nofile_limit()
    run_loop(_hold_idle(spec, pipe), spec.use_uvloop)


async def _hold_idle(spec: IdleSpec, pipe: Pipe) -> None:
    await client_call(spec.target, spec.workdir)  # warm the code paths (and the server's) before "before"
    await asyncio.sleep(RSS_SETTLE_SECONDS)
    clients: list[MessengerClient] = []

    async def open_all() -> int:
        clients.extend(ours_client(spec.target, spec.workdir) for _ in range(IDLE_CONNECTIONS))
        pending = iter(clients)

        async def opener() -> None:
            for client in pending:
                await client.request("ping")

        await asyncio.gather(*(opener() for _ in range(IDLE_OPEN_CONCURRENCY)))
        await asyncio.sleep(RSS_SETTLE_SECONDS)
        return rss_bytes()

    pipe.send(rss_bytes())
    try:
        await obey(pipe, {"open": open_all})
    finally:
        for client in clients:
            await client.close()


def idle_rss_growth(server: ServerProcess, use_uvloop: bool) -> tuple[float, float, int]:
    """Server and client RSS growth (MB) with IDLE_CONNECTIONS idle clients, and how many the server counts open.

    The clients live in a fresh process of their own, so their RSS delta is not blurred by memory the other
    measurements freed (the allocator would hand it out again without the RSS moving).
    """
    spec = IdleSpec(target=server.target, workdir=server.spec.workdir, use_uvloop=use_uvloop)
    holder = Worker(hold_idle, spec, "idle-clients")
    try:
        server_before, client_before = server.rss(), holder.ready
        client_after = holder.ask("open")
        server_after = server.rss()
        open_on_server = server.stats()["connections_open"]
    finally:
        holder.stop()
    return (server_after - server_before) / MB, (client_after - client_before) / MB, open_on_server


@dataclass(frozen=True, kw_only=True)
class FloodSpec:
    target: Target
    use_uvloop: bool
    hello: bool  # each connection sends a ClientHello (under a random key) first: the server derives keys for it


def keyless_flood(spec: FloodSpec, pipe: Pipe) -> None:
    """Child process: keep FLOOD_CONNECTIONS idle keyless connections open until "stop", reopening each dropped one."""
    raise_nofile_limit()
    run_loop(_keyless_flood(spec, pipe), spec.use_uvloop)


async def _keyless_flood(spec: FloodSpec, pipe: Pipe) -> None:
    async def slot(host: str) -> None:
        while True:
            try:
                reader, writer = await asyncio.open_connection(LOCALHOST, spec.target.port, local_addr=(host, 0))
            except OSError:  # the listen backlog overflowed: try again, as an attacker would
                await asyncio.sleep(0.01)
                continue
            if spec.hello:
                writer.write(Connection(role=Role.CLIENT, key=os.urandom(len(KEY))).initiate())
            with suppress(OSError):
                await reader.read()  # idle until the server drops us
            writer.close()

    slots: list[asyncio.Task[None]] = []
    for first in range(0, FLOOD_CONNECTIONS, FLOOD_RAMP_BATCH):
        batch = range(first, min(FLOOD_CONNECTIONS, first + FLOOD_RAMP_BATCH))
        slots += [asyncio.create_task(slot(FLOOD_SOURCES[n % len(FLOOD_SOURCES)])) for n in batch]
        await asyncio.sleep(FLOOD_RAMP_PAUSE)
    pipe.send("flooding")
    try:
        await obey(pipe, {})
    finally:
        for task in slots:
            task.cancel()
        await asyncio.gather(*slots, return_exceptions=True)


@dataclass(frozen=True, kw_only=True)
class Probes:
    """Sequential legitimate connect+ping+close calls: their latency and how many failed."""

    latency: Latency
    failures: int


async def probe(server: ServerProcess, count: int) -> Probes:
    samples: list[int] = []
    failures = 0
    for _ in range(count):
        started = time.perf_counter_ns()
        try:
            await client_call(server.target, server.spec.workdir)
        except MessengerUnavailable:
            failures += 1
            continue
        samples.append(time.perf_counter_ns() - started)
    return Probes(latency=latency(samples or [0]), failures=failures)


async def cpu_per_connection(server: ServerProcess) -> tuple[float, int]:
    """The server's CPU seconds per connection it accepted over FLOOD_CPU_SECONDS (nothing else runs), and the count."""
    cpu, total = cpu_seconds(server.pid), server.stats()["connections_total"]
    await asyncio.sleep(FLOOD_CPU_SECONDS)
    connections = server.stats()["connections_total"] - total
    return (cpu_seconds(server.pid) - cpu) / max(connections, 1), connections


async def flood_rows(report: Report, workdir: str, settings: Settings) -> None:
    for hello in (False, True):
        await flood_row(report, workdir, settings, hello=hello)


async def flood_row(report: Report, workdir: str, settings: Settings, *, hello: bool) -> None:
    spec = ServerSpec(kind="ours-defaults", transport="tcp", workdir=workdir, use_uvloop=settings.use_uvloop)
    server = ServerProcess(spec)
    try:
        quiet = await probe(server, FLOOD_PROBES)
        flood_spec = FloodSpec(target=server.target, use_uvloop=settings.use_uvloop, hello=hello)
        flood = Worker(keyless_flood, flood_spec, "flood")
        try:
            flooded = await probe(server, FLOOD_PROBES)
            per_keyless, keyless = await cpu_per_connection(server)
        finally:
            flood.stop()
        rejects = server.stats()["rejects"]
    finally:
        server.stop()
    note = "" if flooded.failures == 0 else f"NOT VERIFIED: {flooded.failures} of {FLOOD_PROBES} calls failed"
    kind = "ClientHello" if hello else "idle"
    name = f"[tcp] connect+ping+close under a {FLOOD_CONNECTIONS}-connection keyless flood ({kind})"
    goal = Goal(op="<=", limit=TARGET_FLOOD_P99_MS, text=f"p99 <= {TARGET_FLOOD_P99_MS:g} ms")
    for stat in ("p50", "p99"):
        mine, calm = getattr(flooded.latency, f"{stat}_us"), getattr(quiet.latency, f"{stat}_us")
        report.add(Row(name=f"{name}, {stat}", ours=us(mine), reference=f"{us(calm)} without", ratio=mine / calm,
                       goal=goal if stat == "p99" else None, checked=mine / 1000, note=note))
    report.add(Row(name=f"[tcp] server CPU per keyless connection ({kind})", ours=us(per_keyless * 1e6),
                   note=f"{keyless:,} in {FLOOD_CPU_SECONDS:g} s; rejects over the run {rejects}"))


# ============================================================================================================
# Report
# ============================================================================================================


@dataclass(frozen=True, kw_only=True)
class Goal:
    """A target: the checked number (the ratio, or ours itself) must be <= or >= `limit`."""

    op: str  # "<=" | ">="
    limit: float
    text: str
    stretch: bool = False

    def met(self, value: float) -> bool:
        return value <= self.limit if self.op == "<=" else value >= self.limit


@dataclass(frozen=True, kw_only=True)
class Row:
    name: str
    ours: str
    reference: str = "-"
    ratio: float | None = None
    goal: Goal | None = None
    checked: float | None = None  # what the goal is checked against; defaults to the ratio
    note: str = ""

    @property
    def verdict(self) -> str:
        if self.goal is None:
            return "info"
        value = self.ratio if self.checked is None else self.checked
        passed = value is not None and self.goal.met(value) and not self.note.startswith("NOT VERIFIED")
        return ("PASS" if passed else "FAIL") + (" (stretch)" if self.goal.stretch else "")


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)

    def add(self, row: Row) -> None:
        self.rows.append(row)
        print(f"  measured: {row.name}", file=sys.stderr, flush=True)

    def render(self) -> str:
        header = ("measurement", "ours", "reference", "ratio", "target", "result")
        lines = [header] + [
            (
                row.name,
                row.ours,
                row.reference,
                "-" if row.ratio is None else f"{row.ratio:.2f}x",
                row.goal.text if row.goal else "-",
                row.verdict + (f"  {row.note}" if row.note else ""),
            )
            for row in self.rows
        ]
        widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
        rendered = [
            " | ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=False)) + " | " + line[-1]
            for line in lines
        ]
        rendered.insert(1, "-+-".join("-" * width for width in widths) + "-+-" + "-" * 6)
        return "\n".join(rendered)

    def summary(self) -> str:
        targets = [row for row in self.rows if row.goal is not None and not row.goal.stretch]
        stretch = [row for row in self.rows if row.goal is not None and row.goal.stretch]
        met = sum(row.verdict == "PASS" for row in targets)
        line = f"targets met: {met}/{len(targets)}"
        if stretch:
            line += f"; stretch met: {sum(row.verdict.startswith('PASS') for row in stretch)}/{len(stretch)}"
        return line


def us(value: float) -> str:
    return f"{value:,.1f} us"


def rate_text(throughput: Throughput) -> str:
    return f"{throughput.messages_per_second:,.0f} msg/s ({throughput.mb_per_second:.1f} MB/s)"


def latency_rows(report: Report, transport: str, results: dict[str, Latency], labels: dict[str, str]) -> None:
    ours = results["ours"]
    for kind, ref in results.items():
        if kind == "ours":
            continue
        zmq_stretch = kind == "zmq" and transport == "unix"
        goal_p50 = None
        if kind == "raw-protocol":
            goal_p50 = Goal(op="<=", limit=TARGET_RTT_RATIO, text=f"<= {TARGET_RTT_RATIO}x")
        elif zmq_stretch:
            goal_p50 = Goal(op="<=", limit=STRETCH_ZMQ_RATIO, text=f"<= {STRETCH_ZMQ_RATIO}x", stretch=True)
        for stat, goal in (("p50", goal_p50), ("p99", None)):
            mine, theirs = getattr(ours, f"{stat}_us"), getattr(ref, f"{stat}_us")
            report.add(
                Row(
                    name=f"[{transport}] round trip {stat} vs {labels[kind]}",
                    ours=us(mine),
                    reference=us(theirs),
                    ratio=mine / theirs,
                    goal=goal,
                )
            )


def throughput_rows(report: Report, transport: str, results: dict[str, Throughput], labels: dict[str, str]) -> None:
    ours = results["ours"]
    for kind, ref in results.items():
        if kind == "ours":
            continue
        goal = (
            Goal(op=">=", limit=TARGET_STREAM_RATIO, text=f">= {TARGET_STREAM_RATIO}x")
            if kind == "raw-protocol"
            else None
        )
        report.add(
            Row(
                name=f"[{transport}] stream 512 B vs {labels[kind]}",
                ours=rate_text(ours),
                reference=rate_text(ref),
                ratio=ours.messages_per_second / ref.messages_per_second,
                goal=goal,
            )
        )


# ============================================================================================================
# Driver
# ============================================================================================================

LABELS = {
    "raw-protocol": "raw asyncio Protocol echo",
    "raw-streams": "raw asyncio streams echo",
    "zmq": "pyzmq REQ/REP ({zmq_transport})",
}


def reference_kinds() -> list[str]:
    kinds = ["ours", "raw-protocol", "raw-streams"]
    if zmq is None:
        print("pyzmq not installed: skipping the pyzmq REQ/REP reference", flush=True)
    else:
        kinds.append("zmq")
    return kinds


def start_servers(kinds: list[str], transport: str, workdir: str, settings: Settings) -> dict[str, ServerProcess]:
    servers: dict[str, ServerProcess] = {}
    try:
        for kind in kinds:
            spec = ServerSpec(kind=kind, transport=transport, workdir=workdir, use_uvloop=settings.use_uvloop)
            servers[kind] = ServerProcess(spec)
    except BaseException:
        stop_servers(servers)
        raise
    return servers


def stop_servers(servers: dict[str, ServerProcess]) -> None:
    for server in servers.values():
        server.stop()


async def bench_transport(report: Report, transport: str, kinds: list[str], settings: Settings) -> None:
    labels = {kind: text.format(zmq_transport="ipc" if transport == "unix" else "tcp") for kind, text in LABELS.items()}
    with tempfile.TemporaryDirectory(prefix="messenger-bench-") as workdir:
        servers = start_servers(kinds, transport, workdir, settings)
        clients: dict[str, BenchClient] = {}
        try:
            for kind, server in servers.items():
                clients[kind] = await connect_client(kind, server.target, workdir)
            latency_rows(report, transport, await measure_latency(clients, settings.rounds), labels)
            streamers = {kind: client for kind, client in clients.items() if kind != "zmq"}
            throughput_rows(report, transport, await measure_throughput(streamers, settings.stream_messages), labels)
            await handshake_rows(report, transport, servers["ours"], settings.handshakes)
        finally:
            for client in clients.values():
                await client.close()
            stop_servers(servers)
        idle_rows(report, transport, workdir, settings)
        if transport == "tcp":
            await flood_rows(report, workdir, settings)


HANDSHAKE_MODES: tuple[tuple[str, Connector, bool], ...] = (
    ("handshakes/s (connect+handshake+close)", link_handshake, True),
    ("MessengerClient connect+ping+close/s", client_call, False),
)


async def handshake_rows(report: Report, transport: str, server: ServerProcess, count: int) -> None:
    goal = Goal(op=">=", limit=TARGET_HANDSHAKES_PER_SECOND, text=f">= {TARGET_HANDSHAKES_PER_SECOND:,}/s")
    for label, connect, has_goal in HANDSHAKE_MODES:
        for concurrency in (1, HANDSHAKE_CONCURRENCY):
            rate, verified = await handshakes_per_second(server, connect, count, concurrency)
            mode = "sequential" if concurrency == 1 else f"concurrency {concurrency}"
            note = "" if verified else "NOT VERIFIED: the server's handshakes_ok grew by another count"
            report.add(
                Row(
                    name=f"[{transport}] {label}, {mode}",
                    ours=f"{rate:,.0f}/s",
                    goal=goal if has_goal else None,
                    checked=rate,
                    note=note,
                )
            )


def idle_rows(report: Report, transport: str, workdir: str, settings: Settings) -> None:
    spec = ServerSpec(kind="ours", transport=transport, workdir=workdir, use_uvloop=settings.use_uvloop)
    server = ServerProcess(spec)  # fresh: nothing left over from the other measurements
    try:
        server_mb, client_mb, seen = idle_rss_growth(server, settings.use_uvloop)
    finally:
        server.stop()
    note = "" if seen >= IDLE_CONNECTIONS else f"NOT VERIFIED: the server counted {seen} open"
    goal = Goal(op="<=", limit=TARGET_IDLE_SERVER_MB, text=f"<= {TARGET_IDLE_SERVER_MB:g} MB")
    name = f"[{transport}] RSS +{IDLE_CONNECTIONS:,} idle connections"
    report.add(Row(name=f"{name}, server", ours=f"{server_mb:+.1f} MB", goal=goal, checked=server_mb, note=note))
    report.add(Row(name=f"{name}, client", ours=f"{client_mb:+.1f} MB", note=note))


async def bench(settings: Settings) -> Report:
    report = Report()
    if settings.flood_only:
        with tempfile.TemporaryDirectory(prefix="messenger-bench-") as workdir:
            await flood_rows(report, workdir, settings)
        return report
    kinds = reference_kinds()
    for transport in settings.transports:
        await bench_transport(report, transport, kinds, settings)
    return report


def parse_args(argv: list[str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run (< 30 s): fewer rounds and messages")
    parser.add_argument("--rounds", type=int, help="timed round trips per implementation (default 5000, quick 1000)")
    parser.add_argument("--transport", choices=("unix", "tcp", "both"), default="both")
    parser.add_argument("--uvloop", action="store_true", help="run uvloop on both sides (pip install uvloop)")
    parser.add_argument("--flood-only", action="store_true", help="only the keyless-flood measurement (TCP)")
    args = parser.parse_args(argv)
    rounds = args.rounds if args.rounds is not None else (1_000 if args.quick else 5_000)
    return Settings(
        rounds=max(rounds, BLOCKS),
        stream_messages=2_500 if args.quick else 25_000,
        handshakes=300 if args.quick else 2_000,
        transports=("unix", "tcp") if args.transport == "both" else (args.transport,),
        use_uvloop=args.uvloop,
        flood_only=args.flood_only,
    )


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(argv)
    raise_nofile_limit()
    if settings.use_uvloop and (problem := uvloop_problem()) is not None:
        print(f"--uvloop: the messenger does not run on uvloop here ({problem}); using asyncio", flush=True)
        settings = replace(settings, use_uvloop=False)
    started = time.perf_counter()
    print(
        f"messenger bench: {PAYLOAD_BYTES}-byte payloads, {settings.rounds:,} round trips, "
        f"{BLOCKS} x {settings.stream_messages:,} stream messages, {settings.handshakes:,} handshakes per mode, "
        f"{'uvloop' if settings.use_uvloop else 'asyncio'} event loop, {os.cpu_count()} CPUs, "
        f"Python {sys.version.split()[0]}",
        flush=True,
    )
    report = run_loop(bench(settings), settings.use_uvloop)
    print(report.render())
    print(f"({time.perf_counter() - started:.0f} s)")
    print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
