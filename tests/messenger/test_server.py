"""The messenger server over real Unix and TCP sockets: dispatch, and every attack it must shrug off.

Each attack test ends by proving a legitimate client still gets its ping answered.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import random
import socket
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import pytest

from messenger.client import MessengerClient
from messenger.endpoint import Endpoint, parse_endpoint, socket_path
from messenger.errors import MessengerError, MessengerUnavailable, RemoteError, RequestRefused
from messenger.limits import MAX_FRAME_BYTES
from messenger.messages import INTERNAL, UNKNOWN_RUNNER, UNKNOWN_TYPE
from messenger.protocol import (
    REJECT,
    SERVER_HELLO_BYTES,
    Connection,
    HandshakeComplete,
    KeepaliveAck,
    Reply,
    Role,
)
from messenger.server import MessengerServer, RequestContext, ServerLimits
from tests.messenger.support import KEY, TEST_DEADLINE, eventually, run

OTHER_KEY = bytes(range(1, 33))
FRAME_TIMEOUT = 1.0
HANDSHAKE_TIMEOUT = 1.0
LIMITS = ServerLimits(handshake_timeout=HANDSHAKE_TIMEOUT, frame_timeout=FRAME_TIMEOUT, idle_timeout=5.0)
# For the tests that wait out a frame's deadline (the slow-loris one keeps FRAME_TIMEOUT for its drip's margins).
SHORT_FRAME_TIMEOUT = 0.5
SHORT_FRAME_LIMITS = ServerLimits(handshake_timeout=HANDSHAKE_TIMEOUT, frame_timeout=SHORT_FRAME_TIMEOUT,
                                  idle_timeout=5.0)
# Slack for "at the deadline" assertions on a loaded CI machine.
SLACK = 0.6



async def ping(body: dict, context: RequestContext) -> dict:
    return {"pong": True, "echo": body}


@pytest.fixture(params=["pipe", "tcp"])
def transport(request: pytest.FixtureRequest) -> str:
    return request.param


@dataclass
class Harness:
    server: MessengerServer
    endpoint: Endpoint  # what clients use (tcp: the real bound port)
    run_dir: Path
    opened: list[asyncio.StreamWriter] = field(default_factory=list)  # raw sockets, closed by serving()

    async def open(self, local_host: str | None = None) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.endpoint.kind == "pipe":
            reader, writer = await asyncio.open_unix_connection(str(socket_path(self.endpoint, self.run_dir)))
        else:
            local_addr = (local_host, 0) if local_host else None
            host, port = self.endpoint.host, self.endpoint.port
            reader, writer = await asyncio.open_connection(host, port, local_addr=local_addr)
        self.opened.append(writer)
        return reader, writer

    def client(self, key: bytes = KEY) -> MessengerClient:
        return MessengerClient(endpoint=self.endpoint, key=key, run_dir=self.run_dir, connect_timeout=2.0)

    async def assert_ping_works(self) -> None:
        client = self.client()
        try:
            assert (await client.request("ping", {"n": 1}))["pong"] is True
        finally:
            await client.close()


@asynccontextmanager
async def serving(transport: str, run_dir: Path, **kwargs: Any) -> AsyncIterator[Harness]:
    kwargs.setdefault("handlers", {"ping": ping})
    kwargs.setdefault("limits", LIMITS)
    server = MessengerServer(key=KEY, **kwargs)
    endpoint = parse_endpoint("pipe://t" if transport == "pipe" else "tcp://127.0.0.1:0", allow_port_zero=True)
    await server.start(endpoint, run_dir=run_dir)
    if transport == "tcp":
        endpoint = parse_endpoint(server.address)
    harness = Harness(server, endpoint, run_dir)
    try:
        yield harness
    finally:
        await server.close()
        for writer in harness.opened:
            writer.close()
        await asyncio.sleep(0)  # let the transports finish closing


@dataclass
class RawPeer:
    """A hand-driven client: a real handshake with protocol.Connection, then whatever bytes a test wants."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    conn: Connection

    async def read_frame(self) -> bytes:
        header = await asyncio.wait_for(self.reader.readexactly(4), 2)
        return header + await asyncio.wait_for(self.reader.readexactly(int.from_bytes(header, "big")), 2)

    async def ping(self, id: int = 1) -> bytes:
        """Send a valid ping; return the raw reply frame after checking it decodes."""
        self.writer.write(self.conn.send_request(id=id, type="ping", body={}))
        frame = await self.read_frame()
        [reply] = self.conn.receive_data(frame)
        assert isinstance(reply, Reply) and reply.id == id
        return frame


