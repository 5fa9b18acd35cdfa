"""SIGKILL of the service node mid-frame and mid-handshake, seen by a long-lived client (as a web node holds).

Every caller in flight gets a MessengerUnavailable with a reason, nothing is dispatched (or re-sent) by itself,
and after the restart the same client reconnects on its own.
"""
from __future__ import annotations

import asyncio
import base64
import signal
import socket
from pathlib import Path

import pytest

from messenger.client import MessengerClient
from messenger.endpoint import parse_endpoint
from messenger.errors import MessengerUnavailable
from messenger.protocol import Connection, HandshakeComplete, Role
from tests.faults.support import not_due_yet
from tests.indexer.test_service_process import service_env
from tests.processes import ServiceProcess, shell

pytestmark = pytest.mark.slow

NODE = "svc-fault"
RUNNER = "Test Slow"
# Generous for this loaded machine; a hang would be far longer.
LOST_WITHIN = 5.0
RECONNECT_WITHIN = 15.0


def _key(data_dir: Path) -> bytes:
    return base64.b64decode(shell(data_dir, "from indexer.messenger_config import messenger_settings as m;"
                                            "import base64; print(base64.b64encode(m().key).decode())"))


def _half_a_request(path: Path, key: bytes) -> socket.socket:
    """A peer that completes the handshake, then sends the first half of a `runner.run` frame and stalls."""
    peer = Connection(role=Role.CLIENT, key=key)
    sock = socket.socket(socket.AF_UNIX)
    sock.settimeout(5)
    sock.connect(str(path))
    sock.sendall(peer.initiate())
    while not any(isinstance(event, HandshakeComplete) for event in peer.receive_data(sock.recv(65536))):
        sock.sendall(peer.data_to_send())
    sock.sendall(peer.data_to_send())
    frame = peer.send_request(id=1, type="runner.run", body={"name": RUNNER})
    sock.sendall(frame[: len(frame) // 2])
    return sock


def _closed_by_peer(sock: socket.socket) -> bool:
    """Whether the other end closed `sock` (EOF, or a reset when it died with our bytes unread); closes it."""
    with sock:
        try:
            return sock.recv(1) == b""
        except ConnectionResetError:
            return True


def _started_runs(data_dir: Path) -> int:
    """How often the slow runner started without a trigger (runner.run straight through the messenger)."""
    log = data_dir / "runs.log"
    return sum(line.startswith("- ") for line in log.read_text().splitlines()) if log.exists() else 0


async def _wait(condition, timeout: float, what: str) -> None:  # noqa: ANN001
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)
    assert condition(), what


async def _scenario(data: Path, service: ServiceProcess, key: bytes) -> None:
    client = MessengerClient(endpoint=parse_endpoint(""), key=key, run_dir=data / "run", connect_timeout=2,
                             request_timeout=3, keepalive_interval=0.5, idle_timeout=3,
                             backoff_min=0.1, backoff_max=0.5)
    client.start()
    try:
        assert (await client.request("ping"))["node"] == NODE
        half = await asyncio.to_thread(_half_a_request, service.socket, key)
        service.process.send_signal(signal.SIGSTOP)  # frozen: what it received, it has not read yet
        in_flight = asyncio.ensure_future(client.request("runner.run", {"name": RUNNER}, timeout=30))
        fresh = MessengerClient(endpoint=parse_endpoint(""), key=key, run_dir=data / "run", connect_timeout=30)
        handshaking = asyncio.ensure_future(fresh.request("ping", timeout=30))
        await asyncio.sleep(0.5)
        assert not in_flight.done() and not handshaking.done()

        service.kill()
        async with asyncio.timeout(LOST_WITHIN):
            for caller in (in_flight, handshaking):
                with pytest.raises(MessengerUnavailable) as lost:
                    await caller
                assert lost.value.reason, "no reason given"
        await fresh.close()
        assert await asyncio.to_thread(_closed_by_peer, half), "the half-sent frame's connection stays open"
        assert client.state.status == "unreachable" and client.state.reason

        await asyncio.to_thread(service.start)
        await _wait(lambda: client.state.status == "connected", RECONNECT_WITHIN, "the client to reconnect")
        await asyncio.sleep(1.0)  # time for anything lost to have been re-sent or dispatched: nothing may be
        assert _started_runs(data) == 0, "a request lost in the crash was dispatched after all"
        reply = await client.request("runner.run", {"name": RUNNER})
        assert reply["started"] is True
        await _wait(lambda: _started_runs(data) == 1, 10, "the new request to run")
    finally:
        await client.close()


def test_a_service_killed_mid_frame_and_mid_handshake_fails_callers_cleanly_and_the_client_reconnects(
    node: Path,
) -> None:
    data = node
    not_due_yet(data, RUNNER)
    key = _key(data)
    service = ServiceProcess(data, PROGET_NODE_NAME=NODE, **service_env(data)).start()
    try:
        asyncio.run(asyncio.wait_for(_scenario(data, service, key), 60))
    finally:
        if service.process.poll() is None:
            service.process.send_signal(signal.SIGCONT)
            service.stop()
    assert _started_runs(data) == 1
