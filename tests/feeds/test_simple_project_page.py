"""The simple pages, built without a template loop: every value escaped, files in version order."""
from __future__ import annotations

import pytest
from django.test import Client

from feeds.models import Feed, PackageFile

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.feeds.urls")]

# Values indexing would never store (names and Requires-Python are validated), but a row is data, not markup.
HOSTILE_NAME = "evil-1.0&<b id='x'>\"-py3-none-any.whl"
HOSTILE_REQUIRES = "\"><script>alert('&')</script>"
HOSTILE_SHA = "\"<i>"


@pytest.fixture
def hostile(feed: Feed) -> Feed:
    PackageFile.objects.create(feed=feed, filename=HOSTILE_NAME, project="evil", version="1.0",
                               requires_python=HOSTILE_REQUIRES, sha256=HOSTILE_SHA, size=7)
    PackageFile.objects.create(feed=feed, filename="evil-0.9-py3-none-any.whl", project="evil", version="0.9",
                               sha256="ab" * 32, size=5)
    return feed


def test_hostile_filename_hash_and_requires_python_are_escaped_in_html(client: Client, hostile: Feed) -> None:
    body = client.get("/pypi/main/simple/evil/").content.decode()
    assert body.endswith(
        "<h1>Links for evil</h1>\n"
        f'<a href="/pypi/main/files/evil-0.9-py3-none-any.whl#sha256={"ab" * 32}">evil-0.9-py3-none-any.whl</a><br>\n'
        "<a href=\"/pypi/main/files/evil-1.0&amp;%3Cb%20id=&#x27;x&#x27;%3E%22-py3-none-any.whl"
        "#sha256=&quot;&lt;i&gt;\""
        " data-requires-python=\"&quot;&gt;&lt;script&gt;alert(&#x27;&amp;&#x27;)&lt;/script&gt;\">"
        "evil-1.0&amp;&lt;b id=&#x27;x&#x27;&gt;&quot;-py3-none-any.whl</a><br>\n"
        "</body>\n</html>\n"
    )
    assert "<script>" not in body and "<b " not in body and "<i>" not in body


def test_hostile_values_reach_json_clients_unchanged(client: Client, hostile: Feed) -> None:
    data = client.get("/pypi/main/simple/evil/", HTTP_ACCEPT="application/vnd.pypi.simple.v1+json").json()
    assert data["versions"] == ["0.9", "1.0"]
    last = data["files"][1]
    assert (last["filename"], last["requires-python"], last["hashes"]) == (
        HOSTILE_NAME, HOSTILE_REQUIRES, {"sha256": HOSTILE_SHA})
    assert last["url"] == "/pypi/main/files/evil-1.0&%3Cb%20id='x'%3E%22-py3-none-any.whl"


def test_files_come_in_version_order_equal_versions_by_filename(client: Client, feed: Feed) -> None:
    for version in ("1.10", "1.2", "1.0.0", "1.0", "not-a-version"):  # an unparsable version sorts as 0
        PackageFile.objects.create(feed=feed, filename=f"pkg-{version}-py3-none-any.whl", project="pkg",
                                   version=version, sha256="cd" * 32)
    expected = ["not-a-version", "1.0", "1.0.0", "1.2", "1.10"]  # "pkg-1.0-" < "pkg-1.0.0-"
    body = client.get("/pypi/main/simple/pkg/").content.decode()
    positions = [body.index(f">pkg-{version}-py3-none-any.whl<") for version in expected]
    assert positions == sorted(positions)
    data = client.get("/pypi/main/simple/pkg/", HTTP_ACCEPT="application/vnd.pypi.simple.v1+json").json()
    assert data["versions"] == expected
    assert [file["filename"] for file in data["files"]] == [f"pkg-{version}-py3-none-any.whl" for version in expected]


def test_a_hostile_project_name_is_escaped_in_the_project_list(client: Client, hostile: Feed) -> None:
    PackageFile.objects.create(feed=hostile, filename="x.whl", project="a\"<b>&'", version="1.0")
    body = client.get("/pypi/main/simple/").content.decode()
    assert body.endswith(
        "<body>\n"
        "<a href=\"/pypi/main/simple/a&quot;&lt;b&gt;&amp;&#x27;/\">a&quot;&lt;b&gt;&amp;&#x27;</a><br>\n"
        "<a href=\"/pypi/main/simple/evil/\">evil</a><br>\n"
        "</body>\n</html>\n"
    )
