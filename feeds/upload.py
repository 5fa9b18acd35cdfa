"""Accepting one package upload (the legacy PyPI upload protocol that twine speaks) into a feed.

The file is checked against its own metadata and the form (name, version, digests), stored atomically
(temp + rename, no overwrite unless Feeds.AllowOverwrite) and indexed before this returns, so it is
installable as soon as the client hears back. Who may upload is decided by `upload_permitted` alone.
"""
from __future__ import annotations

import errno
import logging
from collections.abc import Mapping
from pathlib import Path

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from packaging.version import InvalidVersion, Version

from feeds.metadata import MetadataError
from feeds.models import Feed, PackageFile
from feeds.naming import project_normalize
from feeds.placement import FileExists, file_check, file_store, package_file_record
from settings_store.selectors import setting_get

logger = logging.getLogger(__name__)

UPLOAD_PERMISSION = "feeds.upload_package"
UPLOAD_ACTION = "file_upload"
# A write that failed for want of room: the storage is full (507 Insufficient Storage), not the request wrong.
NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


class UploadError(Exception):
    """An upload refused; `status` is the HTTP status that says why (400, 401, 403, 404, 409, 413, 500, 507)."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def upload_permitted(*, user: AbstractBaseUser | AnonymousUser, feed: Feed) -> bool:
    """Whether `user` may upload to `feed`: staff, superusers and holders of feeds.upload_package.

    The one place that decides; API keys (a later issue) come in here.
    """
    return bool(user.is_active and (user.is_staff or user.is_superuser or user.has_perm(UPLOAD_PERMISSION)))


def package_upload(
    *, feed: Feed, filename: str, path: Path, fields: Mapping[str, str] | None, uploader: str,
) -> PackageFile:
    """Check the uploaded file at `path` (sent as `filename` with form `fields`), store and index it.

    `fields` None is the feed page's upload form: the file alone, its name and version taken from its own
    metadata. Raises UploadError. `path` is left where it is (the caller's temp file).
    """
    if fields is not None:
        action = fields.get(":action", "")
        if action != UPLOAD_ACTION:
            raise UploadError(f"unsupported :action {action!r} (only {UPLOAD_ACTION!r} is accepted)")
    try:
        with path.open("rb") as stream:
            checked = file_check(stream=stream, name=filename)
    except MetadataError as exc:
        raise UploadError(f"{filename}: {exc}") from None
    if fields is not None:
        _form_check(fields=fields, project=checked.metadata.project, version=checked.metadata.version)
        for field, actual in (("sha256_digest", checked.sha256), ("md5_digest", checked.md5)):
            sent = fields.get(field, "").strip().lower()
            if sent and sent != actual:
                raise UploadError(f"{field} does not match the file received ({sent} sent, {actual} received)")
    overwrite = bool(setting_get("Feeds.AllowOverwrite"))
    try:
        file_store(source=path, root=feed.storage, name=filename, overwrite=overwrite, move=False)
    except FileExists:
        raise UploadError(f"{filename} already exists in feed {feed.name}; a package file is never replaced "
                          "(unless Feeds.AllowOverwrite is on)", status=409) from None
    except OSError as exc:  # file_store has removed its temp: nothing partial is left in the folder
        logger.error("feed %s: cannot store %s: %s", feed.name, filename, exc)
        if exc.errno in NO_SPACE_ERRNOS:
            raise UploadError(f"no space left to store {filename} in feed {feed.name} ({exc.strerror}); "
                              "try again once an administrator has freed some", status=507) from None
        raise UploadError(f"cannot store {filename} in feed {feed.name}: {exc.strerror or exc}", status=500) from None
    row = package_file_record(feed=feed, name=filename, checked=checked)
    logger.info("feed %s: %s uploaded by %s", feed.name, filename, uploader)
    return row


def _form_check(*, fields: Mapping[str, str], project: str, version: str) -> None:
    """The form's name and version must be the file's."""
    name, sent_version = fields.get("name", "").strip(), fields.get("version", "").strip()
    if not name or not sent_version:
        raise UploadError("the form must carry the package's name and version")
    if project_normalize(name) != project:
        raise UploadError(f"the form says project {name!r} but the file is {project!r}")
    try:
        same = Version(sent_version) == Version(version)
    except InvalidVersion:
        same = False
    if not same:
        raise UploadError(f"the form says version {sent_version!r} but the file is {version!r}")
