"""The messenger client over real Unix and TCP sockets: one clear reason per failure, reconnect, state.

Servers here are real MessengerServers (or, where a test needs a misbehaving peer, a bare socket).
"""

from __future__ import annotations

import asyncio
import gc
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from messenger import client as client_module
from messenger.client import ClientState, MessengerClient, call
from messenger.client_link import Link
from messenger.crypto import RetiredKey
from messenger.endpoint import Endpoint, parse_endpoint, socket_path
from messenger.errors import InvalidKey, MessengerUnavailable, RequestTimeout
from messenger.limits import FAILOVER_BACKOFF_MAX
from messenger.protocol import Connection, Role
from messenger.server import MessengerServer, RequestContext, ServerLimits
from tests.messenger.support import KEY, TEST_DEADLINE, FakeClock, HighestJitter, eventually, run
from tests.processes import free_port

NEW_KEY = bytes(range(100, 132))
LIMITS = ServerLimits(handshake_timeout=1.0, frame_timeout=1.0, idle_timeout=5.0)



async def ping(body: dict, context: RequestContext) -> dict:
    return {"pong": True}


@pytest.fixture(params=["pipe", "tcp"])
def transport(request: pytest.FixtureRequest) -> str:
    return request.param


def bind_endpoint(transport: str) -> Endpoint:
    return parse_endpoint("pipe://c" if transport == "pipe" else "tcp://127.0.0.1:0", allow_port_zero=True)


@asynccontextmanager
async def serving(
    endpoint: Endpoint, run_dir: Path, *, key: bytes = KEY, **kwargs: Any
) -> AsyncIterator[tuple[MessengerServer, Endpoint]]:
    """A started server and the endpoint clients should use (tcp: with the real port)."""
    kwargs.setdefault("handlers", {"ping": ping})
    kwargs.setdefault("limits", LIMITS)
    server = MessengerServer(key=key, **kwargs)
    await server.start(endpoint, run_dir=run_dir)
    try:
        yield server, endpoint if endpoint.kind == "pipe" else parse_endpoint(server.address)
    finally:
        await server.close()


def client_for(endpoint: Endpoint, run_dir: Path, **kwargs: Any) -> MessengerClient:
    kwargs.setdefault("key", KEY)
    return MessengerClient(endpoint=endpoint, run_dir=run_dir, **kwargs)


async def reason_of(client: MessengerClient) -> str:
    with pytest.raises(MessengerUnavailable) as failed:
        await client.request("ping")
    return failed.value.reason


# --- one clear reason per failure ---


def test_not_running(tmp_path: Path) -> None:
    async def main() -> None:
        endpoint = parse_endpoint("pipe://absent")
        client = client_for(endpoint, tmp_path)
        path = socket_path(endpoint, tmp_path)
        assert await reason_of(client) == f"not running (no socket at {path})"
        assert client.state.status == "unreachable"
        assert client.state.reason == f"not running (no socket at {path})"
        await client.close()

    run(main())


def test_connection_refused(transport: str, tmp_path: Path) -> None:
    # A bound socket that does not listen: what a crashed service leaves (Unix) or a closed port (TCP).
    family = socket.AF_UNIX if transport == "pipe" else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as dead:
        if transport == "pipe":
            endpoint = parse_endpoint("pipe://dead")
            dead.bind(str(socket_path(endpoint, tmp_path)))
            target = str(socket_path(endpoint, tmp_path))
        else:
            dead.bind(("127.0.0.1", 0))
            port = dead.getsockname()[1]
            endpoint = parse_endpoint(f"tcp://127.0.0.1:{port}")
            target = f"127.0.0.1:{port}"

        async def main() -> None:
            client = client_for(endpoint, tmp_path)
            assert await reason_of(client) == f"connection refused ({target})"
            assert client.state.status == "unreachable"
            await client.close()

        run(main())


