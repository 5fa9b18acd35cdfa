"""The legacy upload endpoint `/pypi/<feed>/legacy/` that twine posts to: parse, authenticate, call the core.

Authenticated by HTTP basic auth only, never by a session cookie (so it can be CSRF-exempt without
being a CSRF hole). The body is parsed here, not by Django's request.POST, so that a file name with a
folder in it is refused rather than silently cut down, and so the size cap applies while it streams.
"""
from __future__ import annotations

import logging
from pathlib import Path

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.core.files.uploadedfile import TemporaryUploadedFile
from django.core.files.uploadhandler import FileUploadHandler, TemporaryFileUploadHandler
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.http.multipartparser import MultiPartParser, MultiPartParserError
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from api_keys.keys import request_key_user
from feeds.access import BASIC_REALM, basic_auth_user
from feeds.limits import MAX_UPLOAD_BYTES, MAX_UPLOAD_REQUEST_BYTES
from feeds.models import Feed
from feeds.selectors import feed_get
from feeds.upload import UploadError, package_upload, upload_permitted
from indexer.models import Trigger
from indexer.trigger_requests import trigger_request
from indexer.triggers import TriggerError

logger = logging.getLogger(__name__)

# The multipart field that carries the package file.
CONTENT_FIELD = "content"


def _text(message: str, *, status: int) -> HttpResponse:
    response = HttpResponse(f"{message}\n", status=status, content_type="text/plain; charset=utf-8")
    if status == 401:
        response["WWW-Authenticate"] = BASIC_REALM
    return response


class _SizeCap(FileUploadHandler):
    """Counts the bytes of each uploaded file as they stream in; refuses (413) past MAX_UPLOAD_BYTES."""

    def new_file(self, *args: object, **kwargs: object) -> None:
        super().new_file(*args, **kwargs)
        self.received = 0

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        self.received += len(raw_data)
        if self.received > MAX_UPLOAD_BYTES:
            raise UploadError(f"the file is larger than {MAX_UPLOAD_BYTES} bytes", status=413)
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None  # the next handler makes the file


class _StrictNames(MultiPartParser):
    """Django's parser, but a file name that sanitizing would change (folders, `..`) is refused, not cut."""

    def sanitize_file_name(self, file_name: str) -> str | None:
        if super().sanitize_file_name(file_name) != file_name:
            raise UploadError(f"{file_name!r} is not a plain file name (no folders allowed)", status=400)
        return file_name


def _parse(request: HttpRequest) -> tuple[dict[str, str], TemporaryUploadedFile]:
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise UploadError("bad Content-Length", status=400) from None
    if length > MAX_UPLOAD_REQUEST_BYTES:
        raise UploadError(f"Content-Length {length} is over the limit of {MAX_UPLOAD_REQUEST_BYTES} bytes", status=413)
    handlers = [_SizeCap(request), TemporaryFileUploadHandler(request)]
    try:
        post, files = _StrictNames(request.META, request, handlers, request.encoding).parse()
    except RequestDataTooBig:
        raise UploadError("the form fields are too large", status=413) from None
    except (MultiPartParserError, SuspiciousOperation) as exc:
        raise UploadError(f"not a valid multipart upload: {exc}", status=400) from None
    uploads = files.getlist(CONTENT_FIELD)
    if len(uploads) != 1:
        raise UploadError(f"expected one file in the {CONTENT_FIELD!r} field, got {len(uploads)}", status=400)
    return {key: post.get(key, "") for key in post}, uploads[0]


def _authorized(request: HttpRequest) -> AbstractBaseUser:
    """The uploading user or API key, from basic auth or X-ApiKey only (a session cookie never counts: this view
    is CSRF-exempt)."""
    user = basic_auth_user(request) or request_key_user(request)
    if user is None:
        raise UploadError("authentication required: send a user name and password (HTTP basic auth)", status=401)
    return user


def upload_reindex_request(*, feed: Feed, filename: str, uploader: str) -> None:
    """After an upload: ask the service to reindex the feed. The file is served already (the reindex keeps the
    index consistent with the folder), so a failure here is logged, never the upload's."""
    try:
        trigger_request(kind=Trigger.Kind.FEED_REINDEX, target=feed.name, requested_by=uploader)
    except (TriggerError, DatabaseError):
        logger.exception("feed %s: %s stored, but the reindex could not be queued", feed.name, filename)


@csrf_exempt
@require_POST
def legacy_upload(request: HttpRequest, *, feed: str) -> HttpResponse:
    """Store the posted package file in `feed`, index it, and ask the service to reindex the feed."""
    try:
        user = _authorized(request)
        found = feed_get(name=feed)
        if found is None:
            raise UploadError(f"no feed called {feed!r}", status=404)
        if not upload_permitted(user=user, feed=found):
            raise UploadError(f"{user.get_username()} may not upload packages", status=403)
        fields, upload = _parse(request)
    except UploadError as exc:
        return _text(str(exc), status=exc.status)
    try:
        row = package_upload(feed=found, filename=upload.name, path=Path(upload.temporary_file_path()),
                             fields=fields, uploader=user.get_username())
    except UploadError as exc:
        return _text(str(exc), status=exc.status)
    finally:
        upload.close()
    upload_reindex_request(feed=found, filename=row.filename, uploader=user.get_username())
    return _text(f"OK: {row.filename} stored in feed {found.name}", status=200)
