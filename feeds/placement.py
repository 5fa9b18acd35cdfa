"""Putting a checked package file into a feed's storage folder and onto the index, atomically.

A file appears under its final name whole or not at all: across file systems it is copied to a dot-name
temp inside the folder (the indexer skips dot-names), fsynced, then renamed; without `overwrite` the
final name is taken with a hard link, which fails rather than replace a file another writer put there.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import secrets
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from django.db import transaction
from django.utils import timezone

from feeds.metadata import MetadataError, PackageMetadata, filename_parse, metadata_read
from feeds.models import Feed, PackageFile

logger = logging.getLogger(__name__)

# Read size when hashing or copying a package file.
CHUNK_BYTES = 1024 * 1024
# PackageFile.filename's length (and a safe file name length on every common file system).
FILENAME_MAX_LENGTH = 255
# Temps start with this, so neither the indexer nor a drop-path pass ever takes one for a package.
TEMP_PREFIX = "."
# A temp is always a new file: never follow or reuse something already at that name.
TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
TEMP_SUFFIX = ".tmp"
# A temp this old was left by a writer that died (a copy takes seconds): indexing removes it.
STALE_TEMP_SECONDS = 3600


class FileExists(Exception):
    """The feed already holds a file with that name (and overwriting was not allowed)."""


@dataclass(frozen=True, kw_only=True)
class CheckedFile:
    """A package file that passed the checks: its digests and its core metadata."""

    sha256: str
    md5: str
    metadata: PackageMetadata


def filename_check(name: str) -> None:
    """Refuse anything but a plain file name that names a wheel or sdist; raises MetadataError."""
    if not name or len(name) > FILENAME_MAX_LENGTH or name.startswith(TEMP_PREFIX):
        raise MetadataError(f"{name!r} is not a package file name")
    if "/" in name or "\\" in name or "\x00" in name or not name.isprintable():
        raise MetadataError(f"{name!r} is not a plain file name (no folders allowed)")
    filename_parse(name)


def file_check(*, stream: BinaryIO, name: str) -> CheckedFile:
    """Hash `stream` (seekable) and read its metadata, checked against `name`; raises MetadataError, OSError."""
    filename_check(name)
    sha256, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    stream.seek(0)
    while chunk := stream.read(CHUNK_BYTES):
        sha256.update(chunk)
        md5.update(chunk)
    metadata = metadata_read(stream=stream, filename=name)
    return CheckedFile(sha256=sha256.hexdigest(), md5=md5.hexdigest(), metadata=metadata)


def file_sha256(*, path: Path) -> str:
    """The sha256 (hex) of the file at `path`, read without following a final symlink; raises OSError."""
    digest = hashlib.sha256()
    with os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW), "rb") as stream:
        while chunk := stream.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def file_store(*, source: Path, root: Path, name: str, overwrite: bool, move: bool) -> Path:
    """Put the file `source` into folder `root` as `name`, atomically; return the final path.

    `move` takes the source away (a rename on the same file system); otherwise it is copied and left.
    Raises FileExists when `name` is taken and `overwrite` is false (the source is then untouched), OSError.
    """
    final = root / name
    if move:
        _sync_file(source)  # its data must be on disk before it is published under a name the indexer reads
    if move and _publish(source, final, overwrite=overwrite, may_decline=True):
        source.unlink(missing_ok=True)  # after a hard link the source is a second name of the stored file
        _sync_folder(root)
        return final
    temp = root / f"{TEMP_PREFIX}{name}.{secrets.token_hex(8)}{TEMP_SUFFIX}"
    try:
        with source.open("rb") as reader, os.fdopen(os.open(temp, TEMP_FLAGS, 0o644), "wb") as writer:
            shutil.copyfileobj(reader, writer, CHUNK_BYTES)
            writer.flush()
            os.fsync(writer.fileno())
        _publish(temp, final, overwrite=overwrite, may_decline=False)
    finally:
        temp.unlink(missing_ok=True)  # after a hard link the temp is a second name: drop it; after a failure: clean up
    _sync_folder(root)
    if move:
        source.unlink()
    return final


def stale_temps_remove(*, root: Path, now: float) -> list[str]:
    """Remove the temps in `root` older than STALE_TEMP_SECONDS (left by a killed writer); their names."""
    removed = []
    with os.scandir(root) as entries:
        for entry in entries:
            if not (entry.name.startswith(TEMP_PREFIX) and entry.name.endswith(TEMP_SUFFIX)):
                continue
            with contextlib.suppress(OSError):  # gone meanwhile, or not ours to remove: leave it
                age = now - entry.stat(follow_symlinks=False).st_mtime
                if entry.is_file(follow_symlinks=False) and age > STALE_TEMP_SECONDS:
                    os.unlink(entry.path)
                    removed.append(entry.name)
    return removed


def _publish(source: Path, final: Path, *, overwrite: bool, may_decline: bool) -> bool:
    """Give `source`'s file the name `final`; False (when `may_decline`) if they are on different file systems.

    Without `overwrite` a hard link takes the name, which never replaces a file; on a file system without
    hard links an existence test and a rename are the best there is.
    """
    try:
        if overwrite:
            os.replace(source, final)
        else:
            os.link(source, final, follow_symlinks=False)
        return True
    except FileExistsError:
        raise FileExists(f"the feed already has a file called {final.name}") from None
    except OSError as exc:
        if exc.errno == errno.EXDEV and may_decline:
            return False
        if overwrite or exc.errno == errno.EXDEV:
            raise
    if final.exists():  # hard links unsupported (e.g. some network shares)
        raise FileExists(f"the feed already has a file called {final.name}")
    os.replace(source, final)
    return True


def _sync_file(path: Path) -> None:
    with os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW), "rb") as stream:
        os.fsync(stream.fileno())


def _sync_folder(root: Path) -> None:
    """Make the new directory entry durable: a crash right after must not lose a file we said we stored."""
    with contextlib.suppress(OSError):  # not every file system can sync a folder; the rename stands anyway
        descriptor = os.open(root, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


@transaction.atomic
def package_file_record(*, feed: Feed, name: str, checked: CheckedFile) -> PackageFile:
    """Index the stored file `name` from its checks, so it is served at once (the indexer finds it unchanged)."""
    status = os.stat(feed.storage / name)
    metadata = checked.metadata
    values = {
        **metadata.columns(), "size": status.st_size, "mtime_ns": status.st_mtime_ns,
        "sha256": checked.sha256, "index_error": "", "indexed_at": timezone.now(),
        "uploaded_at": datetime.fromtimestamp(status.st_mtime_ns / 1e9, tz=UTC),
        "integrity_error": "", "integrity_checked_at": None,
    }
    row, _ = PackageFile.objects.update_or_create(feed=feed, filename=name, defaults=values)
    logger.info("feed %s: %s stored and indexed (%s %s)", feed.name, name, metadata.project, metadata.version)
    return row
