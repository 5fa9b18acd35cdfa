"""A real web node stops cleanly on SIGTERM (systemd's stop, a deploy): exit code 0, promptly, also while it serves
Service Status viewers, whose consumers, status link and settings listener must all be ended before it exits."""
from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import pytest

from proget_web.status.routing import STATUS_SOCKET_PATH
from tests.processes import ServiceProcess, migrate, shell, start_daphne, stop
from tests.web_clients import Browser

pytestmark = pytest.mark.slow

PASSWORD = "shutdown-test-pw"
# The web node gives what it runs STOP_SECONDS (5) to end; a stop that hangs or crashes shows far from this.
STOP_SECONDS = 10


@pytest.mark.parametrize("viewers", [0, 2])
def test_sigterm_stops_the_web_node_with_exit_code_0(tmp_path: Path, viewers: int) -> None:
    migrate(tmp_path)
    shell(tmp_path, "from django.contrib.auth.models import User; "
                    f"User.objects.create_superuser('admin', 'admin@example.com', {PASSWORD!r})")
    service = ServiceProcess(tmp_path, PROGET_NODE_NAME="svc-stop").start()
    log = tmp_path / "daphne.log"
    daphne, port = start_daphne(tmp_path, log=log, PROGET_NODE_NAME="web-stop", PYTHONFAULTHANDLER="1")
    try:
        browser = Browser(port)
        browser.login("admin", PASSWORD)
        sockets = [browser.websocket(STATUS_SOCKET_PATH) for _ in range(viewers)]
        for ws in sockets:
            ws.until(lambda m: (m.get("link") or {}).get("status") == "connected")
        started = time.monotonic()
        code = stop(daphne, sig=signal.SIGTERM, timeout=STOP_SECONDS)
        assert code == 0, f"exit code {code}\n{log.read_text()[-3000:]}"
        assert time.monotonic() - started < STOP_SECONDS
        assert re.search(r"Killed \d+ pending application instances", log.read_text())  # its shutdown ran
        assert "Fatal Python error" not in log.read_text()
    finally:
        stop(daphne)
        service.stop()
