"""The Service Status page in a real browser: live runners, progress and log over the page's WebSocket, log text
rendered inertly, the page following the service through a stop and a start without a reload, reconnecting
when its socket's lifetime is over, and going dead when its session logs out in another tab."""
from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING

import pytest

from messenger.crypto import generate_key, key_fingerprint, parse_key
from tests.browser.conftest import ROOT, Stack, expect, login, screenshot
from tests.processes import manage, shell, start_daphne, stop, wait_for

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

pytestmark = [pytest.mark.browser, pytest.mark.slow]

STATUS = "/administration/service"
BUILT_IN_RUNNERS = [
    "Feed Indexing", "Drop Path Monitor", "Feed Integrity", "Feed Retention", "Trigger Dispatch",
    "Service Heartbeat", "Node Message Cleanup",
]
SLOW = "Test Slow"
CLEANUP = "Node Message Cleanup"
XSS = "<script>window.__xss=1</script>"
TRIGGER_STATE = "from indexer.models import Trigger\nprint(Trigger.objects.get(id={}).state)"

# Records every distinct look of one runner's progress cell, sampled every 20 ms in the page itself, so a
# short-lived value is not missed between two round trips of the test.
RECORD_PROGRESS = """name => {
  window.__progress = [];
  const row = [...document.querySelectorAll('[data-field="runners"] tr')]
    .find(tr => tr.querySelector('.runner-name').textContent === name);
  let last = null;
  window.__progressTimer = setInterval(() => {
    const bar = row.querySelector('progress');
    const seen = bar.hidden ? 'hidden' : (bar.hasAttribute('value') ? String(bar.value) : 'indeterminate');
    if (seen !== last) { window.__progress.push(seen); last = seen; }
  }, 20);
}"""


def field(page: Page, name: str) -> Locator:
    return page.locator(f'#service-status [data-field="{name}"]')


def runner_row(page: Page, name: str) -> Locator:
    return field(page, "runners").locator("tr").filter(
        has=page.locator("td.runner-name", has_text=re.compile(rf"^{re.escape(name)}$")))


def log_messages(page: Page) -> Locator:
    return field(page, "log").locator(".log-message")


def open_status(page: Page, stack: Stack) -> None:
    login(page, stack, then=STATUS)
    expect(field(page, "state")).to_have_text("running", timeout=15_000)
    expect(field(page, "page-state")).to_have_text("live")


def test_live_runners_progress_and_log_without_reload(page: Page, stack: Stack) -> None:
    open_status(page, stack)
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))

    # The runner table is filled from the snapshot: every built-in runner and the test's slow one.
    for name in [*BUILT_IN_RUNNERS, SLOW]:
        expect(runner_row(page, name)).to_have_count(1)
    expect(field(page, "runners-empty")).to_be_hidden()
    expect(field(page, "node")).to_have_text("browser-service")

    # Run Node Message Cleanup: its log lines and its last-run cell arrive live.
    cleanup = runner_row(page, CLEANUP)
    last_before = cleanup.locator("td").nth(3).locator("div").first.inner_text()
    cleanup.get_by_role("button", name="Run").click()
    expect(field(page, "action-result")).to_contain_text(f"run {CLEANUP}")
    expect(field(page, "action-result")).to_have_class(re.compile(r"\bok\b"))
    expect(log_messages(page).filter(has_text=f"task runner {CLEANUP} finished")).not_to_have_count(0)
    expect(cleanup.locator("td").nth(3).locator("div").first).not_to_have_text(last_before)
    expect(cleanup.locator("td").nth(3)).to_contain_text("ok")

    # Run the slow runner (10 steps over 3 s): the progress bar visibly moves, then the last run says ok.
    slow = runner_row(page, SLOW)
    run = slow.get_by_role("button", name="Run")
    expect(run).to_be_enabled(timeout=15_000)  # its first run starts with the service
    slow_last_before = slow.locator("td").nth(3).locator("div").first.inner_text()
    page.evaluate(RECORD_PROGRESS, SLOW)
    run.click()
    expect(slow.locator("td").nth(1)).to_have_text("running")
    expect(slow.locator(".progress-text")).to_contain_text("step")
    expect(run).to_be_disabled()
    expect(slow.locator("td").nth(1)).to_have_text("idle", timeout=15_000)
    page.evaluate("clearInterval(window.__progressTimer)")
    seen = page.evaluate("window.__progress")
    values = [float(v) for v in seen if v not in ("hidden", "indeterminate")]
    assert len(set(values)) >= 3, f"the progress bar should have moved at least twice, it showed {seen}"
    assert values == sorted(values), f"progress went backwards: {seen}"
    assert seen[-1] == "hidden", f"the bar should hide when the run ends: {seen}"
    expect(slow.locator("td").nth(3).locator("div").nth(1)).to_have_text("ok")
    expect(slow.locator("td").nth(3).locator("div").first).not_to_have_text(slow_last_before)
    expect(slow.locator("td").nth(3)).to_contain_text(re.compile(r"took \d+\.\d s"))  # a 3 s run, not ms
    expect(log_messages(page).filter(has_text="test slow runner step 9")).not_to_have_count(0)
    expect(run).to_be_enabled()
    assert navigations == [], f"the page navigated: {navigations}"

    page.locator('#service-status [data-field="log"]').evaluate("list => { list.scrollTop = list.scrollHeight; }")
    screenshot(page, "service-status.png", publish=ROOT / "docs/images/service-status.png")


