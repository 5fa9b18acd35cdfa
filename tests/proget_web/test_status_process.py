"""The Service Status page end to end: a real `runindexer` and a real daphne, a browser-like client over HTTP and
WebSocket. The service is SIGKILLed and restarted while the page's socket stays open."""
from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.processes import ServiceProcess, migrate, shell, start_daphne, stop
from tests.web_clients import Browser

pytestmark = pytest.mark.slow

PASSWORD = "status-test-pw"
RUNNER = "Node Message Cleanup"
# A page render must not wait for the service (the messenger is non-essential).
PAGE_DEADLINE = 2.0


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    migrate(tmp_path)
    shell(tmp_path, "from django.contrib.auth.models import User; "
                    f"User.objects.create_superuser('admin', 'admin@example.com', {PASSWORD!r})")
    return tmp_path


@pytest.fixture
def daphne(data_dir: Path) -> Iterator[int]:
    process, port = start_daphne(data_dir, log=data_dir / "daphne.log")
    try:
        yield port
    finally:
        stop(process)


def test_the_page_follows_the_service_through_a_crash_and_a_restart(data_dir: Path, daphne: int) -> None:
    service = ServiceProcess(data_dir).start()
    try:
        browser = Browser(daphne)
        browser.login("admin", PASSWORD)
        status, _, page = browser.request("GET", "/administration/service")
        assert status == 200 and 'data-socket-path="/ws/administration/service"' in page

        ws = browser.websocket("/ws/administration/service")
        first = ws.receive_json(10)
        assert first["type"] == "snapshot" and first["canControl"] is True
        full = first if first["snapshot"] else ws.until(lambda m: m["type"] == "snapshot" and m["snapshot"])
        assert RUNNER in full["snapshot"]["runners"]
        assert full["snapshot"]["service"]["fingerprint"]

        # A live event: run a runner from the page and watch its state stream back.
        ws.send_json({"action": "run", "runner": RUNNER, "id": 1})
        reply = ws.until(lambda m: m["type"] in ("reply", "error"))
        assert reply["type"] == "reply" and reply["id"] == 1, reply
        ws.until(lambda m: m["type"] == "events" and any(
            e["type"] == "runner" and e["name"] == RUNNER and e["lastStartedAt"] for e in m["events"]))

        service.kill()
        down = ws.until(lambda m: (m.get("link") or {}).get("status") == "unreachable", timeout=10)
        assert down["link"]["reason"]
        started = time.monotonic()
        status, _, _ = browser.request("GET", "/administration/service", timeout=PAGE_DEADLINE)
        assert status == 200 and time.monotonic() - started < PAGE_DEADLINE
        ws.send_json({"action": "pause", "runner": RUNNER})
        refused = ws.until(lambda m: m["type"] in ("reply", "error"))
        assert refused["type"] == "error" and refused["message"].startswith("service not reachable")
        ws.send_json({"action": "run", "runner": RUNNER, "id": 3})  # a durable trigger: queued, not refused
        queued = ws.until(lambda m: m["type"] in ("reply", "error"))
        assert queued["type"] == "reply" and queued["result"]["queued"] is True, queued

        service.start()
        back = ws.until(lambda m: m["type"] == "snapshot" and m["snapshot"], timeout=30)
        assert RUNNER in back["snapshot"]["runners"]
        # Same socket, no page reload: actions work again too.
        ws.send_json({"action": "run", "runner": RUNNER, "id": 2})
        reply = ws.until(lambda m: m["type"] in ("reply", "error"), timeout=10)
        assert reply["type"] == "reply" and reply["id"] == 2, reply
        assert back["link"]["fingerprintMatch"] is not False
        ws.close()
    finally:
        if service.process is not None and service.process.poll() is None:
            service.stop(signal.SIGTERM)
