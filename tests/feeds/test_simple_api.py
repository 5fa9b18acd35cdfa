"""The simple repository API through Django's test client: HTML, JSON, negotiation, redirects, downloads, access."""
from __future__ import annotations

import base64
import hashlib
import os
import zipfile
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from api_keys.keys import api_key_create
from feeds.indexing import feed_index
from feeds.models import Feed
from settings_store.services import setting_set
from tests.feeds.builders import wheel

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.feeds.urls")]

JSON = "application/vnd.pypi.simple.v1+json"


@pytest.fixture
def indexed(feed: Feed) -> Feed:
    wheel(feed.storage, "pkg-a", "1.0", requires_python=">=3.8,<4")
    wheel(feed.storage, "pkg-a", "2.0")
    wheel(feed.storage, "pkg-b", "1.0")
    wheel(feed.storage, "pkg-c", "1.0", extra={"../evil": b""})  # an index error: never listed
    feed_index(feed=feed)
    return feed


def sha256(feed: Feed, filename: str) -> str:
    return hashlib.sha256((feed.storage / filename).read_bytes()).hexdigest()


def test_project_list_in_html_lists_servable_projects(client: Client, indexed: Feed) -> None:
    response = client.get("/pypi/main/simple/")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/html; charset=utf-8" and "Accept" in response["Vary"]
    body = response.content.decode()
    assert '<a href="/pypi/main/simple/pkg-a/">pkg-a</a>' in body and "/pypi/main/simple/pkg-b/" in body
    assert "pkg-c" not in body
    assert '<meta name="pypi:repository-version" content="1.1">' in body


def test_project_list_in_json(client: Client, indexed: Feed) -> None:
    response = client.get("/pypi/main/simple/", HTTP_ACCEPT=JSON)
    assert response["Content-Type"] == JSON
    assert response.json() == {"meta": {"api-version": "1.1"}, "projects": [{"name": "pkg-a"}, {"name": "pkg-b"}]}


def test_project_page_in_html_has_hashes_and_escaped_requires_python(client: Client, indexed: Feed) -> None:
    body = client.get("/pypi/main/simple/pkg-a/").content.decode()
    name = "pkg_a-1.0-py3-none-any.whl"
    with zipfile.ZipFile(indexed.storage / name) as archive:
        metadata = hashlib.sha256(archive.read("pkg_a-1.0.dist-info/METADATA")).hexdigest()
    assert (
        f'<a href="/pypi/main/files/{name}#sha256={sha256(indexed, name)}" '
        f'data-requires-python="&lt;4,&gt;=3.8" '
        f'data-core-metadata="sha256={metadata}" data-dist-info-metadata="sha256={metadata}">{name}</a>'
    ) in body
    assert body.index(name) < body.index("pkg_a-2.0-py3-none-any.whl")


def test_project_page_in_json(client: Client, indexed: Feed) -> None:
    response = client.get("/pypi/main/simple/pkg-a/", HTTP_ACCEPT=f"{JSON}, text/html;q=0.1")
    data = response.json()
    assert (data["meta"], data["name"], data["versions"]) == ({"api-version": "1.1"}, "pkg-a", ["1.0", "2.0"])
    first = data["files"][0]
    name = "pkg_a-1.0-py3-none-any.whl"
    assert first["filename"] == name and first["url"] == f"/pypi/main/files/{name}"
    assert first["hashes"] == {"sha256": sha256(indexed, name)} and first["requires-python"] == "<4,>=3.8"
    assert first["size"] == (indexed.storage / name).stat().st_size and first["upload-time"].endswith("Z")
    assert "requires-python" not in data["files"][1]


def test_html_v1_is_served_under_its_own_type(client: Client, indexed: Feed) -> None:
    response = client.get("/pypi/main/simple/pkg-a/", HTTP_ACCEPT="application/vnd.pypi.simple.v1+html")
    assert response["Content-Type"] == "application/vnd.pypi.simple.v1+html; charset=utf-8"


def test_an_unacceptable_accept_header_gets_406(client: Client, indexed: Feed) -> None:
    assert client.get("/pypi/main/simple/", HTTP_ACCEPT="application/xml").status_code == 406


def test_non_normalised_project_names_redirect_permanently(client: Client, indexed: Feed) -> None:
    response = client.get("/pypi/main/simple/Pkg_A/")
    assert (response.status_code, response["Location"]) == (301, "/pypi/main/simple/pkg-a/")