async def handshake(harness: Harness, key: bytes = KEY, local_host: str | None = None, version: int = 2) -> RawPeer:
    reader, writer = await harness.open(local_host)
    conn = Connection(role=Role.CLIENT, key=key, version=version)
    writer.write(conn.initiate())
    events = conn.receive_data(await asyncio.wait_for(reader.readexactly(SERVER_HELLO_BYTES), 2))
    assert isinstance(events[0], HandshakeComplete)
    writer.write(conn.data_to_send())
    return RawPeer(reader, writer, conn)


async def read_until_closed(reader: asyncio.StreamReader, timeout: float) -> tuple[bytes, float]:
    """All bytes until EOF (or reset) and how long that took."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        data = await asyncio.wait_for(reader.read(), timeout)
    except ConnectionResetError:
        data = b""
    return data, loop.time() - started


async def expect_reject(reader: asyncio.StreamReader, timeout: float = 2.0) -> float:
    data, elapsed = await read_until_closed(reader, timeout)
    assert data == REJECT
    return elapsed


# --- dispatch ---


def test_ping_round_trip(transport: str, tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(transport, tmp_path) as h:
            client = h.client()
            assert await client.request("ping", {"x": "y"}) == {"pong": True, "echo": {"x": "y"}}
            assert 0 < await client.ping() < 1
            await client.close()
            stats = h.server.stats.as_dict()
            assert stats["handshakes_ok"] == 1 and stats["frames_in"] == 2 and stats["frames_out"] == 2
            assert stats["bytes_in"] > 0 and stats["bytes_out"] > 0 and stats["rejects"] == {}

    run(main())


def test_concurrent_requests_on_one_connection(transport: str, tmp_path: Path) -> None:
    async def snapshot(body: dict, context: RequestContext) -> dict:
        await asyncio.sleep(random.random() / 20)  # replies come back out of order
        return {"n": body["n"], "id": context.id}

    async def main() -> None:
        async with serving(transport, tmp_path, handlers={"ping": ping, "status.snapshot": snapshot}) as h:
            client = h.client()
            replies = await asyncio.gather(*(client.request("status.snapshot", {"n": n}) for n in range(100)))
            assert [r["n"] for r in replies] == list(range(100))
            assert len({r["id"] for r in replies}) == 100
            assert h.server.stats.connections_total == 1
            await client.close()

    run(main())


def test_plain_and_coroutine_handlers_with_context_state_on_one_connection(transport: str, tmp_path: Path) -> None:
    """A coroutine handler runs in its own Task: context variables it sets (as asgiref's sync_to_async
    does) do not leak into the next request, and asyncio.current_task() is there for asyncio.timeout()."""
    depth: contextvars.ContextVar[int] = contextvars.ContextVar("depth", default=0)

    async def nudge(body: dict, context: RequestContext) -> dict:
        seen = depth.get()
        depth.set(seen + 1)
        async with asyncio.timeout(1):
            await asyncio.sleep(0)
        return {"seen": seen}

    def plain(body: dict, context: RequestContext) -> dict:
        return {"plain": True}

    async def main() -> None:
        async with serving(transport, tmp_path, handlers={"ping": plain, "trigger.nudge": nudge}) as h:
            client = h.client()
            assert [(await client.request("trigger.nudge", {}))["seen"] for _ in range(3)] == [0, 0, 0]
            assert await client.request("ping", {}) == {"plain": True}
            await client.close()

    run(main())


def test_handler_error_and_unsupported_type(transport: str, tmp_path: Path) -> None:
    async def refusing(body: dict, context: RequestContext) -> dict:
        raise RequestRefused("runner 'x' does not exist", code=UNKNOWN_RUNNER)

    async def broken_later(body: dict, context: RequestContext) -> dict:
        await asyncio.sleep(0.01)
        raise RuntimeError("x" * 1000)

    def broken_inline(body: dict, context: RequestContext) -> dict:
        raise ValueError("a bug")

    async def main() -> None:
        handlers = {"ping": ping, "runner.run": refusing, "runner.pause": broken_later, "runner.resume": broken_inline}
        async with serving(transport, tmp_path, handlers=handlers) as h:
            client = h.client()
            with pytest.raises(RemoteError, match="runner 'x' does not exist") as refused:
                await client.request("runner.run")
            assert refused.value.code == UNKNOWN_RUNNER
            with pytest.raises(RemoteError) as failed:
                await client.request("runner.pause")
            assert len(str(failed.value)) <= 200 and failed.value.code == INTERNAL
            with pytest.raises(RemoteError, match="a bug") as failed:
                await client.request("runner.resume")
            assert failed.value.code == INTERNAL, "only a RequestRefused chooses its code"
            with pytest.raises(RemoteError, match="not supported") as unsupported:
                await client.request("service.restart")
            assert unsupported.value.code == UNKNOWN_TYPE
            assert await client.request("ping")  # the connection survived all three
            await client.close()

    run(main())


def test_subscription_streams_and_cancel_stops_the_iterator(transport: str, tmp_path: Path) -> None:
    stopped = asyncio.Event()

    async def status(body: dict, context: RequestContext) -> AsyncIterator[dict]:
        try:
            for n in range(1000):
                yield {"n": n}
                await asyncio.sleep(0.01)
        finally:
            stopped.set()

    async def main() -> None:
        async with serving(transport, tmp_path, stream_handlers={"status.subscribe": status}) as h:
            client = h.client()
            received = []
            async with client.subscribe("status.subscribe") as items:
                async for item in items:
                    received.append(item["n"])
                    if len(received) == 3:
                        break
                assert not stopped.is_set()
            assert received == [0, 1, 2]
            await asyncio.wait_for(stopped.wait(), 1)  # CANCEL reached the server-side iterator
            assert await client.request("ping")
            await client.close()

    run(main())


def test_stream_that_ends_and_stream_that_fails(transport: str, tmp_path: Path) -> None:
    async def short(body: dict, context: RequestContext) -> AsyncIterator[dict]:
        for n in range(3):
            yield {"n": n}
        if body.get("fail"):
            raise RuntimeError("status source broke")

    async def main() -> None:
        async with serving(transport, tmp_path, stream_handlers={"status.subscribe": short}) as h:
            client = h.client()
            async with client.subscribe("status.subscribe") as items:
                assert [item["n"] async for item in items] == [0, 1, 2]
            received = []
            with pytest.raises(RemoteError, match="status source broke"):
                async with client.subscribe("status.subscribe", {"fail": True}) as items:
                    async for item in items:
                        received.append(item["n"])
            assert received == [0, 1, 2]
            await client.close()

    run(main())


# --- authentication ---


def test_wrong_key_is_a_key_mismatch_and_a_reject(transport: str, tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(transport, tmp_path) as h:
            client = h.client(key=OTHER_KEY)
            with pytest.raises(MessengerUnavailable) as failed:
                await client.request("ping")
            assert failed.value.reason == "key mismatch"
            assert client.state.status == "key-mismatch"
            await eventually(lambda: h.server.stats.rejects["handshake-aborted"] == 1)
            assert h.server.stats.handshakes_ok == 0
            await client.close()
            await h.assert_ping_works()

    run(main())


def test_wrong_client_proof_is_rejected(transport: str, tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(transport, tmp_path) as h:
            reader, writer = await h.open()
            conn = Connection(role=Role.CLIENT, key=KEY)
            writer.write(conn.initiate())
            await reader.readexactly(SERVER_HELLO_BYTES)
            writer.write(os.urandom(32))  # a ClientFinish without knowing the key
            await expect_reject(reader)
            assert h.server.stats.rejects["bad-proof"] == 1
            await h.assert_ping_works()

    run(main())


# --- frames: tampered, replayed, reflected, truncated ---


@pytest.mark.parametrize("where", ["length", "envelope", "tag"])
def test_tampered_frame_closes(transport: str, tmp_path: Path, where: str) -> None:
    async def main() -> None:
        async with serving(transport, tmp_path) as h:
            peer = await handshake(h)
            await peer.ping(id=1)
            frame = bytearray(peer.conn.send_request(id=2, type="ping", body={"a": 1}))
            if where == "length":  # clear the lowest set bit: the declared length shrinks
                frame[3] ^= frame[3] & -frame[3]
            else:
                frame[4 + 2 if where == "envelope" else len(frame) - 1] ^= 0x01
            peer.writer.write(bytes(frame))
            assert await expect_reject(peer.reader) < FRAME_TIMEOUT / 2
            assert h.server.stats.rejects == {"bad-frame": 1}
            await h.assert_ping_works()

    run(main())


def test_replayed_frame_closes_same_and_new_connection(transport: str, tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(transport, tmp_path) as h:
            first = await handshake(h)
            frame = first.conn.send_request(id=1, type="ping", body={})
            first.writer.write(frame)
            await first.read_frame()
            first.writer.write(frame)  # same connection: the counter has moved on
            await expect_reject(first.reader)

            second = await handshake(h)
            second.writer.write(frame)  # new connection: other session keys
            await expect_reject(second.reader)
            assert h.server.stats.rejects["bad-frame"] == 2
            await h.assert_ping_works()

    run(main())


def test_reflected_frame_closes(transport: str, tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(transport, tmp_path) as h:
            peer = await handshake(h)
            reply_frame = await peer.ping()
            peer.writer.write(reply_frame)  # the server's own frame, sent back to it
            await expect_reject(peer.reader)
            assert h.server.stats.rejects["bad-frame"] == 1
            await h.assert_ping_works()

    run(main())


def test_truncated_tag_is_cut_at_the_frame_deadline(transport: str, tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(transport, tmp_path, limits=SHORT_FRAME_LIMITS) as h:
            peer = await handshake(h)
            peer.writer.write(peer.conn.send_request(id=1, type="ping", body={})[:-1])
            elapsed = await expect_reject(peer.reader, timeout=SHORT_FRAME_TIMEOUT + 2)
            assert SHORT_FRAME_TIMEOUT - 0.1 <= elapsed <= SHORT_FRAME_TIMEOUT + SLACK
            assert h.server.stats.rejects["frame-timeout"] == 1
            await h.assert_ping_works()

    run(main())


# --- sizes and deadlines ---


@pytest.mark.parametrize("length", [0, MAX_FRAME_BYTES + 1, 2**31, 2**32 - 1])
def test_bad_length_prefix_closes_right_after_four_bytes(transport: str, tmp_path: Path, length: int) -> None:
    async def main() -> None:
        async with serving(transport, tmp_path) as h:
            peer = await handshake(h)
            await peer.ping()
            peer.writer.write(length.to_bytes(4, "big"))  # no body is ever sent
            assert await expect_reject(peer.reader) < FRAME_TIMEOUT / 2
            assert h.server.stats.rejects["frame-size"] == 1
            await h.assert_ping_works()

    run(main())


def test_max_frame_length_is_accepted_then_cut_at_the_frame_deadline(transport: str, tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(transport, tmp_path, limits=SHORT_FRAME_LIMITS) as h:
            peer = await handshake(h)
            peer.writer.write(MAX_FRAME_BYTES.to_bytes(4, "big") + bytes(1000))
            elapsed = await expect_reject(peer.reader, timeout=SHORT_FRAME_TIMEOUT + 2)
            assert SHORT_FRAME_TIMEOUT - 0.1 <= elapsed <= SHORT_FRAME_TIMEOUT + SLACK
            assert h.server.stats.rejects == {"frame-timeout": 1}
            await h.assert_ping_works()

    run(main())


@pytest.mark.parametrize("phase", ["handshake", "frame"])
def test_slowloris_is_cut_at_the_deadline(transport: str, tmp_path: Path, phase: str) -> None:
    async def main() -> None:
        async with serving(transport, tmp_path) as h:
            if phase == "frame":
                peer = await handshake(h)
                reader, writer = peer.reader, peer.writer
                payload = peer.conn.send_request(id=1, type="ping", body={"pad": "x" * 20})
                deadline = FRAME_TIMEOUT
            else:
                reader, writer = await h.open()
                payload = Connection(role=Role.CLIENT, key=KEY).initiate()
                deadline = HANDSHAKE_TIMEOUT
            sent = 0

            async def trickle() -> None:
                # One byte per 0.2 s, offset by 0.1 s after the first so that no byte lands exactly on
                # the deadline (a byte arriving as the server closes turns its FIN into a reset).
                nonlocal sent
                for index, byte in enumerate(payload):
                    writer.write(bytes([byte]))
                    sent += 1
                    await asyncio.sleep(0.3 if index == 0 else 0.2)

            trickler = asyncio.create_task(trickle())
            elapsed = await expect_reject(reader, timeout=deadline + 2)
            trickler.cancel()
            assert deadline - 0.1 <= elapsed <= deadline + SLACK
            assert sent < len(payload)  # it was cut, not served
            assert h.server.stats.rejects[f"{phase}-timeout"] == 1
            await h.assert_ping_works()

    run(main())


def test_handshake_deadline_for_a_silent_peer(transport: str, tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(transport, tmp_path) as h:
            reader, _writer = await h.open()
            elapsed = await expect_reject(reader, timeout=HANDSHAKE_TIMEOUT + 2)
            assert HANDSHAKE_TIMEOUT - 0.1 <= elapsed <= HANDSHAKE_TIMEOUT + SLACK
            assert h.server.stats.rejects == {"handshake-timeout": 1}
            await h.assert_ping_works()

    run(main())


def test_idle_timeout_and_keepalive(transport: str, tmp_path: Path) -> None:
    async def main() -> None:
        limits = ServerLimits(handshake_timeout=1.0, frame_timeout=1.0, idle_timeout=0.5)
        async with serving(transport, tmp_path, limits=limits) as h:
            peer = await handshake(h)
            for _ in range(3):  # keepalives every 0.3 s keep it open past the idle timeout
                await asyncio.sleep(0.3)
                peer.writer.write(peer.conn.send_keepalive())
                assert peer.conn.receive_data(await peer.read_frame()) == [KeepaliveAck()]
            data, elapsed = await read_until_closed(peer.reader, timeout=2)
            assert data == b"" and elapsed <= 0.5 + SLACK
            assert h.server.stats.connections_open == 0
            await h.assert_ping_works()

    run(main())


# --- junk ---


@pytest.mark.parametrize("junk", ["random", "http"])
def test_junk_gets_reject_then_close(transport: str, tmp_path: Path, junk: str) -> None:
    async def main() -> None:
        async with serving(transport, tmp_path) as h:
            reader, writer = await h.open()
            if junk == "http":
                writer.write(b"GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: curl/8\r\n\r\n")
            else:
                writer.write(b"\x16\x03\x01" + random.Random(7).randbytes(200))  # not MAGIC
            await expect_reject(reader)
            assert h.server.stats.rejects == {"bad-magic": 1}
            assert h.server.stats.handshakes_ok == 0
            await h.assert_ping_works()

    run(main())


# --- admission: connection cap, IP allowlist ---


def test_connection_flood_beyond_the_cap(transport: str, tmp_path: Path) -> None:
    async def main() -> None:
        limits = ServerLimits(handshake_timeout=5.0, hello_timeout=5.0, frame_timeout=1.0, idle_timeout=5.0,
                              max_connections=4)  # no budget or hello deadline drops the holders: the cap is tested
        async with serving(transport, tmp_path, limits=limits) as h:
            held = [await h.open() for _ in range(4)]
            await eventually(lambda: h.server.stats.connections_open == 4)
            excess = [await h.open() for _ in range(6)]
            for reader, _writer in excess:
                data, elapsed = await read_until_closed(reader, timeout=2)
                assert data == b"" and elapsed < 1
            assert h.server.stats.rejects == {"connection-cap": 6}
            assert h.server.stats.connections_open == 4
            with pytest.raises(MessengerUnavailable):  # the cap holds for everyone while the flood lasts
                await h.assert_ping_works()
            for _reader, writer in held:
                writer.close()
            await eventually(lambda: h.server.stats.connections_open == 0)
            await h.assert_ping_works()

    run(main())


def test_ip_allowlist_refuses_before_reading(tmp_path: Path) -> None:
    async def main() -> None:
        async with serving("tcp", tmp_path, allowed_ips=[ip_network("127.0.0.2/32")]) as h:
            reader, writer = await h.open(local_host="127.0.0.1")
            writer.write(Connection(role=Role.CLIENT, key=KEY).initiate())
            data, _ = await read_until_closed(reader, timeout=2)
            assert data == b""
            stats = h.server.stats
            assert stats.rejects == {"ip-not-allowed": 1}
            assert stats.bytes_in == 0 and stats.bytes_out == 0  # data_received never ran
            assert stats.connections_open == 0
            allowed = await handshake(h, local_host="127.0.0.2")  # the legitimate peer
            await allowed.ping()
            allowed.writer.close()

    run(main())


def test_allowlist_change_closes_peers_that_no_longer_qualify(tmp_path: Path) -> None:
    async def main() -> None:
        async with serving("tcp", tmp_path, allowed_ips=[ip_network("127.0.0.0/8")]) as h:
            leaving = await handshake(h, local_host="127.0.0.1")
            staying = await handshake(h, local_host="127.0.0.2")
            await leaving.ping()
            h.server.set_allowed_ips([ip_network("127.0.0.2/32")])
            data, _ = await read_until_closed(leaving.reader, timeout=2)
            assert data == b""
            await staying.ping(id=7)
            staying.writer.close()

    run(main())


def test_unix_socket_ignores_the_ip_allowlist(tmp_path: Path) -> None:
    async def main() -> None:
        async with serving("pipe", tmp_path, allowed_ips=[ip_network("10.9.9.9/32")]) as h:
            await h.assert_ping_works()

    run(main())


# --- Unix socket file ---


def test_socket_file_and_dir_modes_and_removal(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o755)
    os.chmod(run_dir, 0o755)

    async def main() -> None:
        async with serving("pipe", run_dir) as h:
            path = Path(h.server.address)
            assert path == run_dir / "t.sock"
            assert stat.S_ISSOCK(path.stat().st_mode)
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
            await h.assert_ping_works()
        assert not path.exists()

    run(main())


def test_stale_socket_file_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "t.sock"
    crashed = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    crashed.bind(str(path))  # a service that died without cleaning up
    crashed.close()
    assert path.exists()

    async def main() -> None:
        async with serving("pipe", tmp_path) as h:
            await h.assert_ping_works()

    run(main())


def test_a_live_servers_socket_is_not_stolen(tmp_path: Path) -> None:
    async def main() -> None:
        async with serving("pipe", tmp_path) as h:
            second = MessengerServer(key=KEY, handlers={"ping": ping})
            with pytest.raises(MessengerError, match="another service is already listening on .*t.sock"):
                await second.start(h.endpoint, run_dir=tmp_path)
            await h.assert_ping_works()
            assert h.server.stats.rejects == {}  # the probe is not counted as an attack

    run(main())


def test_socket_replaced_by_someone_else_is_not_removed(tmp_path: Path) -> None:
    async def main() -> None:
        async with serving("pipe", tmp_path) as h:
            path = Path(h.server.address)
            path.unlink()
            other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            other.bind(str(path))
        assert path.exists()  # close() left the newcomer's socket alone
        other.close()

    run(main())


# --- confidentiality ---


def test_no_plaintext_on_the_wire(tmp_path: Path) -> None:
    marker = "MARKER-7f3a9c-secret-feed-name"
    captured = {"c2s": bytearray(), "s2c": bytearray()}

    async def echo(body: dict, context: RequestContext) -> dict:
        return {"echo": body["text"]}

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, sink: bytearray) -> None:
        try:
            while data := await reader.read(65536):
                sink += data
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    async def main() -> None:
        async with serving("tcp", tmp_path, handlers={"ping": ping, "trigger.nudge": echo}) as h:

            async def forward(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
                server_reader, server_writer = await h.open()
                await asyncio.gather(
                    pipe(client_reader, server_writer, captured["c2s"]),
                    pipe(server_reader, client_writer, captured["s2c"]),
                )

            proxy = await asyncio.start_server(forward, "127.0.0.1", 0)
            port = proxy.sockets[0].getsockname()[1]
            client = MessengerClient(endpoint=parse_endpoint(f"tcp://127.0.0.1:{port}"), key=KEY, run_dir=tmp_path)
            assert await client.request("trigger.nudge", {"text": marker}) == {"echo": marker}
            await client.close()
            proxy.close()
        assert len(captured["c2s"]) > 37 and len(captured["s2c"]) > 69  # we did capture the exchange
        for direction in captured.values():
            assert marker.encode() not in direction
            assert b"trigger" not in direction and b"echo" not in direction

    run(main())


# --- live reconfiguration ---


def test_set_key_closes_old_connections(transport: str, tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(transport, tmp_path) as h:
            old = await handshake(h)
            await old.ping()
            h.server.set_key(OTHER_KEY)
            data, _ = await read_until_closed(old.reader, timeout=2)
            assert data == b""
            new = await handshake(h, key=OTHER_KEY)
            await new.ping()
            new.writer.close()

    run(main())


def test_close_fails_handlers_in_flight_and_closes_connections(transport: str, tmp_path: Path) -> None:
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def forever(body: dict, context: RequestContext) -> dict:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()
        return {}

    async def main() -> None:
        async with serving(transport, tmp_path, handlers={"ping": ping, "runner.run": forever}) as h:
            peer = await handshake(h)
            peer.writer.write(peer.conn.send_request(id=1, type="runner.run", body={}))
            await asyncio.wait_for(started.wait(), 2)
            await h.server.close()
            await asyncio.wait_for(cancelled.wait(), 1)
            data, _ = await read_until_closed(peer.reader, timeout=2)
            assert data == b""
            assert h.server.stats.connections_open == 0

    run(main())


# --- write batching ---


def test_stream_frames_are_batched_in_order_and_a_slow_source_is_not_held_back(transport: str, tmp_path: Path) -> None:
    async def burst(body: dict, context: RequestContext) -> AsyncIterator[dict]:
        for n in range(2000):  # never suspends: frames are queued and written in batches
            yield {"n": n, "pad": "x" * 100}
        await asyncio.sleep(0.05)
        yield {"n": "late"}  # alone after a pause: written at the end of the tick, not held for a batch
        await asyncio.sleep(30)

    async def main() -> None:
        async with serving(transport, tmp_path, stream_handlers={"status.subscribe": burst}) as h:
            client = h.client()
            received = []
            async with client.subscribe("status.subscribe") as items:
                async for item in items:
                    received.append(item["n"])
                    if item["n"] == "late":
                        break
            assert received == [*range(2000), "late"]
            assert (await client.request("ping"))["pong"]  # replies interleave with stream frames correctly
            await client.close()

    run(main())


def test_pipelined_requests_get_all_replies(transport: str, tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(transport, tmp_path) as h:
            peer = await handshake(h)
            peer.writer.write(b"".join(peer.conn.send_request(id=i, type="ping", body={"i": i}) for i in range(1, 21)))
            replies = []
            while len(replies) < 20:
                replies += peer.conn.receive_data(await peer.read_frame())
            assert [(r.id, r.body["echo"]["i"]) for r in replies] == [(i, i) for i in range(1, 21)]
            assert h.server.stats.frames_in == 20 and h.server.stats.frames_out == 20

    run(main())


def test_runs_on_uvloop(tmp_path: Path) -> None:
    uvloop = pytest.importorskip("uvloop")

    async def main() -> None:
        async with serving("pipe", tmp_path) as h:
            await h.assert_ping_works()

    uvloop.run(asyncio.wait_for(main(), TEST_DEADLINE))
