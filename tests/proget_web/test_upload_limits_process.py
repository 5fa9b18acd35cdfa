"""Against the real web server process: an oversized or anonymous upload is refused from its headers alone,
before any of its body is read, and an accepted upload costs bounded memory (the body goes to disk, not RAM)."""
from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from feeds.limits import MAX_UPLOAD_REQUEST_BYTES
from tests.faults.support import ADMIN, FEED, PASSWORD, node_prepare, post_upload, query
from tests.feeds.builders import wheel
from tests.feeds.test_upload import basic
from tests.processes import start_daphne, stop, wait_for

pytestmark = pytest.mark.slow

MIB = 1024 * 1024
# What each test announces: well over the cap, and well under it (but still far too big to buffer blindly).
OVERSIZED_BYTES = 300 * MIB
LARGE_BYTES = 50 * MIB
# A refusal from the headers alone is one loopback round trip; seconds mean the server waited for a body.
REFUSAL_DEADLINE_SECONDS = 2.0
# proget_web.serve.LINGER_SECONDS (2 s) after a refusal, plus slack for a loaded machine.
LINGER_DEADLINE_SECONDS = 6.0
# The accepted 50 MiB upload may raise the server's peak RSS by this much (a copy of it in RAM would be 50).
RSS_GROWTH_BOUND_BYTES = 24 * MIB


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int, Path]]:
    """The web server on a node with an admin and the feed, shared by this module: (port, pid, data dir)."""
    data = node_prepare(tmp_path_factory.mktemp("upload-limits"))
    process, port = start_daphne(data, log=data / "daphne.log")
    try:
        yield port, process.pid, data
    finally:
        stop(process)


def _headers_only(port: int, *, length: int, headers: dict[str, str], path: str = f"/pypi/{FEED}/legacy/") -> bytes:
    """Send a POST's headers announcing `length` body bytes, none of the body; the server's answer (until close)."""
    head = "".join(f"{name}: {value}\r\n" for name, value in {
        **headers, "Host": f"127.0.0.1:{port}", "Content-Length": str(length)}.items())
    with socket.create_connection(("127.0.0.1", port), timeout=REFUSAL_DEADLINE_SECONDS) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\n{head}\r\n".encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def _oversized_head(port: int) -> bytes:
    """The head of a POST announcing OVERSIZED_BYTES (no credentials: the size is refused first)."""
    return (f"POST /pypi/{FEED}/legacy/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Length: {OVERSIZED_BYTES}\r\n\r\n").encode()


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


ADMIN_AUTH = {"Authorization": basic(ADMIN, PASSWORD), "Content-Type": "multipart/form-data; boundary=x"}


def test_a_request_announcing_300_mib_is_refused_413_before_its_body(server: tuple[int, int, Path]) -> None:
    port, _, _ = server
    started = time.monotonic()
    answer = _headers_only(port, length=OVERSIZED_BYTES, headers=ADMIN_AUTH)
    assert time.monotonic() - started < REFUSAL_DEADLINE_SECONDS
    assert _status(answer) == 413, answer
    assert str(MAX_UPLOAD_REQUEST_BYTES).encode() in answer


def test_an_oversized_body_on_any_route_is_refused_413(server: tuple[int, int, Path]) -> None:
    port, _, _ = server
    answer = _headers_only(port, length=OVERSIZED_BYTES, headers={}, path="/accounts/login/")
    assert _status(answer) == 413, answer


def test_an_anonymous_upload_is_refused_401_before_its_body(server: tuple[int, int, Path]) -> None:
    """Also when the client waits for "100 Continue": it gets the 401 instead, never both."""
    port, _, _ = server
    answer = _headers_only(port, length=LARGE_BYTES, headers={
        "Content-Type": "multipart/form-data; boundary=x", "Expect": "100-continue"})
    assert answer.startswith(b"HTTP/1.1 401 "), answer
    assert b"WWW-Authenticate: Basic" in answer and b" 100 " not in answer


