"""The legacy upload endpoint through Django's test client: auth, permission, hostile names, checks, size, overwrite."""
from __future__ import annotations

import base64
import hashlib
import uuid
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from api_keys.keys import api_key_create
from feeds import views_upload
from feeds.models import Feed, PackageFile
from feeds.selectors import project_files
from indexer.models import Trigger
from settings_store.services import setting_set
from tests.feeds.builders import metadata_text, wheel

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.feeds.urls")]

URL = "/pypi/main/legacy/"
WHEEL = "pkg_a-1.0-py3-none-any.whl"


def multipart(fields: dict[str, str], *, filename: str | None, content: bytes) -> tuple[bytes, str]:
    """A multipart/form-data body as twine builds it, with the file name sent exactly as given."""
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    if filename is not None:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="content"; filename="{filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n".encode() + content + b"\r\n"
        )
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


@pytest.fixture
def built(tmp_path: Path) -> Path:
    folder = tmp_path / "built"
    folder.mkdir()
    return wheel(folder, "pkg-a", "1.0")


@pytest.fixture
def staff(db: None) -> User:
    return User.objects.create_user("uploader", password="secret", is_staff=True)


def upload(
    client: Client, package: Path, *, filename: str | None = None, auth: str | None = basic("uploader", "secret"),
    content: bytes | None = None, **overrides: str,
) -> object:
    data = package.read_bytes() if content is None else content
    fields = {
        ":action": "file_upload", "protocol_version": "1", "name": "pkg-a", "version": "1.0",
        "filetype": "bdist_wheel", "sha256_digest": hashlib.sha256(data).hexdigest(),
        "md5_digest": hashlib.md5(data).hexdigest(), **overrides,
    }
    fields = {name: value for name, value in fields.items() if value != "<omit>"}
    body, content_type = multipart(fields, filename=package.name if filename is None else filename, content=data)
    headers = {"HTTP_AUTHORIZATION": auth} if auth else {}
    return client.generic("POST", URL, body, content_type=content_type, **headers)


def stored(feed: Feed) -> list[str]:
    return sorted(path.name for path in feed.storage.iterdir())


def test_an_upload_is_stored_indexed_at_once_and_a_reindex_is_queued(feed: Feed, staff: User, built: Path) -> None:
    response = upload(Client(enforce_csrf_checks=True), built)  # csrf-exempt: twine sends no token
    assert response.status_code == 200, response.content
    assert response.content == b"OK: pkg_a-1.0-py3-none-any.whl stored in feed main\n"
    assert stored(feed) == [WHEEL] and (feed.storage / WHEEL).read_bytes() == built.read_bytes()
    [row] = project_files(feed=feed, project="pkg-a")
    assert row.sha256 == hashlib.sha256(built.read_bytes()).hexdigest()
    assert b"pkg_a-1.0-py3-none-any.whl" in Client().get("/pypi/main/simple/pkg-a/").content
    trigger = Trigger.objects.get()
    assert (trigger.kind, trigger.target, trigger.requested_by) == ("feed.reindex", "main", "uploader")


def test_a_user_holding_the_upload_permission_may_upload(feed: Feed, built: Path) -> None:
    user = User.objects.create_user("ci", password="pw")
    user.user_permissions.add(Permission.objects.get(codename="upload_package", content_type__app_label="feeds"))
    assert upload(Client(), built, auth=basic("ci", "pw")).status_code == 200


def test_an_api_key_uploads_only_with_the_feeds_upload_scope(feed: Feed, built: Path) -> None:
    owner = User.objects.create_user("ci", password="pw")
    owner.user_permissions.add(Permission.objects.get(codename="upload_package", content_type__app_label="feeds"))
    reader = api_key_create(name="read", owner=owner, scopes=["feeds:read"]).token
    uploader = api_key_create(name="up", owner=owner, scopes=["feeds:upload"]).token
    assert upload(Client(), built, auth=basic("api", reader)).status_code == 403
    assert stored(feed) == []
    assert upload(Client(), built, auth=basic("api", uploader)).status_code == 200
    assert stored(feed) == [built.name]


@pytest.mark.parametrize("auth", [None, basic("uploader", "wrong"), basic("nobody", "secret"), "Basic !!!", "Bearer x"])
def test_without_valid_credentials_the_answer_is_401(feed: Feed, staff: User, built: Path, auth: str | None) -> None:
    response = upload(Client(), built, auth=auth)
    assert response.status_code == 401 and response["WWW-Authenticate"].startswith("Basic")
    assert stored(feed) == []


def test_a_session_cookie_never_authenticates_an_upload(feed: Feed, staff: User, built: Path) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)
    assert upload(client, built, auth=None).status_code == 401
    assert stored(feed) == []


