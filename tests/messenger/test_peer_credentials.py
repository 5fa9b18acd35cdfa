"""The client asks the kernel who listens on the Unix socket (SO_PEERCRED) and sends nothing unless it is
its own user: a socket planted by another local user never sees the handshake, let alone a request."""
from __future__ import annotations

import asyncio
import contextlib
import os
import select
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from messenger.client import MessengerClient
from messenger.endpoint import parse_endpoint
from messenger.errors import MessengerUnavailable
from messenger.local_socket import peer_refusal
from tests.messenger.support import KEY, TEST_DEADLINE

ENDPOINT = parse_endpoint("pipe://planted")
OTHER_UID = 65534  # nobody
# Bounds on the forked listener: its start, and how long it waits for bytes that should never come.
CHILD_START_TIMEOUT = 10.0
CHILD_READ_TIMEOUT = 3.0


def _read(fd: int, timeout: float) -> bytes:
    ready, _, _ = select.select([fd], [], [], timeout)
    assert ready, "the listener did not answer in time"
    return os.read(fd, 64)


@contextlib.contextmanager
def listener_run_by(uid: int, run_dir: Path) -> Iterator[list[int]]:
    """A forked child that becomes `uid`, listens on ENDPOINT's socket in `run_dir` and accepts one connection.

    Yields a list that holds, once the block ends, how many bytes the child received on that connection.
    """
    child_out, parent_in = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: only plain system calls, then _exit (no pytest or Django teardown)
        try:
            os.close(child_out)
            os.setgid(uid)
            os.setuid(uid)
            with socket.socket(socket.AF_UNIX) as server:
                server.bind(str(run_dir / "planted.sock"))
                server.listen(1)
                os.write(parent_in, b"listening")
                conn, _ = server.accept()
                conn.settimeout(CHILD_READ_TIMEOUT)
                received = 0
                with contextlib.suppress(OSError):
                    while chunk := conn.recv(4096):
                        received += len(chunk)
                os.write(parent_in, str(received).encode())
        finally:
            os._exit(0)
    os.close(parent_in)
    received: list[int] = []
    try:
        assert _read(child_out, CHILD_START_TIMEOUT) == b"listening"
        yield received
        received.append(int(_read(child_out, CHILD_START_TIMEOUT + CHILD_READ_TIMEOUT)))
    finally:
        os.close(child_out)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 9)
        os.waitpid(pid, 0)


@pytest.mark.skipif(os.geteuid() != 0, reason="listening as another user needs root")
@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_socket_of_another_user_is_refused_before_the_handshake(loop: str) -> None:
    runner = asyncio.run if loop == "asyncio" else pytest.importorskip("uvloop").run
    run_dir = Path(tempfile.mkdtemp(prefix="proget-planted-"))  # not under tmp_path: `nobody` must reach it
    os.chown(run_dir, OTHER_UID, OTHER_UID)
    try:
        with listener_run_by(OTHER_UID, run_dir) as received:
            client = MessengerClient(endpoint=ENDPOINT, key=KEY, run_dir=run_dir, connect_timeout=2)

            async def main() -> None:
                try:
                    await client.request("ping")
                finally:
                    await client.close()

            with pytest.raises(MessengerUnavailable, match=f"uid {OTHER_UID}") as refused:
                runner(asyncio.wait_for(main(), TEST_DEADLINE))
        assert received == [0], "the client sent bytes to a socket another user listens on"
        assert str(os.geteuid()) in str(refused.value)
    finally:
        shutil.rmtree(run_dir)


def test_a_socket_of_our_own_user_passes_the_check() -> None:
    ours, theirs = socket.socketpair(socket.AF_UNIX)
    with ours, theirs:
        assert peer_refusal(ours) is None


def test_tcp_sockets_are_not_checked() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server, socket.create_connection(server.getsockname()) as tcp:
        assert peer_refusal(tcp) is None
