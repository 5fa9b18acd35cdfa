"""Indexing a feed: bring its PackageFile rows in line with the files in its storage folder.

Incremental (a file whose size and mtime are unchanged is not read again); removed files are de-indexed;
a file that cannot be indexed gets its error on its row and the run goes on; nothing outside the folder
is ever opened (symlinks are followed only to a regular file inside it).
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from feeds.metadata import MetadataError, PackageMetadata, filename_parse, metadata_read, package_kind
from feeds.models import Feed, PackageFile
from feeds.placement import stale_temps_remove
from feeds.storage import FileRefused, Progress, file_locate, file_open, files_in_turn

logger = logging.getLogger(__name__)

# Read size when hashing a package file.
HASH_CHUNK_BYTES = 1024 * 1024

# Rows deleted per statement: under SQLite's default cap on statement parameters (999 before 3.32).
DELETE_BATCH = 500
# PackageFile.filename's length.
FILENAME_MAX_LENGTH = 255
# Rows written per transaction (one INSERT ... ON CONFLICT UPDATE, split further by Django if the database needs).
WRITE_BATCH = 500
# What a re-read updates on an existing row: not when the file was first seen, nor Feed Integrity's verdict.
# Nor whether it is yanked: a yank is about the release, and survives the file being re-read.
UPDATED_FIELDS = [
    "project", "version", "requires_python", "summary", "core_metadata", "core_metadata_sha256",
    "size", "mtime_ns", "sha256", "index_error", "indexed_at",
]


@dataclass(kw_only=True)
class IndexReport:
    """What one indexing run of one feed did."""

    files: int = 0  # package files found in the folder
    read: int = 0  # files opened and read (new or changed since the last run)
    unchanged: int = 0
    removed: int = 0  # rows of files no longer there
    errors: int = 0  # files that could not be indexed (each has its error on its row)
    stopped: bool = False  # the service stopped before every file was looked at
    problem: str = ""  # why the feed could not be indexed at all

    def summary(self) -> str:
        if self.problem:
            return f"failed: {self.problem}"
        text = (
            f"{self.files} file(s): {self.read} read, {self.unchanged} unchanged, "
            f"{self.removed} removed, {self.errors} error(s)"
        )
        return f"{text}; stopped early" if self.stopped else text


def feed_index(
    *, feed: Feed, progress: Progress | None = None, stopping: Callable[[], bool] = lambda: False,
) -> IndexReport:
    """Index `feed`'s storage folder; record and return the report. Per-file errors never stop the run."""
    report = IndexReport()
    root = feed.storage.resolve()
    try:
        names = sorted(
            entry.name for entry in os.scandir(root)
            if not entry.name.startswith(".") and not entry.is_dir(follow_symlinks=False)
        )
    except OSError as exc:
        report.problem = f"cannot list the storage folder {root}: {exc.strerror or exc}"
        logger.warning("feed %s: %s", feed.name, report.problem)
        _record_result(feed=feed, report=report)
        return report
    unstorable = [name for name in names if not _storable(name)]
    if unstorable:  # a name the database cannot hold cannot have a row: log it, count it, skip it
        logger.warning("feed %s: skipping %d file(s) whose names are not UTF-8 or too long: %r",
                       feed.name, len(unstorable), unstorable)
        names = [name for name in names if _storable(name)]
    with contextlib.suppress(OSError):  # housekeeping only: a folder we cannot clean is still indexed
        if removed := stale_temps_remove(root=root, now=time.time()):
            logger.warning("feed %s: removed %d temp file(s) left by an interrupted copy: %r",
                           feed.name, len(removed), removed)
    report.files = len(names)
    report.errors = len(unstorable)
    # The stored core metadata (kilobytes per wheel) is never needed here: only whether it is there.
    rows = {row.filename: row for row in PackageFile.objects.filter(feed=feed).defer("core_metadata")}
    present = set(names)
    report.removed = _forget(ids=[row.pk for name, row in rows.items() if name not in present])
    pending: list[PackageFile] = []
    for name in files_in_turn(names, feed=feed.name, report=report, stopping=stopping, progress=progress):
        written = _index_file(feed=feed, root=root, name=name, row=rows.get(name), report=report)
        if written is not None:
            pending.append(written)
        if len(pending) >= WRITE_BATCH:
            _write(pending)
            pending = []
    _write(pending)  # also after an early stop: what was read is kept
    _record_result(feed=feed, report=report)
    logger.info("feed %s indexed: %s", feed.name, report.summary())
    return report


