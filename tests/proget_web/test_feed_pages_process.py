"""The feed page end to end: a real `runindexer` and a real daphne, a browser-like client over HTTP.

Reindex with the service up runs at once and the page lists the indexed files; with the service down the
request is queued with the reason, and runs when the service is back (nothing lost).
"""
from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.feeds.builders import wheel
from tests.feeds.servers import pip_install
from tests.processes import ServiceProcess, manage, migrate, shell, start_daphne, stop, wait_for
from tests.web_clients import HOST, Browser

pytestmark = pytest.mark.slow

PASSWORD = "feed-pages-pw"
FEED = "main"
EVIL = "<svg onload=alert(1)>"  # no "/": it is a file name too


def _status_json(browser: Browser) -> dict:
    status, _, body = browser.request("GET", f"/feeds/{FEED}/status.json")
    assert status == 200, body
    return json.loads(body)


def _messages(page: str) -> list[str]:
    return [html.unescape(text).strip() for text in re.findall(r'<li class="message[^"]*"[^>]*>(.*?)</li>', page, re.S)]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    migrate(tmp_path)
    shell(tmp_path, "from django.contrib.auth.models import User; "
                    f"User.objects.create_superuser('admin', 'admin@example.com', {PASSWORD!r})")
    manage(tmp_path, "feeds", "create", FEED)
    folder = tmp_path / "packages" / FEED
    wheel(folder, "pkg-a", "1.0", requires_python=">=3.8")
    (folder / f"{EVIL}-1.0-py3-none-any.whl").write_bytes(b"not a zip archive")
    return tmp_path


@pytest.fixture
def daphne(data_dir: Path) -> Iterator[int]:
    process, port = start_daphne(data_dir, log=data_dir / "daphne.log")
    try:
        yield port
    finally:
        stop(process)


def _finished(browser: Browser, *, timeout: float) -> dict:
    """status.json once no trigger of the feed waits or runs (what feeds.js polls for)."""
    answers: list[dict] = []

    def done() -> bool:
        answers.append(_status_json(browser))
        return not answers[-1]["active"]

    wait_for(done, timeout=timeout, what="the reindex to finish")
    return answers[-1]


def test_reindex_from_the_page_runs_and_lists_the_files_and_survives_a_service_outage(
    data_dir: Path, daphne: int
) -> None:
    service = ServiceProcess(data_dir).start()
    try:
        browser = Browser(daphne)
        browser.login("admin", PASSWORD)
        assert browser.request("GET", f"/feeds/{FEED}/")[0] == 200
        # A new file, which only an index run after this point can list (the service indexed at start).
        wheel(data_dir / "packages" / FEED, "pkg-b", "2.0", requires_python=">=3.9")

        status, headers, _ = browser.post_form(f"/feeds/{FEED}/", f"/feeds/{FEED}/reindex")
        assert status == 302 and headers["Location"] == f"/feeds/{FEED}/"
        _, _, page = browser.request("GET", f"/feeds/{FEED}/")
        [message] = _messages(page)
        assert message in (f"Reindexing {FEED}: started.", f"Reindexing {FEED}: done."), message

        final = _finished(browser, timeout=30)
        assert final["triggers"][0]["state"] == "done", final
        assert final["triggers"][0]["requestedBy"] == "admin"
        assert final["lastIndexedAt"] is not None

        _, _, page = browser.request("GET", f"/feeds/{FEED}/")
        assert 'data-file="pkg_a-1.0-py3-none-any.whl"' in page and "&gt;=3.8" in page
        assert 'data-file="pkg_b-2.0-py3-none-any.whl"' in page and "&gt;=3.9" in page
        assert "1 file could not be indexed" in page and EVIL not in page
        assert "&lt;svg onload=alert(1)&gt;-1.0-py3-none-any.whl" in page
        assert 'data-active="false"' in page
        # Clicked Reindex after a file was copied into storage: pip installs it now.
        installed = pip_install(f"http://{HOST}:{daphne}", "pkg-b==2.0", target=data_dir / "site", feed=FEED)
        assert installed.returncode == 0, installed.stdout + installed.stderr

        # The service goes away: the request is queued with the reason, and nothing is lost.
        service.stop()
        started = time.monotonic()
        status, _, _ = browser.post_form(f"/feeds/{FEED}/", f"/feeds/{FEED}/reindex")
        assert status == 302 and time.monotonic() - started < 5
        _, _, page = browser.request("GET", f"/feeds/{FEED}/")
        [message] = _messages(page)
        assert message == (f"Reindexing {FEED}: queued. The service is not reachable right now; "
                           "the reindex starts as soon as it is back."), message
        assert 'data-active="true"' in page
        pending = _status_json(browser)
        assert pending["active"] is True and pending["triggers"][0]["state"] == "pending"

        service.start()
        final = _finished(browser, timeout=45)  # Trigger Dispatch's poll claims it
        assert [t["state"] for t in final["triggers"][:2]] == ["done", "done"], final
    finally:
        if service.process is not None and service.process.poll() is None:
            service.stop()
