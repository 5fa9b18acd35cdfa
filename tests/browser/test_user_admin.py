"""Users and groups in a real browser: the admin follows the menu to Users, creates a user, puts them in Feed
Managers and grants a permission with the admin's own widgets (its JavaScript under the site's strict CSP), sees
what they hold in the list; the new user then logs in and reindexes a feed. The menu also leads to API keys, and
a boolean setting is switched off with its checkbox.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

from tests.browser.conftest import PASSWORD, Stack, expect, login, screenshot
from tests.processes import manage

if TYPE_CHECKING:
    from playwright.sync_api import ConsoleMessage, Page

pytestmark = [pytest.mark.browser, pytest.mark.slow]

FEED = "main"
NEW_USER = "freya"
FEED_MANAGERS = "Feed Managers"
STATUS_PERMISSION = "Administration | administration permission | Can view the Service Status and Cluster pages"


def _csp_violations(page: Page) -> list[str]:
    """Console reports of anything the Content-Security-Policy blocked on the page, collected from now on."""
    found: list[str] = []

    def record(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            found.append(message.text)

    page.on("console", record)
    return found


def _choose(page: Page, field: str, option: str) -> None:
    """Move `option` to the chosen side of a filter_horizontal widget (built by the admin's SelectFilter2.js)."""
    page.locator(f"#id_{field}_from").select_option(label=option)
    page.locator(f"#id_{field}_add").click()
    expect(page.locator(f"#id_{field}_to option", has_text=option)).to_have_count(1)


def test_admin_creates_a_feed_manager_who_can_then_reindex(page: Page, stack: Stack) -> None:
    manage(stack.data_dir, "feeds", "create", FEED)
    blocked = _csp_violations(page)
    login(page, stack, then="/feeds/")

    with page.expect_navigation():
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Users").click()
    expect(page.locator("#result_list")).to_contain_text("admin")
    page.get_by_role("link", name="Add user").click()
    page.get_by_label("Username:").fill(NEW_USER)
    page.get_by_label("Password:", exact=True).fill(PASSWORD)
    page.get_by_label("Password confirmation:").fill(PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(".messagelist")).to_contain_text(NEW_USER)

    _choose(page, "groups", FEED_MANAGERS)
    _choose(page, "user_permissions", STATUS_PERMISSION)
    with page.expect_navigation():
        page.get_by_role("button", name="Save", exact=True).click()
    row = page.locator("#result_list tr", has=page.get_by_role("link", name=NEW_USER, exact=True))
    expect(row).to_contain_text(FEED_MANAGERS)
    expect(row).to_contain_text("view_service_status, reindex_feed")  # direct, and through the group
    screenshot(page, "user-admin.png")
    assert blocked == [], f"the CSP blocked part of the admin: {blocked}"

    with page.expect_navigation():
        page.get_by_role("button", name="Log out").click()
    login(page, stack, then=f"/feeds/{FEED}/", username=NEW_USER)
    expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Users")).to_have_count(0)
    with page.expect_navigation():
        page.get_by_role("button", name="Reindex").click()
    expect(page.locator("li.message")).to_contain_text(re.compile(rf"^Reindexing {FEED}: "))


def test_admin_menu_reaches_api_keys_and_a_boolean_setting_is_a_checkbox(page: Page, stack: Stack) -> None:
    blocked = _csp_violations(page)
    login(page, stack, then="/feeds/")
    menu = page.get_by_role("navigation", name="Main")
    with page.expect_navigation():
        menu.get_by_role("link", name="API Keys").click()
    assert page.url == f"{stack.url}/administration/api-keys"

    with page.expect_navigation():
        menu.get_by_role("link", name="Advanced Settings").click()
    box = page.locator('tr[id="Feeds.AnonymousRead"]').get_by_role("checkbox")
    expect(box).to_be_checked()  # default true
    box.uncheck()
    with page.expect_navigation():
        page.locator('tr[id="Feeds.AnonymousRead"]').get_by_role("button", name="Save").click()
    expect(page.locator("li.message")).to_contain_text("Feeds.AnonymousRead changed (default → false)")
    expect(page.locator('tr[id="Feeds.AnonymousRead"]').get_by_role("checkbox")).not_to_be_checked()
    assert blocked == [], f"the CSP blocked part of a page: {blocked}"
