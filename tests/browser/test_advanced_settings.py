"""Advanced Settings in a real browser: a bad messenger endpoint is refused next to its field; a good one is saved,
the service node applies it live (the page shows the version it applied) and listens there without a restart."""
from __future__ import annotations

import re
import socket
import time
from typing import TYPE_CHECKING

import pytest

from tests.browser.conftest import HOST, SERVICE_NODE, Stack, expect, login, screenshot
from tests.processes import free_port

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PAGE = "/administration/advanced-settings"
ENDPOINT = "Service.MessengerEndpoint"
APPLY_DEADLINE = 15.0  # the nudge applies it at once; the 5 s version poll is the fallback


def setting_row(page: Page, name: str) -> Locator:
    return page.locator(f'tr[id="{name}"]')


def save(page: Page, name: str, value: str) -> None:
    row = setting_row(page, name)
    row.locator('input[name="value"]').fill(value)
    with page.expect_navigation():
        row.get_by_role("button", name="Save").click()


def settings_version(page: Page) -> int:
    text = page.locator("#nodes p").first.inner_text()
    return int(re.search(r"Current settings version: (\d+)", text).group(1))


def accepts_tcp(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex((HOST, port)) == 0


def test_messenger_endpoint_refused_then_applied_live(page: Page, stack: Stack) -> None:
    login(page, stack, then=PAGE)
    pid = stack.service.process.pid

    # Refused: the error sits next to the field, the typed value is kept, nothing is saved.
    version = settings_version(page)
    save(page, ENDPOINT, "http://nope")
    row = setting_row(page, ENDPOINT)
    error = row.locator(".field-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("tcp://")
    expect(row).to_have_class(re.compile(r"\bhas-error\b"))
    expect(row.locator('input[name="value"]')).to_have_value("http://nope")
    expect(row.locator('input[name="value"]')).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_role("alert").filter(has_text="Nothing was saved")).to_be_visible()
    expect(page.locator("li.message.success")).to_have_count(0)
    assert settings_version(page) == version

    # Accepted: the success message, a new settings version, and the service node applies it.
    port = free_port()
    endpoint = f"tcp://{HOST}:{port}"
    save(page, ENDPOINT, endpoint)
    expect(page.locator("li.message.success")).to_contain_text(f"{ENDPOINT} changed")
    expect(page.locator("li.message.success")).to_contain_text(endpoint)
    expect(setting_row(page, ENDPOINT).locator("td.current")).to_contain_text(endpoint)
    new_version = settings_version(page)
    assert new_version > version

    node = page.locator(f'#nodes tr[data-node="{SERVICE_NODE}"]')
    deadline = time.monotonic() + APPLY_DEADLINE
    while True:
        cells = node.locator("td")
        if (cells.nth(1).inner_text() == "service" and cells.nth(2).inner_text() == str(new_version)
                and cells.nth(4).inner_text() == "applied"):
            break
        assert time.monotonic() < deadline, (
            f"the service node did not show settings version {new_version} applied: "
            f"{node.inner_text()!r}\n{stack.service_log()}")
        time.sleep(0.5)
        page.reload()
    expect(node.locator(".tag.ok")).to_have_text("applied")
    expect(node.locator("time")).to_be_visible()  # "applied at"

    # Proof on the wire: the same service process now listens on the TCP port, its Unix socket is gone.
    assert accepts_tcp(port), f"nothing listens on {endpoint}\n{stack.service_log()}"
    assert not stack.service.socket.exists()
    assert stack.service.process.pid == pid and stack.service.process.poll() is None
    log = stack.service_log()
    assert "messenger moved from" in log and "restarting in place" not in log, log

    screenshot(page, "advanced-settings.png")


def test_an_endpoint_whose_port_is_taken_is_shown_refused_and_status_stays_live(page: Page, stack: Stack) -> None:
    login(page, stack, then=PAGE)
    with socket.socket() as other:  # another program holds the port
        other.bind((HOST, 0))
        other.listen()
        taken = f"tcp://{HOST}:{other.getsockname()[1]}"
        save(page, ENDPOINT, taken)
        banner = page.locator("li.message.warning")
        expect(banner).to_contain_text(f"the service refused it: cannot listen on {taken}")
        expect(banner).not_to_contain_text("applies it now")
        node = page.locator(f'#nodes tr[data-node="{SERVICE_NODE}"]')
        expect(node.locator(".tag.bad")).to_have_text("refused")
        expect(node.locator(".apply-problem")).to_contain_text(f"cannot listen on {taken}")
        screenshot(page, "advanced-settings-refused.png")

        # The web node stays where the service really serves: the Status page is live.
        page.goto(f"{stack.url}/administration/service")
        expect(page.locator('[data-field="page-state"]')).to_have_text("live", timeout=15_000)
