"""Saving an endpoint the service cannot bind, end to end: a real `runindexer`, a real daphne and a port taken by
another program. The service refuses with its reason, the registry and the Advanced Settings page say so, and the
web node stays on the endpoint the service really serves (Status and /health keep reaching it)."""
from __future__ import annotations

import contextlib
import html
import json
import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from proget_web.status.routing import STATUS_SOCKET_PATH
from tests.processes import ServiceProcess, manage, migrate, shell, start_daphne, stop, wait_for
from tests.web_clients import HOST, Browser

pytestmark = pytest.mark.slow

PASSWORD = "apply-test-pw"
ENDPOINT = "Service.MessengerEndpoint"
SERVICE = "svc-apply"
PAGE = "/administration/advanced-settings"


def _service_row(data_dir: Path) -> dict:
    with contextlib.closing(sqlite3.connect(data_dir / "proget.sqlite3", timeout=10)) as db:
        db.row_factory = sqlite3.Row
        row = db.execute("SELECT * FROM indexer_node WHERE name = ?", (SERVICE,)).fetchone()
        return dict(row) if row else {}


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port another program listens on."""
    with socket.socket() as other:
        other.bind((HOST, 0))
        other.listen()
        yield other.getsockname()[1]


def test_an_endpoint_the_service_cannot_bind_is_reported_refused_and_the_web_stays_on_the_served_one(
    tmp_path: Path, taken_port: int
) -> None:
    migrate(tmp_path)
    shell(tmp_path, "from django.contrib.auth.models import User; "
                    f"User.objects.create_superuser('admin', 'admin@example.com', {PASSWORD!r})")
    service = ServiceProcess(tmp_path, PROGET_NODE_NAME=SERVICE).start()
    daphne, port = start_daphne(tmp_path, log=tmp_path / "daphne.log", PROGET_NODE_NAME="web-apply")
    try:
        wait_for(lambda: bool(_service_row(tmp_path)), what="the service to register")
        browser = Browser(port)
        browser.login("admin", PASSWORD)
        ws = browser.websocket(STATUS_SOCKET_PATH)  # an open Status page: its link must not leave the service
        ws.until(lambda m: (m.get("link") or {}).get("status") == "connected")
        wanted = f"tcp://{HOST}:{taken_port}"
        status, headers, _ = browser.post_form(PAGE, PAGE, {"name": ENDPOINT, "value": wanted})
        assert status == 302, headers

        # The registry: the service applied the new settings version, and refused the endpoint with its reason.
        row = _service_row(tmp_path)
        assert row["settings_result"] == "refused", row
        assert f"cannot listen on {wanted}" in row["settings_problem"]
        assert "staying on pipe://messenger" in row["settings_problem"]
        assert row["refused_endpoint"] == wanted and row["serves_endpoint"] == "pipe://messenger"

        # The page: the banner does not claim success, and the service's row shows the refusal with the reason.
        status, _, page = browser.request("GET", PAGE)
        text = html.unescape(page)
        assert status == 200
        assert "the service applies it now" not in text
        assert f"the service refused it: cannot listen on {wanted}" in text
        assert f'data-node="{SERVICE}"' in page and "refused" in text

        # The web node follows what the service serves: the CLI and the health check still reach it.
        ping = manage(tmp_path, "messenger", "ping", "--timeout", "3", check=False)
        assert ping.returncode == 0 and f"pong from {SERVICE}" in ping.stdout, ping.stdout + ping.stderr
        status, _, body = browser.request("GET", "/health")
        assert json.loads(body)["serviceStatus"] == "OK", body
        # The Status page's link re-reads the settings at each push and poll, and stays on the served endpoint.
        for _ in range(3):
            link = ws.until(lambda m: m["type"] == "link")["link"]
            assert (link["status"], link["endpoint"]) == ("connected", "pipe://messenger"), link
        ws.close()
        assert service.process.poll() is None
    finally:
        stop(daphne)
        service.stop()


def test_a_refused_endpoint_is_taken_up_by_itself_once_its_port_is_free(tmp_path: Path) -> None:
    migrate(tmp_path)
    service = ServiceProcess(tmp_path, PROGET_NODE_NAME=SERVICE).start()
    other = socket.socket()
    try:
        other.bind((HOST, 0))
        other.listen()
        wanted = f"tcp://{HOST}:{other.getsockname()[1]}"
        wait_for(lambda: bool(_service_row(tmp_path)), what="the service to register")
        manage(tmp_path, "settings", "set", ENDPOINT, wanted)
        wait_for(lambda: _service_row(tmp_path)["refused_endpoint"] == wanted, what="the service to refuse it")

        other.close()  # the other program stops: the admin's endpoint can be served now, without saving it again
        wait_for(lambda: _service_row(tmp_path)["serves_endpoint"] == wanted, timeout=20,
                 what="the service to move to the freed port")
        row = _service_row(tmp_path)
        assert (row["settings_result"], row["refused_endpoint"], row["settings_problem"]) == ("ok", "", ""), row
        ping = manage(tmp_path, "messenger", "ping", "--timeout", "3", check=False)
        assert ping.returncode == 0 and f"pong from {SERVICE}" in ping.stdout, ping.stdout + ping.stderr
        assert f"{wanted} is free now" in service.log.read_text()
    finally:
        other.close()
        service.stop()
