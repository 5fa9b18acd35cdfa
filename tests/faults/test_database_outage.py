"""The database locked or unreachable for a few seconds, under a real daphne and a real service node.

SQLite: another process holds an exclusive write lock; pages and /health keep answering, a trigger request waits
for the lock and is then stored and run exactly once. PostgreSQL: the nodes reach the server through a TCP proxy
the test cuts and restores; meanwhile the web answers 503 with the reason (JSON for the API, /health says which
part is down), accepts no trigger it cannot store, and afterwards everything works without a restart.
"""
from __future__ import annotations

import contextlib
import http.client
import json
import re
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from indexer.service import SETTINGS_POLL_SECONDS
from proget_web.unavailable import DATABASE_UNAVAILABLE, RETRY_AFTER_SECONDS
from tests.faults.support import ADMIN, FEED, PASSWORD, node_prepare, trigger_rows
from tests.processes import ServiceProcess, manage, start_daphne, stop, wait_for
from tests.web_clients import HOST, Browser

pytestmark = pytest.mark.slow

OUTAGE_SECONDS = 4.0
# Long enough that every periodic database use of the service node (the settings poll is the slowest) meets it.
PG_OUTAGE_SECONDS = SETTINGS_POLL_SECONDS + 1
# A page that only reads must not wait for the lock at all; this is slack for the loaded machine.
READ_DEADLINE = 2.0
PAGE = f"/feeds/{FEED}/"
REINDEX = f"/feeds/{FEED}/reindex"


@contextlib.contextmanager
def _nodes(data: Path, **env: str) -> Iterator[tuple[Browser, ServiceProcess]]:
    """The prepared node's service and daphne (on the database `env` names); a logged-in admin, and the service."""
    service = ServiceProcess(data, **env).start()
    daphne, port = start_daphne(data, log=data / "daphne.log", **env)
    try:
        browser = Browser(port)
        browser.login(ADMIN, PASSWORD)
        yield browser, service
    finally:
        stop(daphne)
        service.stop()


def _csrf(browser: Browser) -> str:
    status, _, page = browser.request("GET", PAGE)
    assert status == 200, page
    return re.search(rf'action="{REINDEX}".*?name="csrfmiddlewaretoken" value="([^"]+)"', page, re.S).group(1)


def _timed(browser: Browser, method: str, path: str, form: dict | None = None) -> tuple[int, str, float]:
    started = time.monotonic()
    status, _, body = browser.request(method, path, form, timeout=30)
    return status, body, time.monotonic() - started


def _hold_write_lock(database: Path, seconds: float, held: threading.Event) -> None:
    with sqlite3.connect(database, isolation_level=None, timeout=30) as db:
        db.execute("BEGIN EXCLUSIVE")
        held.set()
        time.sleep(seconds)
        db.execute("COMMIT")


def test_a_locked_sqlite_database_delays_writes_only_and_loses_or_doubles_nothing(node: Path) -> None:
    data = node
    with _nodes(data) as (browser, _):
        _lock_while_requesting(data, browser)
    log = (data / "daphne.log").read_text()
    assert not re.search(r'" 5\d\d ', log), log[-2000:]


def _lock_while_requesting(data: Path, browser: Browser) -> None:
    token = _csrf(browser)
    held = threading.Event()
    locker = threading.Thread(target=_hold_write_lock, args=(data / "proget.sqlite3", OUTAGE_SECONDS, held))
    locker.start()
    try:
        assert held.wait(10)
        locked_at = time.monotonic()
        for path in ("/health", PAGE, f"/pypi/{FEED}/simple/"):
            status, body, took = _timed(browser, "GET", path)
            assert status == 200 and took < READ_DEADLINE, (path, status, took, body[:300])
        status, body, _ = _timed(browser, "POST", REINDEX, {"csrfmiddlewaretoken": token})
        assert status == 302, body
        assert time.monotonic() - locked_at >= OUTAGE_SECONDS - 0.5, "the write did not wait for the lock"
    finally:
        locker.join()
    wait_for(lambda: [state for _, state, _ in trigger_rows(data)] == ["done"], timeout=30,
             what="the one trigger to run")