def test_a_user_without_permission_gets_403(feed: Feed, built: Path) -> None:
    User.objects.create_user("reader", password="pw")
    response = upload(Client(), built, auth=basic("reader", "pw"))
    assert (response.status_code, stored(feed)) == (403, [])


def test_an_unknown_feed_is_404_and_a_get_is_405(feed: Feed, staff: User, built: Path) -> None:
    body, content_type = multipart({":action": "file_upload"}, filename=built.name, content=built.read_bytes())
    response = Client().generic("POST", "/pypi/nope/legacy/", body, content_type=content_type,
                                HTTP_AUTHORIZATION=basic("uploader", "secret"))
    assert response.status_code == 404
    assert Client().get(URL, HTTP_AUTHORIZATION=basic("uploader", "secret")).status_code == 405


@pytest.mark.parametrize("filename", [
    f"../{WHEEL}", f"a/{WHEEL}", f"..%2f{WHEEL}", f"..\\{WHEEL}", f"/tmp/{WHEEL}", "..", f".{WHEEL}",
    "pkg_a-1.0.exe", f"&#47;{WHEEL}",
])
def test_a_file_name_that_is_not_a_plain_package_name_is_refused(
    feed: Feed, staff: User, built: Path, tmp_path: Path, filename: str,
) -> None:
    before = sorted(str(path) for path in tmp_path.rglob("*"))
    response = upload(Client(), built, filename=filename)
    assert response.status_code == 400, response.content
    assert stored(feed) == [] and not PackageFile.objects.exists()
    assert sorted(str(path) for path in tmp_path.rglob("*")) == before  # nothing written anywhere


@pytest.mark.parametrize(("overrides", "message"), [
    ({"name": "pkg-b"}, b"form says project 'pkg-b'"),
    ({"version": "2.0"}, b"form says version '2.0'"),
    ({"version": "<omit>"}, b"must carry the package's name and version"),
    ({"sha256_digest": "0" * 64}, b"sha256_digest does not match"),
    ({"md5_digest": "0" * 32}, b"md5_digest does not match"),
    ({":action": "submit"}, b"unsupported :action 'submit'"),
])
def test_a_file_that_does_not_match_its_form_is_refused(
    feed: Feed, staff: User, built: Path, overrides: dict[str, str], message: bytes,
) -> None:
    response = upload(Client(), built, **overrides)
    assert response.status_code == 400 and message in response.content, response.content
    assert stored(feed) == []


def test_a_file_whose_metadata_contradicts_its_name_is_refused(feed: Feed, staff: User, tmp_path: Path) -> None:
    lying = wheel(tmp_path, "pkg-a", "1.0", metadata=metadata_text("pkg-a", "9.9"))
    response = upload(Client(), lying)
    assert response.status_code == 400 and b"metadata says 9.9" in response.content
    assert stored(feed) == []


def test_no_file_is_a_400(feed: Feed, staff: User, built: Path) -> None:
    body, content_type = multipart({":action": "file_upload", "name": "pkg-a", "version": "1.0"},
                                   filename=None, content=b"")
    response = Client().generic("POST", URL, body, content_type=content_type,
                                HTTP_AUTHORIZATION=basic("uploader", "secret"))
    assert response.status_code == 400 and b"expected one file" in response.content


def test_a_file_over_the_cap_is_refused_while_it_streams(
    feed: Feed, staff: User, built: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(views_upload, "MAX_UPLOAD_BYTES", built.stat().st_size - 1)
    response = upload(Client(), built)
    assert response.status_code == 413 and b"the file is larger than" in response.content
    assert stored(feed) == []


def test_a_request_announcing_too_much_is_refused_before_it_is_read(
    feed: Feed, staff: User, built: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(views_upload, "MAX_UPLOAD_REQUEST_BYTES", 20)
    response = upload(Client(), built)
    assert response.status_code == 413 and b"Content-Length" in response.content


def test_an_existing_file_is_never_replaced_unless_overwrite_is_allowed(
    feed: Feed, staff: User, built: Path, tmp_path: Path,
) -> None:
    assert upload(Client(), built).status_code == 200
    original = (feed.storage / WHEEL).read_bytes()
    other = tmp_path / "other"
    other.mkdir()
    changed = wheel(other, "pkg-a", "1.0", extra={"more.txt": b"changed"})
    response = upload(Client(), changed)
    assert response.status_code == 409 and b"already exists" in response.content
    assert (feed.storage / WHEEL).read_bytes() == original and stored(feed) == [WHEEL]

    setting_set(name="Feeds.AllowOverwrite", value="true", actor="test", source="test")
    assert upload(Client(), changed).status_code == 200
    assert (feed.storage / WHEEL).read_bytes() == changed.read_bytes() and stored(feed) == [WHEEL]
    [row] = project_files(feed=feed, project="pkg-a")
    assert row.sha256 == hashlib.sha256(changed.read_bytes()).hexdigest()
