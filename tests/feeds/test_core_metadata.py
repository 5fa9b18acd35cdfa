"""PEP 658/714 core metadata in the simple API: announced with its hash, served as `<file>.metadata`, wheels only."""
from __future__ import annotations

import base64
import hashlib
import re
import zipfile
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from api_keys.keys import api_key_create
from feeds.indexing import feed_index
from feeds.models import Feed, PackageFile
from settings_store.services import setting_set
from tests.feeds.builders import sdist_tar, wheel
from tests.feeds.test_upload import upload

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.feeds.urls")]

JSON = "application/vnd.pypi.simple.v1+json"
WHEEL = "pkg_a-1.0-py3-none-any.whl"
SDIST = "pkg_a-1.0.tar.gz"


@pytest.fixture
def indexed(feed: Feed) -> Feed:
    wheel(feed.storage, "pkg-a", "1.0", requires=("pkg-b>=1",))
    sdist_tar(feed.storage, "pkg-a", "1.0")
    feed_index(feed=feed)
    return feed


def wheel_metadata(feed: Feed) -> bytes:
    with zipfile.ZipFile(feed.storage / WHEEL) as archive:
        return archive.read("pkg_a-1.0.dist-info/METADATA")


def anchor(body: str, filename: str) -> str:
    return re.search(rf"<a [^>]*>{re.escape(filename)}</a>", body).group(0)


def test_html_announces_the_metadata_hash_under_both_names_for_wheels_only(client: Client, indexed: Feed) -> None:
    body = client.get("/pypi/main/simple/pkg-a/").content.decode()
    digest = hashlib.sha256(wheel_metadata(indexed)).hexdigest()
    link = anchor(body, WHEEL)
    assert f'data-core-metadata="sha256={digest}"' in link
    assert f'data-dist-info-metadata="sha256={digest}"' in link  # PEP 714: pip < 23.2 reads the old name
    assert "metadata" not in anchor(body, SDIST)


def json_files(client: Client) -> dict[str, dict]:
    page = client.get("/pypi/main/simple/pkg-a/", HTTP_ACCEPT=JSON).json()
    return {entry["filename"]: entry for entry in page["files"]}


def test_json_announces_the_metadata_hash_for_wheels_only(client: Client, indexed: Feed) -> None:
    files = json_files(client)
    assert files[WHEEL]["core-metadata"] == {"sha256": hashlib.sha256(wheel_metadata(indexed)).hexdigest()}
    assert "dist-info-metadata" not in files[WHEEL]  # PEP 714: pip 22.3-23.1 fail on that key in JSON
    assert "core-metadata" not in files[SDIST]


def test_the_metadata_file_is_the_wheels_metadata_byte_for_byte(client: Client, indexed: Feed) -> None:
    response = client.get(f"/pypi/main/files/{WHEEL}.metadata")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    body = response.content
    assert body == wheel_metadata(indexed)
    announced = json_files(client)[WHEEL]["core-metadata"]
    assert announced == {"sha256": hashlib.sha256(body).hexdigest()}
    assert response["ETag"] == f'"{announced["sha256"]}"'


@pytest.mark.parametrize("name", [f"{SDIST}.metadata", "nothing-1.0-py3-none-any.whl.metadata"])
def test_no_metadata_file_for_sdists_or_unknown_files(client: Client, indexed: Feed, name: str) -> None:
    assert client.get(f"/pypi/main/files/{name}").status_code == 404


def test_rows_indexed_before_metadata_was_kept_announce_nothing_until_backfilled(client: Client, indexed: Feed) -> None:
    PackageFile.objects.filter(filename=WHEEL).update(core_metadata=None, core_metadata_sha256="")  # an old row
    assert "metadata" not in anchor(client.get("/pypi/main/simple/pkg-a/").content.decode(), WHEEL)
    assert client.get(f"/pypi/main/files/{WHEEL}.metadata").status_code == 404
    report = feed_index(feed=indexed)  # the file is unchanged, but its metadata is missing: read again
    assert report.read == 1
    assert client.get(f"/pypi/main/files/{WHEEL}.metadata").content == wheel_metadata(indexed)
    assert feed_index(feed=indexed).read == 0  # once filled in, unchanged files are not read again


def test_a_file_changed_since_indexing_serves_no_stale_metadata(client: Client, indexed: Feed) -> None:
    path = indexed.storage / WHEEL
    wheel(indexed.storage, "pkg-a", "1.0", requires=("pkg-c",))  # rewritten in place, not yet reindexed
    PackageFile.objects.filter(filename=WHEEL).update(mtime_ns=path.stat().st_mtime_ns - 1)
    assert client.get(f"/pypi/main/files/{WHEEL}.metadata").status_code == 404


def test_an_uploaded_wheel_serves_its_metadata_at_once(client: Client, feed: Feed, tmp_path: Path) -> None:
    User.objects.create_user("uploader", password="secret", is_staff=True)
    built = wheel(tmp_path, "pkg-a", "1.0", requires=("pkg-b>=1",))
    assert upload(client, built).status_code == 200
    assert client.get(f"/pypi/main/files/{WHEEL}.metadata").content == wheel_metadata(feed)
    assert feed_index(feed=feed).read == 0  # indexed by the upload, metadata included: nothing to backfill


class TestPrivateFeed:
    @pytest.fixture(autouse=True)
    def _private(self, indexed: Feed) -> None:
        setting_set(name="Feeds.AnonymousRead", value="false", actor="test", source="test")

    def test_metadata_needs_the_same_credentials_as_a_download(self, client: Client) -> None:
        url = f"/pypi/main/files/{WHEEL}.metadata"
        refused = client.get(url)
        assert refused.status_code == 401 and refused["WWW-Authenticate"].startswith("Basic")
        assert client.get(f"/pypi/main/files/{WHEEL}").status_code == 401
        owner = User.objects.create_user("alice", password="s3cret-pass")
        owner.user_permissions.add(Permission.objects.get(codename="upload_package"))  # a feeds:upload key needs it
        reader = api_key_create(name="ci", owner=owner, scopes=["feeds:read"]).token
        uploader = api_key_create(name="up", owner=owner, scopes=["feeds:upload"]).token
        assert client.get(url, HTTP_X_APIKEY=reader).status_code == 200
        assert client.get(url, HTTP_X_APIKEY=uploader).status_code == 401
        basic = "Basic " + base64.b64encode(b"alice:s3cret-pass").decode()
        assert client.get(url, HTTP_AUTHORIZATION=basic).status_code == 200
