"""The feed page at scale: one row per file, paged and searchable on the server, the pip line once, and what a
plain user does not see (the Reindex card, server paths)."""
# ruff: noqa: F401, F811
from __future__ import annotations

import re

import pytest
from django.test import Client

from feeds.models import Feed, PackageFile
from proget_web.feedpages.selectors import FILES_PER_PAGE

# The fixtures of the feed page tests, imported to be used by name (hence F401/F811 below).
from tests.proget_web.test_feed_pages import FEED, _client, _page, _user, admin, feed, packages_root, settings_admin

pytestmark = pytest.mark.django_db

PIP_LINE = "pip install --index-url http://testserver/pypi/main/simple/"


def _files(feed: Feed, count: int, *, project: str = "pkg") -> list[str]:
    """`count` servable files of `project`, named so that their order is their number."""
    names = [f"{project.replace('-', '_')}-1.{number:05d}-py3-none-any.whl" for number in range(count)]
    PackageFile.objects.bulk_create(
        PackageFile(feed=feed, filename=name, project=project, version=f"1.{number}")
        for number, name in enumerate(names))
    return names


def _listed(page: str) -> list[str]:
    return re.findall(r'<tr data-file="([^"]+)"', page)


@pytest.fixture
def plain_user_client() -> Client:
    return _client(_user("paula"))


def test_each_file_is_one_row_and_the_pip_line_appears_once(plain_user_client: Client, feed: Feed) -> None:
    _files(feed, 3, project="alpha")
    _files(feed, 2, project="beta")
    page = _page(plain_user_client.get(f"/feeds/{FEED}/"))
    rows = re.findall(r'<tr data-file="[^"]+"[^>]*>(.*?)</tr>', page, re.S)
    assert len(rows) == 5
    assert all(row.count("<td") == 6 for row in rows)  # project, file, version, python, size, uploaded
    assert page.count(PIP_LINE) == 1
    assert 'class="project-row"' not in page


def test_the_second_page_shows_the_next_files(plain_user_client: Client, feed: Feed) -> None:
    names = _files(feed, FILES_PER_PAGE + 5)
    first = _page(plain_user_client.get(f"/feeds/{FEED}/"))
    second = _page(plain_user_client.get(f"/feeds/{FEED}/?page=2"))
    assert _listed(first) == names[:FILES_PER_PAGE]
    assert _listed(second) == names[FILES_PER_PAGE:]
    assert "Page 2 of 2" in second and 'href="?page=1"' in second
    assert f"{FILES_PER_PAGE + 5} files" in first


def test_q_filters_by_project_name_and_paging_keeps_it(plain_user_client: Client, feed: Feed) -> None:
    _files(feed, 3, project="alpha")
    beta = _files(feed, FILES_PER_PAGE + 1, project="beta-tools")
    _files(feed, 2, project="gamma")
    page = _page(plain_user_client.get(f"/feeds/{FEED}/", {"q": "Beta_Tools"}))  # matched as a normalised name
    assert _listed(page) == beta[:FILES_PER_PAGE]
    assert 'value="Beta_Tools"' in page
    assert f"{FILES_PER_PAGE + 1} files in projects matching “Beta_Tools”" in page and 'href="?">Show all files' in page
    assert 'href="?q=Beta_Tools&amp;page=2"' in page
    assert _listed(_page(plain_user_client.get(f"/feeds/{FEED}/", {"q": "beta", "page": "2"}))) == beta[FILES_PER_PAGE:]
    nothing = _page(plain_user_client.get(f"/feeds/{FEED}/", {"q": "zzz"}))
    assert _listed(nothing) == [] and "No project matches" in nothing


@pytest.mark.parametrize("page_number", ["0", "-1", "abc", "999999", "1e9", "9" * 40, ""])
def test_a_bad_page_number_is_never_a_500(plain_user_client: Client, feed: Feed, page_number: str) -> None:
    names = _files(feed, 3)
    response = plain_user_client.get(f"/feeds/{FEED}/", {"page": page_number})
    assert response.status_code == 200
    assert _listed(_page(response)) == names


def test_the_listing_runs_a_bounded_number_of_queries(
        plain_user_client: Client, feed: Feed, django_assert_max_num_queries) -> None:
    _files(feed, FILES_PER_PAGE * 3)
    plain_user_client.get(f"/feeds/{FEED}/")  # the process's first request also registers the web node
    with django_assert_max_num_queries(12):
        plain_user_client.get(f"/feeds/{FEED}/?page=2")


def test_a_plain_user_sees_no_reindex_card_and_no_server_paths(plain_user_client: Client, feed: Feed) -> None:
    feed.drop_path = "/srv/drop/main"
    feed.save()
    page = _page(plain_user_client.get(f"/feeds/{FEED}/"))
    assert 'id="feed-reindex-heading"' not in page
    assert str(feed.storage_path) not in page and "/srv/drop/main" not in page
    assert "Storage" not in page and "Drop path" not in page


@pytest.mark.parametrize("who", ["admin", "settings_admin"])
def test_an_administrator_sees_the_reindex_card_and_the_paths(
        request: pytest.FixtureRequest, feed: Feed, who: str) -> None:
    feed.drop_path = "/srv/drop/main"
    feed.save()
    page = _page(request.getfixturevalue(who).get(f"/feeds/{FEED}/"))
    assert str(feed.storage_path) in page and "/srv/drop/main" in page
    if who == "admin":  # a superuser holds reindex_feed; change_settings alone does not
        assert 'id="feed-reindex-heading"' in page


def test_a_feed_manager_sees_the_reindex_card_but_no_paths(feed: Feed) -> None:
    page = _page(_client(_user("manfred", groups=("Feed Managers",))).get(f"/feeds/{FEED}/"))
    assert 'id="feed-reindex-heading"' in page
    assert str(feed.storage_path) not in page