class CuttableProxy:
    """A TCP proxy on a free loopback port to `target`: `cut()` drops every connection and refuses new ones
    until `restore()`. Runs in daemon threads; `close()` stops it."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server((HOST, 0))
        self.port = self.listener.getsockname()[1]
        self.open = True
        self.sockets: set[socket.socket] = set()
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            if not self.open:
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.sockets |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            self._drop(source, sink)

    def _drop(self, *sockets: socket.socket) -> None:
        for sock in sockets:
            with self.lock:
                self.sockets.discard(sock)
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def cut(self) -> None:
        self.open = False
        with self.lock:
            live = list(self.sockets)
        self._drop(*live)

    def restore(self) -> None:
        self.open = True

    def close(self) -> None:
        self.cut()
        self.listener.close()


@pytest.fixture(scope="module")
def proxy(pg_database_url: str) -> Iterator[CuttableProxy]:
    parts = urlsplit(pg_database_url)
    cuttable = CuttableProxy((parts.hostname or HOST, parts.port or 5432))
    yield cuttable
    cuttable.close()


def _through(url: str, proxy: CuttableProxy) -> str:
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@{HOST}:{proxy.port}" if credentials else f"{HOST}:{proxy.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _json_get(browser: Browser, path: str) -> tuple[int, dict, dict]:
    """GET `path` in the browser's session, asking for JSON (as the feed page's script does)."""
    connection = http.client.HTTPConnection(HOST, browser.port, timeout=10)
    try:
        connection.request("GET", path, headers={"Accept": "application/json", "Cookie": browser.cookie_header()})
        response = connection.getresponse()
        return response.status, dict(response.headers.items()), json.loads(response.read())
    finally:
        connection.close()


def _pg_triggers(url: str) -> list[tuple[int, str]]:
    with psycopg.connect(url) as db:
        return db.execute("SELECT id, state FROM indexer_trigger ORDER BY id").fetchall()


def test_an_unreachable_postgresql_gets_503s_with_the_reason_and_everything_recovers_without_a_restart(
    tmp_path: Path, pg_database_url: str, proxy: CuttableProxy,
) -> None:
    env = {"DATABASE_URL": _through(pg_database_url, proxy)}
    node_prepare(tmp_path, **env)
    manage(tmp_path, "settings", "set", "Runners.ServiceHeartbeat.IntervalSeconds", "1", **env)
    with _nodes(tmp_path, **env) as (browser, service):
        _cut_while_requesting(browser, proxy)
        assert service.process.poll() is None, "the service node died of the outage"
        wait_for(lambda: [state for _, state in _pg_triggers(pg_database_url)] == ["done"], timeout=30,
                 what="exactly one trigger (the one accepted) to run")
        # The web node's background beat got its connection back on its own: it beats again, no request needed.
        with psycopg.connect(pg_database_url, autocommit=True) as db:
            restored = db.execute("SELECT now()").fetchone()[0]
            beat = "SELECT heartbeat_at FROM indexer_node WHERE kind = 'web'"
            wait_for(lambda: db.execute(beat).fetchone()[0] > restored, timeout=10, what="the web node to beat again")


def _cut_while_requesting(browser: Browser, proxy: CuttableProxy) -> None:
    token = _csrf(browser)
    assert browser.request("GET", "/health")[0] == 200
    proxy.cut()
    try:
        status, _, body = browser.request("GET", "/health")
        health = json.loads(body)
        # Who may read the details cannot be told with the database down: the status words only (reasons: the log).
        assert status == 503 and health == {"status": "Error", "database": {"status": "Error"},
                                            "serviceStatus": "Error"}, health
        status, headers, page = browser.request("GET", PAGE)
        assert status == 503 and DATABASE_UNAVAILABLE.capitalize() in page and "Traceback" not in page, page
        assert headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
        status, _, page = browser.request("POST", REINDEX, {"csrfmiddlewaretoken": token})
        assert status == 503, page
        status, _, answer = _json_get(browser, f"/feeds/{FEED}/status.json")
        assert status == 503 and answer == {"error": DATABASE_UNAVAILABLE}
        time.sleep(PG_OUTAGE_SECONDS)
    finally:
        proxy.restore()

    wait_for(lambda: browser.request("GET", "/health")[0] == 200, timeout=15, what="/health to recover")
    assert browser.request("GET", PAGE)[0] == 200
    status, _, page = browser.request("POST", REINDEX, {"csrfmiddlewaretoken": token})
    assert status == 302, page