def test_a_chunked_body_is_cut_off_once_it_passes_the_cap(server: tuple[int, int, Path]) -> None:
    """No Content-Length to refuse up front: the server counts the chunks and answers 413 past the cap."""
    port, _, _ = server
    chunk = MIB
    head = (f"POST /pypi/{FEED}/legacy/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nTransfer-Encoding: chunked\r\n"
            f"Authorization: {ADMIN_AUTH['Authorization']}\r\n\r\n")
    framed = f"{chunk:x}\r\n".encode() + bytes(chunk) + b"\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=REFUSAL_DEADLINE_SECONDS) as sock:
        sock.sendall(head.encode())
        with contextlib.suppress(ConnectionError):  # the server stops reading once it has answered
            for _ in range(MAX_UPLOAD_REQUEST_BYTES // chunk + 2):
                sock.sendall(framed)
        answer = sock.recv(65536)
    assert _status(answer) == 413, answer


def test_after_a_refusal_the_server_keeps_reading_a_while_so_the_client_is_not_reset(
    server: tuple[int, int, Path],
) -> None:
    """A lingering close: the answer ends with a half-close, and what the client still sends is read and dropped
    (a close with unread input would reset the connection, which can destroy the answer on a real network)."""
    port, _, _ = server
    with socket.create_connection(("127.0.0.1", port), timeout=REFUSAL_DEADLINE_SECONDS) as sock:
        sock.sendall(_oversized_head(port))
        answer = b""
        while chunk := sock.recv(65536):  # until the server's half-close
            answer += chunk
        for _ in range(8):  # far more than the socket buffers hold: the server must be reading
            sock.sendall(bytes(MIB))
    assert _status(answer) == 413, answer


def test_a_refused_connection_is_aborted_after_the_linger(server: tuple[int, int, Path]) -> None:
    """A client that keeps sending after its refusal does not hold the connection: it is cut off."""
    port, _, _ = server
    with socket.create_connection(("127.0.0.1", port), timeout=REFUSAL_DEADLINE_SECONDS) as sock:
        sock.sendall(_oversized_head(port))
        while sock.recv(65536):
            pass

        def cut_off() -> bool:
            try:
                sock.sendall(bytes(1024))
            except OSError:
                return True
            return False

        wait_for(cut_off, timeout=LINGER_DEADLINE_SECONDS, what="the server to abort the refused connection")


def test_an_anonymous_upload_sent_whole_by_a_client_gets_its_401(server: tuple[int, int, Path]) -> None:
    """A client that sends its body regardless (requests does) still reads the 401, not a reset."""
    port, _, _ = server
    body = b"x" * LARGE_BYTES
    response = requests.post(f"http://127.0.0.1:{port}/pypi/{FEED}/legacy/", data=body, timeout=30,
                             headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert response.status_code == 401


def _peak_rss_reset(pid: int) -> None:
    """Start a new peak: the kernel sets VmHWM back to the current RSS (Linux >= 4.0)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def _rss(pid: int, field: str) -> int:
    """`field` (VmRSS, VmHWM) of process `pid`, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def test_an_accepted_50_mib_upload_is_stored_with_bounded_memory(server: tuple[int, int, Path]) -> None:
    port, pid, data = server
    base = f"http://127.0.0.1:{port}"
    built = data / "built"
    built.mkdir()
    warm = wheel(built, "warm", "1.0")
    assert post_upload(base, warm)[0] == 200  # the upload code path is imported before the measure starts
    big = wheel(built, "big", "1.0", extra={"big_data.bin": os.urandom(LARGE_BYTES)})
    _peak_rss_reset(pid)
    before = _rss(pid, "VmRSS")
    status, text = post_upload(base, big)
    growth = _rss(pid, "VmHWM") - before
    assert status == 200, text
    assert growth < RSS_GROWTH_BOUND_BYTES, f"peak RSS grew by {growth / MIB:.1f} MiB"
    assert (data / "packages" / FEED / big.name).stat().st_size == big.stat().st_size
    assert query(data, "SELECT filename FROM feeds_packagefile WHERE filename = ?", big.name) == [(big.name,)]
