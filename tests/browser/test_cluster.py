"""The Cluster page in a real browser: the service node is tagged primary; its own messenger endpoint is refused
next to the field when invalid, and clearing the field goes back to the Cluster page with a success message."""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

from tests.browser.conftest import SERVICE_NODE, WEB_NODE, Stack, expect, login, screenshot

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PAGE = "/administration/cluster"
BAD_ENDPOINT = "tcp://host:99999"  # a port past 65535


def node_row(page: Page, name: str) -> Locator:
    return page.locator(f'table.nodes tr[data-node="{name}"]')


def settings_version(page: Page) -> int:
    return int(re.search(r"settings version (\d+)", page.locator("main").inner_text()).group(1))


def test_primary_tag_and_a_node_endpoint_refused_then_cleared(page: Page, stack: Stack) -> None:
    login(page, stack, then=PAGE)
    service = node_row(page, SERVICE_NODE)
    role = service.locator("td").nth(1)
    expect(role.locator(".tag")).to_have_text("primary", timeout=15_000)
    expect(role.locator(".tag")).to_have_class(re.compile(r"\bok\b"))  # the lease is in force
    expect(page.locator("#lease strong")).to_have_text(SERVICE_NODE)
    web = node_row(page, f"{WEB_NODE} (web)")  # registered by the login's first request
    expect(web.locator("td").nth(1)).to_have_text("web")
    expect(web.get_by_role("link", name="change")).to_have_count(0)  # an endpoint of its own: service nodes only
    version = settings_version(page)

    with page.expect_navigation():
        service.get_by_role("link", name="change").click()
    assert page.url == f"{stack.url}{PAGE}/nodes/{SERVICE_NODE}/endpoint"
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Messenger endpoint of {SERVICE_NODE}")

    # Refused: the error next to the field, the typed value kept, still on the form, nothing saved.
    endpoint = page.get_by_label("Messenger endpoint of this node")
    endpoint.fill(BAD_ENDPOINT)
    with page.expect_navigation():
        page.get_by_role("button", name="Save").click()
    assert page.url == f"{stack.url}{PAGE}/nodes/{SERVICE_NODE}/endpoint"
    error = page.locator(".field-error")
    expect(error).to_be_visible()
    expect(error).to_have_attribute("role", "alert")
    expect(error).to_contain_text(f"(got '{BAD_ENDPOINT}': the port must be a number from 1 to 65535)")
    expect(endpoint).to_have_value(BAD_ENDPOINT)
    expect(endpoint).to_have_attribute("aria-invalid", "true")
    expect(page.locator("li.message.success")).to_have_count(0)
    screenshot(page, "cluster-endpoint-error.png")

    # Cleared: the cluster-wide endpoint stays in use, back on the Cluster page with a success message.
    endpoint.fill("")
    with page.expect_navigation():
        page.get_by_role("button", name="Save").click()
    assert page.url == f"{stack.url}{PAGE}"
    expect(page.locator("li.message.success")).to_have_text(f"The endpoint of {SERVICE_NODE} is unchanged.")
    expect(service.locator("td").nth(3).get_by_text("own endpoint")).to_have_count(0)
    expect(role.locator(".tag")).to_have_text("primary")
    assert settings_version(page) == version  # neither the refused value nor the blank changed a setting
    screenshot(page, "cluster.png")
