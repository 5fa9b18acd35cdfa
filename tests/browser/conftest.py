"""Real-browser fixtures: a real `runindexer` and a real daphne on free ports in a temp data dir, driven by
Playwright through Debian's chromium (/usr/bin/chromium; Playwright's own browser download is not used).

Without chromium or the playwright package these tests skip, unless PROGET_REQUIRE_SERVICES=1 (CI): then they fail.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.processes import ROOT, ServiceProcess, migrate, shell, start_daphne, stop

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # the `_browser_available` fixture below skips (or, in CI, fails) every test
    expect = sync_playwright = None

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = Path("/usr/bin/chromium")
# The network is closed here: background networking makes chromium hang on lookups.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]
HOST = "127.0.0.1"
ADMIN = "admin"
PASSWORD = "browser-test-pw"
SERVICE_NODE = "browser-service"
WEB_NODE = "browser-web"
ARTIFACTS = ROOT / "test-artifacts"
SLOW_RUNNER = "tests.indexer.slow_runner.SlowRunner"


def _browser_missing() -> str | None:
    if sync_playwright is None:
        return "the playwright package is not installed (pip install -r requirements.txt)"
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    return None


@pytest.fixture(scope="session", autouse=True)
def _browser_available() -> None:
    """Skip the browser suite with the reason, or fail it in CI (PROGET_REQUIRE_SERVICES=1)."""
    missing = _browser_missing()
    if missing is None:
        return
    if os.environ.get("PROGET_REQUIRE_SERVICES") == "1":
        pytest.fail(f"browser tests required (PROGET_REQUIRE_SERVICES=1) but {missing}", pytrace=False)
    pytest.skip(f"browser tests skipped: {missing}")


@dataclass
class Stack:
    """One web node (daphne) and one service node (runindexer) sharing a data dir."""

    data_dir: Path
    service: ServiceProcess
    web: subprocess.Popen
    port: int

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def service_log(self) -> str:
        return self.service.log.read_text(errors="replace")

    def web_log(self) -> str:
        return (self.data_dir / "daphne.log").read_text(errors="replace")


@pytest.fixture(scope="session")
def template_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated data dir with the admin user; each stack starts from a copy (one migrate per session)."""
    data_dir = tmp_path_factory.mktemp("browser-template")
    migrate(data_dir)
    shell(data_dir, "from django.contrib.auth.models import User; "
                    f"User.objects.create_superuser({ADMIN!r}, 'admin@example.com', {PASSWORD!r})")
    return data_dir


def _start_web(data_dir: Path) -> tuple[subprocess.Popen, int]:
    return start_daphne(data_dir, log=data_dir / "daphne.log", PROGET_NODE_NAME=WEB_NODE)


@pytest.fixture(scope="module")
def stack(request: pytest.FixtureRequest, template_data_dir: Path, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[Stack]:
    """A running service + web node for one test module, on a copy of the template data dir.

    The service loads the slow test runner ("Test Slow": 10 progress steps over 3 s) next to the built-in ones.
    """
    name = re.sub(r"\W+", "-", request.module.__name__.rsplit(".", 1)[-1])
    data_dir = tmp_path_factory.mktemp(name) / "data"
    shutil.copytree(template_data_dir, data_dir)
    service = ServiceProcess(
        data_dir, PROGET_NODE_NAME=SERVICE_NODE, PROGET_EXTRA_RUNNERS=SLOW_RUNNER,
        PROGET_TEST_RUN_LOG=str(data_dir / "slow-runs.log"), PROGET_TEST_RUN_SECONDS="3",
    ).start()
    web = None
    try:
        web, port = _start_web(data_dir)
        yield Stack(data_dir=data_dir, service=service, web=web, port=port)
    finally:
        if web is not None:
            stop(web)
        if service.process is not None and service.process.poll() is None:
            service.stop(signal.SIGTERM)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # Module scope, not session: Playwright's sync API keeps an event loop running in this thread while it
    # is started, and every later test that calls asyncio.run() would fail.
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=30_000)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser context (no cookies) and page; an uncaught JavaScript error fails the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB", timezone_id="UTC")
    page = context.new_page()
    page.set_default_timeout(10_000)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield page
        assert not errors, f"JavaScript errors on the page: {errors}"
    finally:
        context.close()


def create_user(stack: Stack, username: str, *, groups: tuple[str, ...] = ()) -> None:
    """A plain (not staff, not superuser) user with the suite's password, in the named existing groups."""
    shell(stack.data_dir, "from django.contrib.auth.models import Group, User; "
                          f"user = User.objects.create_user({username!r}, password={PASSWORD!r}); "
                          f"user.groups.set([Group.objects.get(name=name) for name in {groups!r}])")


def login(page: Page, stack: Stack, *, then: str, username: str = ADMIN) -> None:
    """Log in as `username` (the admin by default) through the login form, landing on `then`."""
    page.goto(f"{stack.url}/accounts/login/?next={then}")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name="Log in").click()
    assert page.url == f"{stack.url}{then}", f"login did not land on {then}: {page.url}"


def screenshot(page: Page, name: str, *, publish: Path | None = None) -> Path:
    """A full-page PNG in test-artifacts/; also to `publish` (a committed image) when that file is missing or
    PROGET_UPDATE_SCREENSHOTS=1, so an ordinary test run does not rewrite a tracked file."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    if publish is not None and (not publish.exists() or os.environ.get("PROGET_UPDATE_SCREENSHOTS") == "1"):
        publish.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, publish)
    return path
