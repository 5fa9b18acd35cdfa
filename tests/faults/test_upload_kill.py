"""SIGKILL of the web node (daphne) while a client streams an upload: nothing partial anywhere, and the same
upload succeeds against the restarted node."""
from __future__ import annotations

import os
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.faults.support import FEED, feed_listing, post_upload, query, upload_request
from tests.feeds.builders import wheel
from tests.processes import start_daphne, stop, wait_for

pytestmark = pytest.mark.slow

# Big enough that half of it is well on its way through daphne when the kill lands.
PACKAGE_BYTES = 4 * 1024 * 1024


def _stream_half(port: int, body: bytes, headers: dict[str, str]) -> socket.socket:
    """Start the upload: send the headers and the first half of the body, then stall (as a slow client would)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    head = "".join(f"{name}: {value}\r\n" for name, value in {
        **headers, "Host": f"127.0.0.1:{port}", "Content-Length": str(len(body))}.items())
    sock.sendall(f"POST /pypi/{FEED}/legacy/ HTTP/1.1\r\n{head}\r\n".encode() + body[: len(body) // 2])
    return sock


def test_a_web_node_killed_mid_upload_leaves_no_partial_file_and_the_upload_then_succeeds(node: Path) -> None:
    data = node
    built = data / "built"
    built.mkdir()
    package = wheel(built, "big", "1.0", extra={"big_data.bin": os.urandom(PACKAGE_BYTES)})
    temp = data / "tmp"  # daphne's temp dir: where a spooled request body would go
    temp.mkdir()
    before = feed_listing(data)
    daphne, port = start_daphne(data, log=data / "daphne.log", TMPDIR=str(temp))
    try:
        client = _stream_half(port, *upload_request(package))
        time.sleep(0.5)  # the half is read by daphne
        daphne.kill()
        daphne.wait()
        with pytest.raises(OSError):  # the client learns the upload failed (reset or closed, no answer)
            client.settimeout(5)
            if not client.recv(1):
                raise ConnectionResetError("closed without an answer")
        client.close()
    finally:
        stop(daphne)
    assert feed_listing(data) == before, "a partial file was left in the feed folder"
    assert os.listdir(temp) == [], "a temp file outlived the kill"
    assert query(data, "SELECT filename FROM feeds_packagefile") == []

    daphne, port = start_daphne(data, log=data / "daphne.log")
    base = f"http://127.0.0.1:{port}"
    try:
        with urllib.request.urlopen(f"{base}/pypi/{FEED}/simple/big/", timeout=10) as response:
            assert package.name not in response.read().decode()
    except urllib.error.HTTPError as exc:
        assert exc.code == 404
    try:
        status, body = post_upload(base, package)
        assert status == 200, body
        wait_for(lambda: feed_listing(data) == sorted([*before, package.name]), what="the stored file")
        with urllib.request.urlopen(f"{base}/pypi/{FEED}/files/{package.name}", timeout=10) as response:
            assert response.read() == package.read_bytes()
    finally:
        stop(daphne)
