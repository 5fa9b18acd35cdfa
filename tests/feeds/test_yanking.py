"""PEP 592 yanking: the core functions (for the feed page) and the API; a yanked file stays listed, marked."""
from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from api_keys.keys import api_key_create
from feeds.indexing import feed_index
from feeds.models import Feed, PackageFile
from feeds.yanking import YankError, release_unyank, release_yank
from tests.feeds.builders import sdist_tar, wheel

pytestmark = pytest.mark.django_db

JSON = "application/vnd.pypi.simple.v1+json"
WHEEL = "pkg_a-1.0-py3-none-any.whl"
SDIST = "pkg_a-1.0.tar.gz"


@pytest.fixture
def indexed(feed: Feed) -> Feed:
    wheel(feed.storage, "pkg-a", "1.0")
    sdist_tar(feed.storage, "pkg-a", "1.0")
    wheel(feed.storage, "pkg-a", "2.0")
    feed_index(feed=feed)
    return feed


def token(*scopes: str) -> str:
    owner = User.objects.get_or_create(username="publisher")[0]
    owner.user_permissions.add(Permission.objects.get(codename="upload_package"))  # what a feeds:upload key needs
    return api_key_create(name="k", owner=owner, scopes=scopes).token


def json_files(client: Client) -> dict[str, dict]:
    page = client.get("/pypi/main/simple/pkg-a/", HTTP_ACCEPT=JSON).json()
    return {entry["filename"]: entry for entry in page["files"]}


def test_yanking_a_release_marks_all_its_files_in_both_forms_and_hides_none(client: Client, indexed: Feed) -> None:
    outcome = release_yank(feed=indexed, project="PKG_A", version="1.0.0", reason='broken <"import">', actor="t")
    assert sorted(outcome.filenames) == [WHEEL, SDIST] and outcome.project == "pkg-a"
    body = client.get("/pypi/main/simple/pkg-a/").content.decode()
    for name in (WHEEL, SDIST):
        assert 'data-yanked="broken &lt;&quot;import&quot;&gt;"' in re.search(rf"<a [^>]*>{name}</a>", body)[0]
    assert "data-yanked" not in re.search(r"<a [^>]*>pkg_a-2.0-py3-none-any.whl</a>", body)[0]
    files = json_files(client)
    assert files[WHEEL]["yanked"] == files[SDIST]["yanked"] == 'broken <"import">'
    assert "yanked" not in files["pkg_a-2.0-py3-none-any.whl"]
    assert client.get(f"/pypi/main/files/{WHEEL}").status_code == 200  # still downloadable


def test_without_a_reason_json_says_true_and_html_has_an_empty_attribute(client: Client, indexed: Feed) -> None:
    release_yank(feed=indexed, project="pkg-a", version="2.0", reason="", actor="t")
    assert json_files(client)["pkg_a-2.0-py3-none-any.whl"]["yanked"] is True
    assert 'data-yanked="">pkg_a-2.0-py3-none-any.whl</a>' in client.get("/pypi/main/simple/pkg-a/").content.decode()


def test_unyank_clears_the_mark_and_a_reindex_keeps_a_yank(client: Client, indexed: Feed) -> None:
    release_yank(feed=indexed, project="pkg-a", version="1.0", reason="bad", actor="t")
    wheel(indexed.storage, "pkg-a", "1.0", requires=("pkg-b",))  # the file is rewritten and read again
    PackageFile.objects.filter(filename=WHEEL).update(mtime_ns=0)
    assert feed_index(feed=indexed).read == 1
    assert json_files(client)[WHEEL]["yanked"] == "bad"
    release_unyank(feed=indexed, project="pkg-a", version="1.0", actor="t")
    assert "yanked" not in json_files(client)[WHEEL]


@pytest.mark.parametrize(("project", "version", "reason", "message"), [
    ("pkg-a", "3.0", "", "no files of pkg-a 3.0"),
    ("pkg-a", "not a version", "", "invalid version"),
    ("bad/name", "1.0", "", "invalid project name"),
    ("pkg-a", "1.0", "x" * 1001, "at most 1000 characters"),
])
def test_refusals(indexed: Feed, project: str, version: str, reason: str, message: str) -> None:
    with pytest.raises(YankError, match=message):
        release_yank(feed=indexed, project=project, version=version, reason=reason, actor="t")


class TestApi:
    def test_yank_and_unyank(self, client: Client, indexed: Feed) -> None:
        key = token("feeds:upload")
        response = client.post("/api/feeds/main/yank", {"project": "pkg-a", "version": "1.0", "reason": "bad"},
                               content_type="application/json", HTTP_X_APIKEY=key)
        assert response.status_code == 200, response.content
        assert response.json() == {"feed": "main", "project": "pkg-a", "version": "1.0", "yanked": True,
                                   "reason": "bad", "files": [WHEEL, SDIST]}
        assert json_files(client)[WHEEL]["yanked"] == "bad"
        response = client.post("/api/feeds/main/unyank", {"project": "pkg-a", "version": "1.0"},
                               HTTP_X_APIKEY=key)  # a form body works too
        assert response.status_code == 200 and response.json()["yanked"] is False
        assert "yanked" not in json_files(client)[WHEEL]

    def test_refusals_are_json(self, client: Client, indexed: Feed) -> None:
        key = token("feeds:upload")

        def post(path: str, body: dict, key: str = key) -> tuple[int, str]:
            response = client.post(path, body, content_type="application/json", HTTP_X_APIKEY=key)
            return response.status_code, response.json()["error"]

        assert post("/api/feeds/main/yank", {"project": "pkg-a", "version": "9"})[0] == 404
        assert post("/api/feeds/nope/yank", {"project": "pkg-a", "version": "1.0"}) == (
            404, "no feed called 'nope'")
        assert post("/api/feeds/main/yank", {"project": "pkg-a"})[0] == 400
        assert post("/api/feeds/main/yank", {"project": "pkg-a", "version": "1.0", "reason": 5})[0] == 400
        status, error = post("/api/feeds/main/yank", {"project": "pkg-a", "version": "1.0"}, token("feeds:read"))
        assert (status, error) == (403, "this API key lacks the feeds:upload scope")
        assert client.post("/api/feeds/main/yank", {}).status_code == 401
        assert not PackageFile.objects.filter(yanked=True).exists()