def test_timed_out_when_nothing_answers(transport: str, tmp_path: Path) -> None:
    # A listening socket that never answers: the kernel accepts the connection, nobody speaks.
    family = socket.AF_UNIX if transport == "pipe" else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as mute:
        if transport == "pipe":
            endpoint = parse_endpoint("pipe://mute")
            target = str(socket_path(endpoint, tmp_path))
            mute.bind(target)
        else:
            mute.bind(("127.0.0.1", 0))
            port = mute.getsockname()[1]
            endpoint = parse_endpoint(f"tcp://127.0.0.1:{port}")
            target = f"127.0.0.1:{port}"
        mute.listen(8)

        async def main() -> None:
            client = client_for(endpoint, tmp_path, connect_timeout=0.3)
            started = time.monotonic()
            assert await reason_of(client) == f"timed out connecting to {target}"
            assert time.monotonic() - started < 1.0
            await client.close()

        run(main())



def test_a_handshake_abandoned_before_anyone_waits_leaves_no_unread_error() -> None:
    """The connect timeout can cancel a handshake while the link still waits for its socket."""
    reports: list[dict] = []

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, context: reports.append(context))
        link = Link(key=KEY, on_lost=lambda _link: None)
        link.fail(MessengerUnavailable("timed out connecting to 127.0.0.1:1"))
        assert link.error is not None and link.ready.done()
        del link
        gc.collect()

    run(main())
    assert reports == []

