"""A feed's page in a real browser: a Feed Manager (not a superuser) clicks Reindex and watches the run wait,
run (progress bar) and complete live, the file list refreshing in place; a user without the permission has no
Reindex card and gets 403.

A run over a few wheels ends before the redirected page is even drawn, so the first test stops the service for
the click (the run visibly waits, "queued", until the service is back) and the second indexes a bigger feed.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from proget_web.feedpages.selectors import FILES_PER_PAGE
from tests.browser.conftest import Stack, create_user, expect, login, screenshot
from tests.feeds.builders import wheel
from tests.processes import manage

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

pytestmark = [pytest.mark.browser, pytest.mark.slow]

FEED = "main"
PAGE = f"/feeds/{FEED}/"
BIG = "big"
BIG_WHEELS = 1500  # ~2 s of indexing here; the page's first poll comes ~0.3 s in and finds it running
MANAGER = "manfred"  # in "Feed Managers": may reindex, may not edit settings
READER = "rita"  # in no group: may read the feed page only
WHEELS = {  # file name -> (project, version, Requires-Python)
    "pkg_a-1.0-py3-none-any.whl": ("pkg-a", "1.0", ">=3.8"),
    "pkg_a-1.1-py3-none-any.whl": ("pkg-a", "1.1", ">=3.9"),
    "pkg_b-2.0-py3-none-any.whl": ("pkg-b", "2.0", ""),
}
ACTIVE = "a reindex is waiting or running"  # as the server draws it, before feeds.js's first poll
QUEUED = "reindex queued: waiting for the service"
RUNNING = "reindexing…"
RESULT = "indexed 1 feed(s)"  # Feed Indexing, one feed named by the trigger
DONE = f"reindex done: {RESULT}"

# Records every distinct look of the reindex state line, with the progress bar's value and message while it shows,
# sampled in the page itself as it is parsed and then every 20 ms (an init script), so a short state is not missed.
RECORD_STATES = """document.addEventListener('DOMContentLoaded', () => {
  window.__states = [];
  const root = document.getElementById('feed-page');
  const field = name => root.querySelector(`[data-field="${name}"]`);
  let last = null;
  const sample = () => {
    const bar = field('progress-bar');
    const seen = JSON.stringify(field('progress').hidden
      ? [field('reindex-state').textContent, null, '']
      : [field('reindex-state').textContent, bar.hasAttribute('value') ? bar.value : -1,
         field('progress-message').textContent]);
    if (seen !== last) { window.__states.push(seen); last = seen; }
  };
  sample();  // the server-drawn state: feeds.js's first poll has been sent, but its answer cannot be in yet
  window.__statesTimer = setInterval(sample, 20);
});"""


@pytest.fixture(scope="module")
def feed_folder(stack: Stack) -> Path:
    """An empty feed, its Feed Manager and a reader; the test puts wheels in the folder when it needs them."""
    manage(stack.data_dir, "feeds", "create", FEED)
    create_user(stack, MANAGER, groups=("Feed Managers",))
    create_user(stack, READER)
    return stack.data_dir / "packages" / FEED


def field(page: Page, name: str) -> Locator:
    return page.locator(f'#feed-page [data-field="{name}"]')


def fact(page: Page, term: str) -> Locator:
    return page.locator("#feed-contents dt", has_text=term).locator("xpath=following-sibling::dd[1]")


def triggers(page: Page, stack: Stack) -> list[dict]:
    """The feed's recent triggers from status.json, asked with the page's session."""
    answer = page.request.get(f"{stack.url}/feeds/{FEED}/status.json")
    assert answer.status == 200, answer.text()
    return json.loads(answer.text())["triggers"]


def click_reindex(page: Page, stack: Stack, feed: str) -> list[str]:
    """Click Reindex (the form's POST, answered by a redirect back to the page), recording the states the page
    then shows; returns the list that collects any later navigation (from here on the page must not reload)."""
    page.add_init_script(RECORD_STATES)
    with page.expect_navigation():
        page.get_by_role("button", name="Reindex").click()
    assert page.url == f"{stack.url}/feeds/{feed}/"
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    return navigations


def recorded_states(page: Page) -> list[tuple[str, float | None, str]]:
    """What the page showed, in order: (state text, progress bar value or None while hidden, progress message)."""
    page.evaluate("clearInterval(window.__statesTimer)")
    return [tuple(json.loads(seen)) for seen in page.evaluate("window.__states")]


def texts(states: list[tuple[str, float | None, str]]) -> list[str]:
    """The state texts in order, each once (the bar moving under the same text is one state)."""
    return [state[0] for index, state in enumerate(states) if index == 0 or states[index - 1][0] != state[0]]


def test_feed_manager_reindexes_and_watches_it_wait_and_complete_without_reload(
    page: Page, stack: Stack, feed_folder: Path
) -> None:
    login(page, stack, then=PAGE, username=MANAGER)
    expect(page.locator("#feed-files .empty")).to_contain_text("No packages yet")
    expect(fact(page, "Last indexed")).to_have_text("never")
    expect(page.get_by_role("link", name="Edit")).to_have_count(0)  # reindex_feed only, not change_settings
    for project, version, requires_python in WHEELS.values():
        wheel(feed_folder, project, version, requires_python=requires_python)

    assert stack.service.stop() == 0, stack.service_log()
    navigations = click_reindex(page, stack, FEED)
    expect(page.locator("li.message")).to_contain_text(
        f"Reindexing {FEED}: queued. The service is not reachable right now; the reindex starts as soon as it is back.")
    expect(page.locator("#feed-page")).to_have_attribute("data-active", "true")
    expect(field(page, "reindex-state")).to_have_text(QUEUED)
    row = field(page, "triggers").locator("tr").first
    expect(row.locator(".trigger-state")).to_have_text("pending")
    expect(row.locator("td").nth(1)).to_have_text(MANAGER)
    page.evaluate("window.__samePage = 'still here'")
    expect(page.locator("li.message.queued")).to_have_count(1)  # still true after the polls so far

    stack.service.start()
    expect(field(page, "reindex-state")).to_have_text(DONE, timeout=45_000)  # the service's poll claims it
    expect(row.locator(".trigger-state")).to_have_text("done")
    expect(row.locator(".trigger-result")).to_have_text(RESULT)
    expect(page.locator("#feed-page")).to_have_attribute("data-active", "false")
    expect(field(page, "progress")).to_be_hidden()
    expect(page.locator(".messages")).to_have_count(0)  # "queued — not reachable" no longer holds

    # The file list, reloaded in place when the run ended: every wheel, one row each, with its project and metadata.
    files = page.locator("#feed-files tr[data-file]")
    expect(files).to_have_count(len(WHEELS))
    assert sorted(files.evaluate_all("rows => rows.map(row => row.dataset.file)")) == sorted(WHEELS)
    for filename, (project, version, requires_python) in WHEELS.items():
        cells = page.locator(f'#feed-files tr[data-file="{filename}"][data-project="{project}"] td')
        expect(cells.nth(0)).to_have_text(project)
        expect(cells.nth(2)).to_have_text(version)
        expect(cells.nth(3)).to_have_text(requires_python or "—")
    expect(fact(page, "Packages")).to_have_text("2 projects, 3 files")
    expect(fact(page, "Last indexed")).to_contain_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"))
    expect(page.locator("#feed-files .empty")).to_have_count(0)

    states = recorded_states(page)
    # The run itself is short: the page may or may not catch it running between two polls.
    assert texts(states) in ([ACTIVE, QUEUED, DONE], [ACTIVE, QUEUED, RUNNING, DONE]), states
    assert page.evaluate("window.__samePage") == "still here"
    assert navigations == [], f"the page navigated: {navigations}"
    screenshot(page, "feed-reindex.png")


def test_feed_manager_watches_the_progress_bar_of_a_longer_run(page: Page, stack: Stack, feed_folder: Path) -> None:
    manage(stack.data_dir, "feeds", "create", BIG)
    for number in range(BIG_WHEELS):
        wheel(stack.data_dir / "packages" / BIG, f"big-{number}", "1.0")
    login(page, stack, then=f"/feeds/{BIG}/", username=MANAGER)

    navigations = click_reindex(page, stack, BIG)
    expect(page.locator("li.message.success")).to_contain_text(
        re.compile(rf"^Reindexing {BIG}: (requested; it starts as soon as the indexer is free|started|done)\.$"))
    expect(field(page, "reindex-state")).to_have_text(DONE, timeout=60_000)
    expect(field(page, "progress")).to_be_hidden()
    expect(fact(page, "Packages")).to_have_text(f"{BIG_WHEELS} projects, {BIG_WHEELS} files")
    expect(page.locator("#feed-files tr[data-file]")).to_have_count(FILES_PER_PAGE)  # the first page of them

    states = recorded_states(page)
    assert texts(states) in ([ACTIVE, RUNNING, DONE], [ACTIVE, QUEUED, RUNNING, DONE]), states
    # A running state caught between two progress reports shows an indeterminate bar (no value, no message).
    running = [(value, message) for text, value, message in states if text == RUNNING and value is not None]
    values = [value for value, _ in running]
    assert values and values == sorted(values) and values[0] >= 0 and values[-1] <= 100, (
        f"while running, the bar should show a percentage that only grows: {states}")
    # Each file in turn ("big: big_7-1.0-py3-none-any.whl"), then "done" at 100 %.
    assert all(re.fullmatch(rf"{BIG}: big_\d+-1\.0-py3-none-any\.whl|done", message) for _, message in running), states
    assert navigations == [], f"the page navigated: {navigations}"


def test_user_without_reindex_permission_has_no_button_and_a_post_is_refused(
    page: Page, stack: Stack, feed_folder: Path
) -> None:
    login(page, stack, then=PAGE, username=READER)
    expect(page.get_by_role("heading", name="Reindex")).to_have_count(0)  # no empty card either
    expect(page.get_by_role("button", name="Reindex")).to_have_count(0)
    expect(page.locator("form.reindex-form")).to_have_count(0)
    before = triggers(page, stack)

    # The same POST the button would send, with the session and a valid CSRF token: refused by permission.
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    answer = page.request.post(f"{stack.url}/feeds/{FEED}/reindex", headers={"X-CSRFToken": token},
                               max_redirects=0)
    assert answer.status == 403, answer.text()
    assert "You can't open this page" in answer.text() and "administration.reindex_feed" in answer.text()
    assert triggers(page, stack) == before

