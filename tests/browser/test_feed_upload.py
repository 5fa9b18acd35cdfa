"""A feed's page in a real browser: an administrator uploads wheels through the page's file input and sees them
listed, a file that is not a package comes back with a clear message, and the search box narrows the list."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.browser.conftest import Stack, expect, login, screenshot
from tests.feeds.builders import wheel
from tests.processes import manage

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.browser, pytest.mark.slow]

FEED = "main"
PAGE = f"/feeds/{FEED}/"


@pytest.fixture(scope="module")
def feed(stack: Stack) -> str:
    manage(stack.data_dir, "feeds", "create", FEED)
    return FEED


def upload(page: Page, path: Path) -> None:
    """Choose `path` in the upload form and submit it (a multipart POST answered by a redirect to the page)."""
    page.get_by_label("Package file").set_input_files(str(path))
    with page.expect_navigation():
        page.get_by_role("button", name="Upload").click()


def test_admin_uploads_wheels_through_the_page_and_searches_them(
    page: Page, stack: Stack, feed: str, tmp_path: Path
) -> None:
    login(page, stack, then=PAGE)
    rows = page.locator("#feed-files tr[data-file]")
    built = [wheel(tmp_path, "alpha-tools", "1.0"), wheel(tmp_path, "beta-lib", "2.0")]
    for number, path in enumerate(built, start=1):
        upload(page, path)
        assert page.url == f"{stack.url}{PAGE}"
        expect(page.locator("li.message.success")).to_have_text(f"{path.name} uploaded to feed {FEED}.")
        expect(rows).to_have_count(number)
        expect(page.locator(f'#feed-files tr[data-file="{path.name}"]')).to_be_visible()

    notes = tmp_path / "notes.txt"
    notes.write_text("not a package")
    upload(page, notes)
    expect(page.locator("li.message.error")).to_have_text(
        "notes.txt not uploaded: notes.txt: not a Python package file (expected .whl, .tar.gz or .zip)")
    expect(rows).to_have_count(2)

    page.get_by_label("Search projects").fill("Beta_Lib")
    with page.expect_navigation():
        page.get_by_role("button", name="Search").click()
    assert page.url == f"{stack.url}{PAGE}?q=Beta_Lib"
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-file", built[1].name)
    screenshot(page, "feed-upload-search.png")