def _storable(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes in the name (os.scandir keeps them as surrogates)
        return False
    return len(name) <= FILENAME_MAX_LENGTH


@transaction.atomic
def _forget(*, ids: list[int]) -> int:
    """Delete the rows `ids` (in batches: SQLite caps the parameters of one statement)."""
    for start in range(0, len(ids), DELETE_BATCH):
        PackageFile.objects.filter(pk__in=ids[start:start + DELETE_BATCH]).delete()
    return len(ids)


def _record_result(*, feed: Feed, report: IndexReport) -> None:
    Feed.objects.filter(pk=feed.pk).update(last_indexed_at=timezone.now(), last_index_result=report.summary())


def _index_file(
    *, feed: Feed, root: Path, name: str, row: PackageFile | None, report: IndexReport,
) -> PackageFile | None:
    """The row to write for file `name` (None when it is unchanged or gone); read it only if size or mtime changed."""
    try:
        target, status = file_locate(root=root, name=name)
    except (FileRefused, OSError) as exc:
        try:
            entry_status = os.lstat(root / name)
        except FileNotFoundError:
            return None  # removed since the folder was listed: the next run forgets it
        report.errors += 1
        return _row(feed=feed, name=name, status=entry_status, error=_describe(exc))
    if (row is not None and (row.size, row.mtime_ns) == (status.st_size, status.st_mtime_ns)
            and not _core_metadata_missing(row)):
        report.unchanged += 1
        report.errors += bool(row.index_error)
        return None
    report.read += 1
    try:
        status, digest, metadata = _read(target=target, name=name)
    except (MetadataError, OSError) as exc:
        error = _describe(exc)
    except Exception as exc:  # a bug must not stop the other files: record it, log the traceback
        logger.exception("feed %s: indexing %s failed", feed.name, name)
        error = f"internal error: {type(exc).__name__}: {exc}"
    else:
        return _row(feed=feed, name=name, status=status, sha256=digest, fields=metadata.columns())
    report.errors += 1
    return _row(feed=feed, name=name, status=status, error=error)


def _core_metadata_missing(row: PackageFile) -> bool:
    """A wheel indexed before core metadata was kept (migration 0003): read it again once to fill it in."""
    return not row.index_error and not row.core_metadata_sha256 and package_kind(row.filename) == "wheel"


def _describe(exc: Exception) -> str:
    if isinstance(exc, OSError):
        return f"cannot read the file: {exc.strerror or exc}"
    return str(exc)


def _read(*, target: Path, name: str) -> tuple[os.stat_result, str, PackageMetadata]:
    """Hash and parse the file, both from one descriptor."""
    stream, status = file_open(path=target)
    with stream:
        digest = hashlib.sha256()
        while chunk := stream.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
        return status, digest.hexdigest(), metadata_read(stream=stream, filename=name)


def _row(
    *, feed: Feed, name: str, status: os.stat_result, sha256: str = "", error: str = "",
    fields: dict[str, object] | None = None,
) -> PackageFile:
    """The row of file `name`, unsaved: its metadata, or its error (with what the file name tells)."""
    if fields is None:
        try:
            project, version = filename_parse(name)
            fields = {"project": project, "version": str(version), "requires_python": "", "summary": ""}
        except MetadataError:
            fields = {"project": "", "version": "", "requires_python": "", "summary": ""}
    return PackageFile(
        feed=feed, filename=name, **fields, size=status.st_size, mtime_ns=status.st_mtime_ns, sha256=sha256,
        index_error=error, indexed_at=timezone.now(),
        # A file found in the folder was uploaded when it was last written there (kept when the row exists).
        uploaded_at=datetime.fromtimestamp(status.st_mtime_ns / 1e9, tz=UTC),
    )


@transaction.atomic
def _write(rows: list[PackageFile]) -> None:
    """Insert `rows`, or update the existing rows of the same files (UPDATED_FIELDS only), in one transaction."""
    PackageFile.objects.bulk_create(
        rows, update_conflicts=True, unique_fields=["feed", "filename"], update_fields=UPDATED_FIELDS,
    )