def test_any_host_needs_a_resolver(tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(parse_endpoint("tcp://*:0", allow_port_zero=True), tmp_path) as (server, bound):
            any_host = parse_endpoint(f"tcp://*:{bound.port}")
            for resolver in (None, lambda: None):
                client = client_for(any_host, tmp_path, resolver=resolver)
                assert await reason_of(client) == "no primary service node is known"
                await client.close()
            client = client_for(any_host, tmp_path, resolver=lambda: "127.0.0.1")
            assert (await client.request("ping"))["pong"]
            await client.close()

    run(main())


def test_any_host_keeps_retrying_often_so_it_finds_a_new_primary_soon(tmp_path: Path) -> None:
    """`tcp://*` re-resolves the primary on each attempt; its backoff stays short however long it was down."""
    clock = FakeClock()
    attempts: list[float] = []

    def dead_primary() -> str:
        attempts.append(clock.now)
        return "127.0.0.1"

    async def main() -> None:
        port = free_port()  # nothing listens there: every attempt is refused, as after a primary died
        client = client_for(parse_endpoint(f"tcp://*:{port}"), tmp_path, resolver=dead_primary,
                            backoff_min=1.0, backoff_max=60.0, sleep=clock.sleep, jitter=HighestJitter())
        client.start()
        await eventually(lambda: len(attempts) >= 8)
        await client.close()

    run(main())
    gaps = [later - earlier for earlier, later in zip(attempts, attempts[1:], strict=False)]
    # The ceilings double from backoff_min (1, 2, 4, ...) but stop at FAILOVER_BACKOFF_MAX, not at backoff_max.
    assert gaps[:7] == [min(2.0**n, FAILOVER_BACKOFF_MAX) for n in range(7)], gaps


def test_key_mismatch_state(transport: str, tmp_path: Path) -> None:
    async def main() -> None:
        seen: list[ClientState] = []
        async with serving(bind_endpoint(transport), tmp_path, key=NEW_KEY) as (_server, endpoint):
            client = client_for(endpoint, tmp_path, on_state_change=seen.append)
            assert await reason_of(client) == "key mismatch"
            assert client.state.status == "key-mismatch" and client.state.reason == "key mismatch"
            assert [s.status for s in seen] == ["connecting", "key-mismatch"]
            await client.close()
            assert client.state.status == "closed"

    run(main())


# --- requests ---


def test_request_timeout(transport: str, tmp_path: Path) -> None:
    async def slow(body: dict, context: RequestContext) -> dict:
        await asyncio.sleep(5)
        return {}

    async def main() -> None:
        handlers = {"ping": ping, "status.snapshot": slow}
        async with serving(bind_endpoint(transport), tmp_path, handlers=handlers) as (_server, endpoint):
            client = client_for(endpoint, tmp_path)
            with pytest.raises(RequestTimeout, match="no reply to status.snapshot within 0.2 s"):
                await client.request("status.snapshot", timeout=0.2)
            assert (await client.request("ping"))["pong"]  # the connection is still fine
            await client.close()

    run(main())


def test_concurrent_callers_share_one_connect(transport: str, tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(bind_endpoint(transport), tmp_path) as (server, endpoint):
            client = client_for(endpoint, tmp_path)
            replies = await asyncio.gather(*(client.request("ping") for _ in range(20)))
            assert all(r["pong"] for r in replies)
            assert server.stats.connections_total == 1
            await client.close()

    run(main())


def test_outstanding_request_fails_fast_when_the_server_dies(transport: str, tmp_path: Path) -> None:
    started = asyncio.Event()

    async def hang(body: dict, context: RequestContext) -> dict:
        started.set()
        await asyncio.Event().wait()
        return {}

    async def main() -> None:
        handlers = {"ping": ping, "runner.run": hang}
        async with serving(bind_endpoint(transport), tmp_path, handlers=handlers) as (server, endpoint):
            client = client_for(endpoint, tmp_path, request_timeout=10)
            request = asyncio.create_task(client.request("runner.run"))
            await asyncio.wait_for(started.wait(), 2)
            dying = time.monotonic()
            await server.close()
            with pytest.raises(MessengerUnavailable) as failed:
                await request
            assert failed.value.reason == "connection lost" and not isinstance(failed.value, RequestTimeout)
            assert time.monotonic() - dying < 1.0
            assert client.state.status == "unreachable" and client.state.reason == "connection lost"
            await client.close()

    run(main())


def test_subscription_raises_connection_lost(transport: str, tmp_path: Path) -> None:
    async def status(body: dict, context: RequestContext) -> AsyncIterator[dict]:
        n = 0
        while True:
            yield {"n": n}
            n += 1
            await asyncio.sleep(0.01)

    async def main() -> None:
        streams = {"status.subscribe": status}
        async with serving(bind_endpoint(transport), tmp_path, stream_handlers=streams) as (server, endpoint):
            client = client_for(endpoint, tmp_path)
            received = []
            with pytest.raises(MessengerUnavailable, match="connection lost"):
                async with client.subscribe("status.subscribe") as items:
                    async for item in items:
                        received.append(item["n"])
                        if len(received) == 3:
                            await server.close()
            assert received[:3] == [0, 1, 2]
            await client.close()

    run(main())


# --- background upkeep ---


def test_background_reconnect_with_backoff(transport: str, tmp_path: Path) -> None:
    async def main() -> None:
        seen: list[ClientState] = []
        async with serving(bind_endpoint(transport), tmp_path) as (_server, endpoint):
            clock = FakeClock()
            client = client_for(endpoint, tmp_path, backoff_min=0.05, backoff_max=0.2, on_state_change=seen.append,
                                sleep=clock.sleep)
            client.start()
            await eventually(lambda: client.state.status == "connected")
        # The server is gone (the context closed it): no call needed to notice.
        await eventually(lambda: client.state.status == "unreachable")
        failed = len(clock.slept)
        await eventually(lambda: len(clock.slept) >= failed + 3)  # a few failed attempts under backoff
        assert all(0 <= delay <= 0.2 for delay in clock.slept)
        assert client.state.status == "unreachable"
        assert client.state.reason.startswith(("connection refused", "not running"))
        async with serving(endpoint, tmp_path) as (server, _):
            await eventually(lambda: client.state.status == "connected")
            # Reconnected by itself, before any request. The client is connected on the server's hello;
            # the server counts the handshake when the client's finish (already sent) arrives.
            await eventually(lambda: server.stats.handshakes_ok == 1)
            assert (await client.request("ping"))["pong"]
            # Closed while the server is up: on uvloop the server's close would otherwise reach the client first.
            await client.close()
        assert [s.status for s in seen[:3]] == ["connecting", "connected", "unreachable"]
        assert seen[2].reason == "connection lost"
        assert [s.status for s in seen[-2:]] == ["connected", "closed"]

    run(main())


def test_keepalive_holds_the_connection_and_silence_drops_it(tmp_path: Path) -> None:
    async def main() -> None:
        limits = ServerLimits(handshake_timeout=1.0, frame_timeout=1.0, idle_timeout=0.5)
        async with serving(bind_endpoint("tcp"), tmp_path, limits=limits) as (server, endpoint):
            client = client_for(endpoint, tmp_path, keepalive_interval=0.15, idle_timeout=1.0)
            client.start()
            await eventually(lambda: client.state.status == "connected")
            await asyncio.sleep(1.2)  # well past the server's idle timeout
            assert client.state.status == "connected"
            assert server.stats.connections_total == 1 and server.stats.frames_in >= 5
            await client.close()

        # A "service" that completes the handshake and then never says another word.
        accepted: list[socket.socket] = []

        class Mute(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport = transport
                self.conn = Connection(role=Role.SERVER, key=KEY)
                accepted.append(transport.get_extra_info("socket"))

            def data_received(self, data: bytes) -> None:
                self.conn.receive_data(data)
                self.transport.write(self.conn.data_to_send())  # type: ignore[attr-defined]

        mute = await asyncio.get_running_loop().create_server(Mute, "127.0.0.1", 0)
        port = mute.sockets[0].getsockname()[1]
        client = client_for(
            parse_endpoint(f"tcp://127.0.0.1:{port}"), tmp_path, keepalive_interval=0.1, idle_timeout=0.4
        )
        client.start()
        await eventually(lambda: client.state.status == "connected")
        await eventually(lambda: len(accepted) >= 2)  # silence dropped the link; it reconnected
        await client.close()
        mute.close()

    run(main())


# --- live reconfiguration ---


def test_set_key_on_the_server(transport: str, tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(bind_endpoint(transport), tmp_path) as (server, endpoint):
            old = client_for(endpoint, tmp_path)
            assert (await old.request("ping"))["pong"]
            server.set_key(NEW_KEY)
            await eventually(lambda: old.state.status == "unreachable")  # its connection was closed
            assert await reason_of(old) == "key mismatch"
            assert old.state.status == "key-mismatch"
            new = client_for(endpoint, tmp_path, key=NEW_KEY)
            assert (await new.request("ping"))["pong"]
            old.reconfigure(key=NEW_KEY)  # once told the new key, the old client recovers
            assert (await old.request("ping"))["pong"]
            assert old.state.status == "connected"
            await old.close()
            await new.close()

    run(main())


def test_reconfigure_switches_unix_to_tcp(tmp_path: Path) -> None:
    def via(name: str) -> Callable[[dict, RequestContext], Coroutine[Any, Any, dict]]:
        async def handler(body: dict, context: RequestContext) -> dict:
            return {"via": name, "peer": context.peer}

        return handler

    async def main() -> None:
        async with (
            serving(bind_endpoint("pipe"), tmp_path, handlers={"ping": via("pipe")}) as (_, pipe_endpoint),
            serving(bind_endpoint("tcp"), tmp_path, handlers={"ping": via("tcp")}) as (tcp_server, tcp_endpoint),
        ):
            client = client_for(pipe_endpoint, tmp_path)
            client.start()
            assert (await client.request("ping"))["via"] == "pipe"
            client.reconfigure(endpoint=tcp_endpoint)
            reply = await client.request("ping")
            assert reply["via"] == "tcp" and reply["peer"].startswith("127.0.0.1:")
            await eventually(lambda: client.state.status == "connected")
            assert client.state.reason == f"connected to 127.0.0.1:{tcp_endpoint.port}"
            assert tcp_server.stats.connections_total == 1
            await client.close()
            with pytest.raises(MessengerUnavailable, match="client closed"):
                await client.request("ping")

    run(main())


def test_reconfigure_cuts_the_backoff_short(tmp_path: Path) -> None:
    """A client backing off from a dead endpoint tries a new one at once, not when its backoff ends."""
    backing_off = asyncio.Event()

    async def endless(seconds: float) -> None:
        backing_off.set()
        await asyncio.Event().wait()

    async def main() -> None:
        client = client_for(parse_endpoint("pipe://nobody"), tmp_path, sleep=endless)
        client.start()
        await asyncio.wait_for(backing_off.wait(), 2)
        async with serving(bind_endpoint("pipe"), tmp_path) as (_server, endpoint):
            client.reconfigure(endpoint=endpoint)
            await eventually(lambda: client.state.status == "connected")
            await client.close()

    run(main())


# --- the sync helper for management commands ---


def test_call_from_sync_code(tmp_path: Path) -> None:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = MessengerServer(key=KEY, handlers={"ping": ping}, limits=LIMITS)
    endpoint = parse_endpoint("pipe://sync")
    try:
        asyncio.run_coroutine_threadsafe(server.start(endpoint, run_dir=tmp_path), loop).result(5)
        assert call(endpoint=endpoint, key=KEY, run_dir=tmp_path, type="ping", timeout=2) == {"pong": True}
        with pytest.raises(MessengerUnavailable, match="key mismatch"):
            call(endpoint=endpoint, key=NEW_KEY, run_dir=tmp_path, type="ping", timeout=2)
    finally:
        asyncio.run_coroutine_threadsafe(server.close(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
    with pytest.raises(MessengerUnavailable, match="not running"):
        call(endpoint=endpoint, key=KEY, run_dir=tmp_path, type="ping", timeout=2)


def test_request_deadlines_of_different_lengths(transport: str, tmp_path: Path) -> None:
    async def slow(body: dict, context: RequestContext) -> dict:
        await asyncio.sleep(body["sleep"])
        return {"slept": body["sleep"]}

    async def main() -> None:
        handlers = {"ping": ping, "status.snapshot": slow}
        async with serving(bind_endpoint(transport), tmp_path, handlers=handlers) as (_server, endpoint):
            client = client_for(endpoint, tmp_path)
            loop = asyncio.get_running_loop()
            started = loop.time()
            results = await asyncio.gather(
                client.request("status.snapshot", {"sleep": 5}, timeout=0.5),
                client.request("status.snapshot", {"sleep": 5}, timeout=0.2),  # armed later, due earlier
                client.request("status.snapshot", {"sleep": 0.05}, timeout=2.0),
                return_exceptions=True,
            )
            elapsed = loop.time() - started
            assert isinstance(results[0], RequestTimeout) and "within 0.5 s" in str(results[0])
            assert isinstance(results[1], RequestTimeout) and "within 0.2 s" in str(results[1])
            assert results[2] == {"slept": 0.05}
            assert 0.4 < elapsed < 3.0
            link = client._link
            assert link is not None and not link.pending and not link._deadlines  # nothing left behind
            assert (await client.request("ping"))["pong"]
            await client.close()

    run(main())


def test_runs_on_uvloop(tmp_path: Path) -> None:
    uvloop = pytest.importorskip("uvloop")

    async def main() -> None:
        async with serving(parse_endpoint("pipe://u"), tmp_path) as (_server, endpoint):
            client = client_for(endpoint, tmp_path)
            assert (await client.request("ping"))["pong"]
            async with asyncio.timeout(5):
                with pytest.raises(RequestTimeout):
                    await client.request("ping", timeout=0)
            await client.close()

    uvloop.run(asyncio.wait_for(main(), TEST_DEADLINE))


# --- key rotation: previous keys and their grace ---


def _retired(key: bytes, seconds: float) -> RetiredKey:
    return RetiredKey(key=key, until=time.time() + seconds)


def test_during_the_grace_both_keys_get_in_and_after_it_the_old_one_is_refused(transport: str, tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(bind_endpoint(transport), tmp_path, key=NEW_KEY,
                           previous_keys=[_retired(KEY, 1.0)]) as (server, endpoint):
            old, new = client_for(endpoint, tmp_path), client_for(endpoint, tmp_path, key=NEW_KEY)
            assert (await old.request("ping"))["pong"] and (await new.request("ping"))["pong"]
            await eventually(lambda: old.state.status == "unreachable", timeout=3)  # closed at the grace's end
            assert new.state.status == "connected" and server.previous_keys == ()
            assert await reason_of(old) == "key mismatch"
            assert (await new.request("ping"))["pong"]
            await old.close()
            await new.close()

    run(main())


def _held_handler() -> tuple[Callable[[dict, RequestContext], Awaitable[dict]], asyncio.Event, asyncio.Event]:
    """A handler that signals `started` and answers only once `release` is set: a request kept in flight."""
    started, release = asyncio.Event(), asyncio.Event()

    async def slow(body: dict, context: RequestContext) -> dict:
        started.set()
        await release.wait()
        return {"slow": True}

    return slow, started, release


def test_a_key_change_cuts_nothing_in_flight(transport: str, tmp_path: Path) -> None:
    slow, started, release = _held_handler()

    async def main() -> None:
        handlers = {"ping": ping, "runner.run": slow}
        async with serving(bind_endpoint(transport), tmp_path, handlers=handlers) as (server, endpoint):
            client = client_for(endpoint, tmp_path)
            in_flight = asyncio.create_task(client.request("runner.run"))
            await started.wait()
            server.set_key(NEW_KEY, [_retired(KEY, 0.3)])
            assert (await client.request("ping"))["pong"]  # the same connection goes on during the grace
            await asyncio.sleep(0.5)  # the grace ended with a request in flight: the connection waits for it
            assert len(server.connections) == 1 and not in_flight.done()
            release.set()
            assert await in_flight == {"slow": True}
            await eventually(lambda: not server.connections)  # then it is closed
            await client.close()

    run(main())


def test_a_client_tries_its_previous_key_when_the_service_still_holds_it(transport: str, tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(bind_endpoint(transport), tmp_path) as (server, endpoint):
            only_new = client_for(endpoint, tmp_path, key=NEW_KEY)
            assert await reason_of(only_new) == "key mismatch"
            both = client_for(endpoint, tmp_path, key=NEW_KEY, previous_keys=[KEY])
            assert (await both.request("ping"))["pong"]
            assert [conn.key == KEY for conn in server.connections] == [True]
            await only_new.close()
            await both.close()

    run(main())


def test_a_client_on_its_previous_key_moves_to_the_current_one_once_the_service_has_it(
    transport: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client_module, "KEY_UPGRADE_INTERVAL", 0.1)  # how often it tries the current key again

    async def main() -> None:
        async with serving(bind_endpoint(transport), tmp_path) as (server, endpoint):
            client = client_for(endpoint, tmp_path, key=NEW_KEY, previous_keys=[KEY])
            client.start()
            await eventually(lambda: client.state.status == "connected")
            assert [conn.key for conn in server.connections] == [KEY]  # the service is still on the old key
            server.set_key(NEW_KEY, [_retired(KEY, 10)])
            await eventually(lambda: [conn.key for conn in server.connections] == [NEW_KEY], timeout=5)
            assert (await client.request("ping"))["pong"] and client.state.status == "connected"
            await client.close()

    run(main())


def test_reconfiguring_the_key_drains_the_old_connection_and_fails_nothing(transport: str, tmp_path: Path) -> None:
    slow, started, release = _held_handler()

    async def main() -> None:
        handlers = {"ping": ping, "runner.run": slow}
        async with serving(bind_endpoint(transport), tmp_path, handlers=handlers) as (server, endpoint):
            client = client_for(endpoint, tmp_path)
            client.start()
            in_flight = asyncio.create_task(client.request("runner.run"))
            await started.wait()
            server.set_key(NEW_KEY, [_retired(KEY, 5)])
            client.reconfigure(key=NEW_KEY, previous_keys=[KEY])
            assert (await client.request("ping"))["pong"]  # over a new connection, with the new key
            assert sorted(conn.key == NEW_KEY for conn in server.connections) == [False, True]
            release.set()
            assert await in_flight == {"slow": True}
            await eventually(lambda: [conn.key for conn in server.connections] == [NEW_KEY])  # the old one closed
            assert client.state.status == "connected"
            await client.close()

    run(main())


def test_previous_keys_must_be_32_bytes(tmp_path: Path) -> None:
    with pytest.raises(InvalidKey):
        client_for(parse_endpoint("pipe://c"), tmp_path, previous_keys=[bytes(31)])
    with pytest.raises(InvalidKey):
        MessengerServer(key=KEY, previous_keys=[_retired(bytes(31), 60)], handlers={})
    with pytest.raises(InvalidKey):
        client_for(parse_endpoint("pipe://c"), tmp_path).reconfigure(key=NEW_KEY, previous_keys=[bytes(33)])