def test_log_text_from_the_service_is_not_markup(page: Page, stack: Stack) -> None:
    open_status(page, stack)
    # A trigger for a "runner" named like a script, written behind the core's back (which refuses unknown runners):
    # Trigger Dispatch fails it and logs the name in its reason.
    manage(stack.data_dir, "shell", "-c", "from indexer.triggers import trigger_create; "
                                          f"trigger_create(kind='runner.run', target={XSS!r}, requested_by='test')")

    line = log_messages(page).filter(has_text=XSS)
    expect(line.first).to_be_visible(timeout=15_000)  # the next Trigger Dispatch poll
    expect(line.first).to_contain_text(f"failed: unknown runner '{XSS}'")
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert field(page, "log").locator("script").count() == 0


def test_the_page_follows_the_service_through_a_stop_and_a_start(page: Page, stack: Stack) -> None:
    open_status(page, stack)
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    page.evaluate("window.__samePage = 'still here'")
    pid = stack.service.process.pid

    assert stack.service.stop() == 0, stack.service_log()
    expect(field(page, "state")).to_contain_text("not reachable", timeout=10_000)
    expect(field(page, "page-state")).to_have_text("service not reachable")
    expect(page.locator("#service-status")).to_have_class(re.compile(r"\bis-stale\b"))
    # Down means down: what the service last said stays, marked stale with when it was last seen; Pause and
    # Restart wait for it; Run is queued as a durable trigger and runs when the service is back.
    stale = re.compile(r"^stale — last seen \S")
    expect(field(page, "node-stale")).to_have_text(stale)
    expect(field(page, "uptime-stale")).to_have_text(stale)
    cleanup = runner_row(page, CLEANUP)
    expect(cleanup.locator(".stale-note")).to_have_text(stale)
    expect(cleanup.get_by_role("button", name="Pause")).to_be_disabled()
    expect(page.locator('#service-status button[data-action="restart"]')).to_be_disabled()
    cleanup.get_by_role("button", name="Run").click()
    expect(field(page, "action-result")).to_contain_text("queued — the service is not reachable")
    expect(cleanup.locator(".queued-note")).to_have_text(re.compile(r"^Run queued \(trigger \d+\): runs when"))
    queued = int(re.search(r"trigger (\d+)", cleanup.locator(".queued-note").inner_text()).group(1))
    cleanup.get_by_role("button", name="Run").click()
    expect(cleanup.locator(".queued-note")).to_have_text(re.compile(rf"^Run already queued \(trigger {queued}\)"))

    stack.service.start()
    assert stack.service.process.pid != pid
    expect(field(page, "state")).to_have_text("running", timeout=20_000)
    expect(field(page, "page-state")).to_have_text("live")
    expect(page.locator("#service-status")).not_to_have_class(re.compile(r"\bis-stale\b"))
    expect(runner_row(page, CLEANUP)).to_have_count(1)
    expect(field(page, "node-stale")).to_be_hidden()
    expect(cleanup.locator(".stale-note")).to_be_hidden()
    expect(cleanup.get_by_role("button", name="Pause")).to_be_enabled()
    # The queued Run (one trigger for the two clicks) ran once the service was back.
    wait_for(lambda: shell(stack.data_dir, TRIGGER_STATE.format(queued)) == "done", timeout=20,
             what="the queued Run to run")
    assert page.evaluate("window.__samePage") == "still here"
    assert navigations == [], f"the page navigated: {navigations}"