def test_unknown_feed_project_or_file_is_404(client: Client, indexed: Feed) -> None:
    assert client.get("/pypi/nope/simple/").status_code == 404
    assert client.get("/pypi/main/simple/nope/").status_code == 404
    assert client.get("/pypi/main/simple/pkg-c/").status_code == 404  # only an errored file
    assert client.get("/pypi/main/files/pkg_c-1.0-py3-none-any.whl").status_code == 404
    assert client.get("/pypi/main/files/..%2Fsecret").status_code == 404


def test_download_streams_the_file_with_etag_and_last_modified(client: Client, indexed: Feed) -> None:
    name = "pkg_a-2.0-py3-none-any.whl"
    response = client.get(f"/pypi/main/files/{name}")
    assert response.status_code == 200 and response.streaming
    assert b"".join(response.streaming_content) == (indexed.storage / name).read_bytes()
    assert response["ETag"] == f'"{sha256(indexed, name)}"' and response["Last-Modified"].endswith("GMT")
    again = client.get(f"/pypi/main/files/{name}", HTTP_IF_NONE_MATCH=response["ETag"])
    assert again.status_code == 304 and again["ETag"] == response["ETag"]
    assert client.get(f"/pypi/main/files/{name}", HTTP_IF_NONE_MATCH='"other"').status_code == 200


def test_a_file_changed_since_indexing_or_swapped_for_a_link_is_not_served(
    client: Client, indexed: Feed, tmp_path: Path,
) -> None:
    name = "pkg_a-2.0-py3-none-any.whl"
    path = indexed.storage / name
    os.utime(path, ns=(0, path.stat().st_mtime_ns + 1))
    assert client.get(f"/pypi/main/files/{name}").status_code == 404
    secret = tmp_path / "secret.whl"
    secret.write_bytes(b"secret")
    path.unlink()
    path.symlink_to(secret)
    response = client.get(f"/pypi/main/files/{name}")
    assert response.status_code == 404 and b"secret" not in response.content


def test_post_is_not_allowed(client: Client, indexed: Feed) -> None:
    assert client.post("/pypi/main/simple/").status_code == 405


class TestAnonymousReadOff:
    @pytest.fixture(autouse=True)
    def _off(self, indexed: Feed) -> None:
        setting_set(name="Feeds.AnonymousRead", value="false", actor="test", source="test")
        User.objects.create_user("alice", password="s3cret-pass")

    @staticmethod
    def basic(user: str, password: str) -> str:
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    @pytest.mark.parametrize("url", ["/pypi/main/simple/", "/pypi/main/simple/pkg-a/",
                                     "/pypi/main/files/pkg_a-1.0-py3-none-any.whl", "/pypi/nope/simple/"])
    def test_anonymous_clients_get_401_with_a_challenge(self, client: Client, url: str) -> None:
        response = client.get(url)
        assert response.status_code == 401 and response["WWW-Authenticate"].startswith("Basic realm=")

    def test_wrong_or_malformed_credentials_get_401(self, client: Client) -> None:
        for header in (self.basic("alice", "wrong"), self.basic("bob", "s3cret-pass"), "Basic !!!", "Bearer x"):
            assert client.get("/pypi/main/simple/", HTTP_AUTHORIZATION=header).status_code == 401

    def test_an_api_key_needs_the_feeds_read_scope(self, client: Client) -> None:
        owner = User.objects.get(username="alice")
        owner.user_permissions.add(Permission.objects.get(codename="upload_package", content_type__app_label="feeds"))
        reader = api_key_create(name="ci", owner=owner, scopes=["feeds:read"]).token
        uploader = api_key_create(name="up", owner=owner, scopes=["feeds:upload"]).token
        assert client.get("/pypi/main/simple/pkg-a/", HTTP_X_APIKEY=reader).status_code == 200
        assert client.get("/pypi/main/simple/pkg-a/", HTTP_AUTHORIZATION=self.basic("api", reader)).status_code == 200
        assert client.get("/pypi/main/simple/pkg-a/", HTTP_X_APIKEY=uploader).status_code == 401

    def test_a_user_with_basic_auth_or_a_session_may_read(self, client: Client) -> None:
        auth = self.basic("alice", "s3cret-pass")
        assert client.get("/pypi/main/simple/pkg-a/", HTTP_AUTHORIZATION=auth).status_code == 200
        client.login(username="alice", password="s3cret-pass")
        assert client.get("/pypi/main/simple/").status_code == 200

    def test_an_inactive_user_may_not(self, client: Client) -> None:
        User.objects.filter(username="alice").update(is_active=False)
        auth = self.basic("alice", "s3cret-pass")
        assert client.get("/pypi/main/simple/", HTTP_AUTHORIZATION=auth).status_code == 401
