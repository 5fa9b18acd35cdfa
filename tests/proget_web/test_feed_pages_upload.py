"""Uploading a package from the feed page: the form posts to /feeds/<feed>/upload, which goes through the same core
as twine (feeds.upload.package_upload) and comes back to the feed page saying what happened."""
# ruff: noqa: F401, F811
from __future__ import annotations

from pathlib import Path

import pytest
from django.test import Client

from feeds.models import Feed, PackageFile
from proget_web.feedpages import views
from tests.feeds.builders import wheel

# The fixtures of the feed page tests, imported to be used by name (hence F401/F811 above).
from tests.proget_web.test_feed_pages import FEED, _client, _messages, _page, _user, admin, feed, packages_root

pytestmark = pytest.mark.django_db

UPLOAD_URL = f"/feeds/{FEED}/upload"
FORM_ACTION = f'action="{UPLOAD_URL}"'


@pytest.fixture
def uploader() -> Client:
    """Holds feeds.upload_package only: the permission twine uploads need, and so the upload form."""
    return _client(_user("ulla", perms=("feeds.upload_package",)), csrf=True)


def _token(client: Client) -> str:
    client.get(f"/feeds/{FEED}/")
    return client.cookies["csrftoken"].value


def _upload(client: Client, path: Path) -> list[str]:
    """Post `path` through the form as a browser does; the messages of the feed page it lands on."""
    token = _token(client)
    with path.open("rb") as stream:
        response = client.post(UPLOAD_URL, {"csrfmiddlewaretoken": token, "content": stream})
    assert response.status_code == 302 and response["Location"] == f"/feeds/{FEED}/"
    return _messages(_page(client.get(response["Location"])))


def test_an_uploader_sees_the_form(uploader: Client, feed: Feed) -> None:
    page = _page(uploader.get(f"/feeds/{FEED}/"))
    assert FORM_ACTION in page and 'enctype="multipart/form-data"' in page and 'name="content"' in page


@pytest.mark.parametrize("who", ["uploader", "admin"])
def test_an_uploaded_wheel_is_stored_indexed_and_listed(
        request: pytest.FixtureRequest, feed: Feed, tmp_path: Path, who: str) -> None:
    client = request.getfixturevalue(who)
    built = wheel(tmp_path, "web-pkg", "1.2.0")
    assert _upload(client, built) == [f"{built.name} uploaded to feed {FEED}."]
    row = PackageFile.objects.get(feed=feed, filename=built.name)
    assert (row.project, row.version, row.index_error) == ("web-pkg", "1.2.0", "")
    assert (feed.storage / built.name).read_bytes() == built.read_bytes()
    assert f'<tr data-file="{built.name}"' in _page(client.get(f"/feeds/{FEED}/"))


def test_a_file_that_is_not_a_package_is_refused_with_a_clear_error(
        uploader: Client, feed: Feed, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a package")
    [message] = _upload(uploader, notes)
    assert message == "notes.txt not uploaded: notes.txt: not a Python package file (expected .whl, .tar.gz or .zip)"
    assert not PackageFile.objects.exists() and not (feed.storage / "notes.txt").exists()


def test_a_duplicate_is_refused_and_the_first_file_kept(uploader: Client, feed: Feed, tmp_path: Path) -> None:
    built = wheel(tmp_path, "web-pkg", "1.0")
    _upload(uploader, built)
    [message] = _upload(uploader, built)
    assert message.startswith(f"{built.name} not uploaded: {built.name} already exists in feed {FEED}")
    assert PackageFile.objects.count() == 1


def test_a_file_over_the_cap_is_refused(
        uploader: Client, feed: Feed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    built = wheel(tmp_path, "web-pkg", "1.0")
    monkeypatch.setattr(views, "MAX_UPLOAD_BYTES", built.stat().st_size - 1)
    [message] = _upload(uploader, built)
    assert message == (f"{built.name} not uploaded: the file is {built.stat().st_size} bytes, "
                       f"over the limit of {built.stat().st_size - 1} bytes")
    assert not PackageFile.objects.exists() and not any(feed.storage.iterdir())


def test_a_post_without_a_file_says_so(uploader: Client, feed: Feed) -> None:
    response = uploader.post(UPLOAD_URL, {"csrfmiddlewaretoken": _token(uploader)})
    assert response.status_code == 302
    assert _messages(_page(uploader.get(response["Location"]))) == ["Choose a package file to upload."]


def test_a_user_without_the_upload_permission_gets_no_form_and_a_403(feed: Feed, tmp_path: Path) -> None:
    plain = _client(_user("paula"), csrf=True)
    assert FORM_ACTION not in _page(plain.get(f"/feeds/{FEED}/"))
    built = wheel(tmp_path, "web-pkg", "1.0")
    with built.open("rb") as stream:
        response = plain.post(UPLOAD_URL, {"csrfmiddlewaretoken": _token(plain), "content": stream})
    assert response.status_code == 403
    assert not PackageFile.objects.exists() and not (feed.storage / built.name).exists()


def test_the_upload_needs_the_csrf_token(uploader: Client, feed: Feed, tmp_path: Path) -> None:
    with wheel(tmp_path, "web-pkg", "1.0").open("rb") as stream:
        response = uploader.post(UPLOAD_URL, {"content": stream})
    assert response.status_code == 403 and not PackageFile.objects.exists()


def test_upload_to_an_unknown_feed_says_so(uploader: Client, feed: Feed, tmp_path: Path) -> None:
    token = _token(uploader)
    with wheel(tmp_path, "web-pkg", "1.0").open("rb") as stream:
        response = uploader.post("/feeds/nope/upload", {"csrfmiddlewaretoken": token, "content": stream})
    assert response.status_code == 404