def test_logging_out_in_another_tab_ends_the_live_page(page: Page, stack: Stack) -> None:
    open_status(page, stack)
    other_tab = page.context.new_page()
    other_tab.goto(f"{stack.url}/")
    with other_tab.expect_navigation():
        other_tab.get_by_role("button", name="Log out").click()
    # The socket was closed with 4403: the page says so and stops retrying; its buttons reach nothing.
    expect(field(page, "page-state")).to_have_text("signed out or no permission — reload the page")
    runner_row(page, CLEANUP).get_by_role("button", name="Run").click()
    expect(field(page, "action-result")).to_contain_text("not connected to the web server")


def test_the_page_reconnects_when_its_sockets_lifetime_is_over(page: Page, stack: Stack) -> None:
    """A second web node on the same data dir whose sockets live 2 s: the page reconnects by itself and stays live."""
    web, port = start_daphne(stack.data_dir, log=stack.data_dir / "daphne-short-sockets.log",
                             PROGET_NODE_NAME="browser-web-short-sockets", PROGET_STATUS_SOCKET_LIFETIME_SECONDS="2")
    try:
        open_status(page, dataclasses.replace(stack, web=web, port=port))
        for _ in range(2):  # two lifetimes over, two new sockets
            with page.expect_websocket(timeout=10_000):
                pass
        expect(field(page, "page-state")).to_have_text("live")
        runner_row(page, CLEANUP).get_by_role("button", name="Run").click()
        expect(field(page, "action-result")).to_have_class(re.compile(r"\bok\b"))
    finally:
        stop(web)


def test_times_zone_log_filter_and_run_apart_from_pause_and_live_through_a_key_rotation(
    page: Page, stack: Stack
) -> None:
    open_status(page, stack)
    cleanup = runner_row(page, CLEANUP)
    # Times in the one format of every page, with the zone (not the browser's locale).
    expect(cleanup.locator("td").nth(4)).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$"))
    expect(field(page, "log").locator(".log-time").first).to_have_text(re.compile(r"^\d\d:\d\d:\d\d UTC$"))
    # The debug filter says what the service keeps.
    expect(field(page, "log-keeps")).to_contain_text("The service keeps and sends INFO and above")
    expect(page.locator('[data-field="log-level"] option[value="DEBUG"]')).to_have_text(
        "debug and above (none kept now)")
    # Run and Pause stand apart.
    run = cleanup.get_by_role("button", name="Run").bounding_box()
    pause = cleanup.get_by_role("button", name="Pause").bounding_box()
    assert pause["x"] - (run["x"] + run["width"]) >= 16, (run, pause)

    # A key rotation: the stream goes on over the old connection for the grace (60 s), so the page stays live.
    key = generate_key()
    manage(stack.data_dir, "settings", "set", "Service.MessengerKey", key)
    expect(field(page, "fingerprint")).to_have_text(key_fingerprint(parse_key(key)), timeout=15_000)
    expect(field(page, "page-state")).to_have_text("live", timeout=5_000)
