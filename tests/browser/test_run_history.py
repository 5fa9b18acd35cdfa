"""The run history in a real browser: from the Service Status page's runner row to the runner's history, then to
one run's own log lines."""
from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import quote

import pytest

from tests.browser.conftest import Stack, create_user, expect, login, screenshot
from tests.browser.test_service_status import CLEANUP, open_status, runner_row

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_status_page_to_a_runners_history_to_a_runs_log(page: Page, stack: Stack) -> None:
    open_status(page, stack)
    row = runner_row(page, CLEANUP)
    expect(row).to_contain_text("ok", timeout=15_000)  # its first run (due at the service's start) has ended

    row.get_by_role("link", name=CLEANUP).click()
    expect(page).to_have_url(f"{stack.url}/administration/service/runners/{quote(CLEANUP)}/history")
    expect(page.get_by_role("heading", level=1)).to_have_text(f"{CLEANUP}: run history")
    newest = page.locator("table.runs tbody tr").first
    expect(newest).to_contain_text("schedule")
    expect(newest.locator("time")).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$"))

    screenshot(page, "run-history.png")

    newest.get_by_role("link", name=re.compile(r"^#\d+$")).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(re.compile(rf"^{CLEANUP}: run #\d+$"))
    log = page.get_by_role("list", name="Log of this run")
    expect(log.locator(".log-message").first).to_have_text(f"task runner {CLEANUP} started")
    expect(log.locator(".log-message").last).to_have_text(
        re.compile(rf"^task runner {CLEANUP} finished: deleted 0 finished trigger\(s\)"))
    screenshot(page, "run-history-run.png")

    page.get_by_role("link", name=f"← {CLEANUP}: run history").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"{CLEANUP}: run history")


def test_the_history_needs_the_status_pages_permission(page: Page, stack: Stack) -> None:
    create_user(stack, "history-nobody")
    login(page, stack, then="/", username="history-nobody")
    page.goto(f"{stack.url}/administration/service/runners/{quote(CLEANUP)}/history")
    expect(page.get_by_text("You can't open this page")).to_be_visible()
