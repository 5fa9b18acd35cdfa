"""Redis (the web nodes' Channels layer) restarted under a live Service Status viewer and flowing triggers.

A private redis-server on a free port, never the machine's own: it is SIGKILLed and started again on the same
port. The viewer's WebSocket stays open and keeps receiving live events (status viewers do not use the
channel layer); every Reindex posted before, during and after is stored and run exactly once.
"""
from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.support import ADMIN, FEED, PASSWORD, trigger_rows
from tests.processes import ServiceProcess, free_port, start_daphne, stop, wait_for
from tests.web_clients import HOST, Browser, MiniWebSocket

pytestmark = pytest.mark.slow

REDIS_SERVER = "/usr/bin/redis-server"
SOCKET_PATH = "/ws/administration/service"
RUNNER = "Node Message Cleanup"


class PrivateRedis:
    """A throw-away redis-server on 127.0.0.1:`port`, without persistence, killed and restarted by the test."""

    def __init__(self, folder: Path, port: int) -> None:
        self.folder, self.port = folder, port
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--bind", HOST, "--port", str(self.port), "--save", "", "--appendonly", "no",
             "--dir", str(self.folder)], stdout=(self.folder / "redis.log").open("ab"), stderr=subprocess.STDOUT)

        def accepts() -> bool:
            assert self.process.poll() is None, (self.folder / "redis.log").read_text()
            with socket.socket() as probe:
                return probe.connect_ex((HOST, self.port)) == 0

        wait_for(accepts, what="redis-server to listen")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    if not Path(REDIS_SERVER).exists():
        pytest.skip(f"{REDIS_SERVER} is not installed")
    server = PrivateRedis(tmp_path, free_port())
    server.start()
    try:
        yield server
    finally:
        server.kill()


def _reindex(browser: Browser) -> None:
    status, _, body = browser.post_form(f"/feeds/{FEED}/", f"/feeds/{FEED}/reindex")
    assert status == 302, body


def _run_and_watch(ws: MiniWebSocket, request_id: int) -> None:
    """Run RUNNER from the page and see its reply and a live runner event come back on the same socket."""
    ws.send_json({"action": "run", "runner": RUNNER, "id": request_id})
    reply = ws.until(lambda m: m["type"] in ("reply", "error"), timeout=10)
    assert reply["type"] == "reply" and reply["id"] == request_id, reply
    ws.until(lambda m: m["type"] == "events" and any(e["type"] == "runner" and e["name"] == RUNNER
                                                      for e in m["events"]), timeout=10)


def test_a_redis_restart_keeps_live_viewers_and_loses_no_trigger(
    node: Path, redis: PrivateRedis,
) -> None:
    data = node
    env = {"REDIS_URL": f"redis://{HOST}:{redis.port}/0"}
    service = ServiceProcess(data).start()
    daphne, port = start_daphne(data, log=data / "daphne.log", **env)
    try:
        browser = Browser(port)
        browser.login(ADMIN, PASSWORD)
        ws = browser.websocket(SOCKET_PATH)
        ws.until(lambda m: m["type"] == "snapshot" and m["snapshot"])
        _run_and_watch(ws, 1)
        _reindex(browser)

        redis.kill()
        _reindex(browser)  # HTTP does not need the channel layer
        redis.start()
        _reindex(browser)
        _run_and_watch(ws, 2)  # the same socket: status viewers do not depend on the channel layer
        assert browser.request("GET", "/health")[0] == 200
        ws.close()
        # Three reindexes and two Runs from the page (a Run is a durable trigger too).
        wait_for(lambda: [state for _, state, _ in trigger_rows(data)] == ["done"] * 5, timeout=30,
                 what="the three reindexes and two runs to run, once each")
    finally:
        stop(daphne)
        service.stop()
