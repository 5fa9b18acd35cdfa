"""Importing the package files dropped into a feed's drop path: checked, stored atomically, then indexed.

Only files named like packages (wheels, sdists: feeds.metadata.package_kind) are touched; others stay where they
are. A file still being written is left for the next pass; one that fails the checks goes to
`<drop path>/rejected/` with `<file>.reason.txt` beside it. A file leaves the drop path only once it is
stored or rejected, so nothing dropped is ever lost. Dot-names are skipped: write `.x.whl`, then rename.
"""
from __future__ import annotations

import logging
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from feeds.metadata import MetadataError, package_kind
from feeds.models import Feed
from feeds.placement import (
    TEMP_PREFIX,
    CheckedFile,
    FileExists,
    file_check,
    file_sha256,
    file_store,
    package_file_record,
)
from feeds.services import drop_path_problem
from feeds.storage import Progress, files_in_turn

logger = logging.getLogger(__name__)

REJECTED_FOLDER = "rejected"
REASON_SUFFIX = ".reason.txt"
# A file modified this recently may still be being copied in; it waits for the next pass.
SETTLE_SECONDS = 2.0



@dataclass(kw_only=True)
class DropReport:
    """What one pass over one feed's drop path did (file names in each list)."""

    imported: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)  # identical to a stored file: dropped copy removed
    rejected: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)  # still being written: left for the next pass
    failed: list[str] = field(default_factory=list)  # could not be moved (e.g. permissions): left in place
    failure: str = ""  # why the last of `failed` could not be moved, e.g. "x.whl: No space left on device"
    stopped: bool = False
    problem: str = ""  # why the drop path could not be read at all

    def summary(self) -> str:
        if self.problem:
            return f"failed: {self.problem}"
        text = (f"{len(self.imported)} imported, {len(self.duplicates)} already there, "
                f"{len(self.rejected)} rejected, {len(self.waiting)} still being written, {len(self.failed)} failed")
        if self.failure:
            text = f"{text} ({self.failure})"
        return f"{text}; stopped early" if self.stopped else text


def drop_path_import(
    *, feed: Feed, clock: Callable[[], float] = time.time, progress: Progress | None = None,
    stopping: Callable[[], bool] = lambda: False,
) -> DropReport:
    """Import every complete file in `feed`'s drop path (`clock` gives "now" as a Unix time)."""
    report = DropReport()
    if not feed.drop_path:
        return report
    drop = Path(feed.drop_path)
    problem = drop_path_problem(drop_path=feed.drop_path, feed_name=feed.name, storage=feed.storage)
    if problem:  # set before the rule existed, or a folder moved since: the rule holds at every pass
        report.problem = f"{problem}; not imported from"
        logger.warning("feed %s: %s", feed.name, report.problem)
        return report
    try:
        names = sorted(
            entry.name for entry in os.scandir(drop)
            if not entry.name.startswith(TEMP_PREFIX) and not entry.is_dir(follow_symlinks=False)
            and package_kind(entry.name) is not None  # anything else is someone's file: never moved
        )
    except OSError as exc:
        report.problem = f"cannot list the drop path {drop}: {exc.strerror or exc}"
        logger.warning("feed %s: %s", feed.name, report.problem)
        return report
    for name in files_in_turn(names, feed=feed.name, report=report, stopping=stopping, progress=progress):
        _import_one(feed=feed, path=drop / name, now=clock(), report=report)
    if names:
        logger.info("feed %s drop path: %s", feed.name, report.summary())
    return report


def _import_one(*, feed: Feed, path: Path, now: float, report: DropReport) -> None:
    name = path.name
    try:
        first = os.lstat(path)
    except FileNotFoundError:
        return  # taken away since the folder was listed
    if not stat.S_ISREG(first.st_mode):
        _reject(path=path, reason="not a regular file (links and devices are not imported)", report=report)
        return
    if now - first.st_mtime < SETTLE_SECONDS:
        report.waiting.append(name)
        return
    checked, reason = _check(path=path)
    try:
        second = os.lstat(path)
    except FileNotFoundError:
        return
    if (second.st_size, second.st_mtime_ns) != (first.st_size, first.st_mtime_ns):
        report.waiting.append(name)  # written to while we read it
        return
    if checked is None:
        _reject(path=path, reason=reason, report=report)
        return
    storage = feed.storage
    if os.path.lexists(storage / name):
        _import_existing(feed=feed, path=path, checked=checked, report=report)
        return
    try:
        file_store(source=path, root=storage, name=name, overwrite=False, move=True)
    except FileExists as exc:  # stored by someone else since we looked
        _reject(path=path, reason=str(exc), report=report)
        return
    except OSError as exc:
        logger.warning("feed %s: cannot store %s from the drop path: %s", feed.name, name, exc)
        report.failed.append(name)
        report.failure = f"{name}: {exc.strerror or exc}"
        return
    package_file_record(feed=feed, name=name, checked=checked)
    report.imported.append(name)


def _check(*, path: Path) -> tuple[CheckedFile | None, str]:
    """The file's checks, or None and why it is refused."""
    try:
        with os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW), "rb") as stream:
            return file_check(stream=stream, name=path.name), ""
    except MetadataError as exc:
        return None, str(exc)
    except OSError as exc:
        return None, f"cannot read the file: {exc.strerror or exc}"


def _import_existing(*, feed: Feed, path: Path, checked: CheckedFile, report: DropReport) -> None:
    """A file of that name is stored already: drop the copy when identical, reject it otherwise."""
    try:
        identical = file_sha256(path=feed.storage / path.name) == checked.sha256
    except OSError:
        identical = False
    if not identical:
        _reject(path=path, reason=f"a different file called {path.name} is already in feed {feed.name}", report=report)
        return
    path.unlink()
    package_file_record(feed=feed, name=path.name, checked=checked)
    report.duplicates.append(path.name)


def _reject(*, path: Path, reason: str, report: DropReport) -> None:
    """Move the file to `rejected/` (replacing an earlier reject of that name) with its reason beside it."""
    folder = path.parent / REJECTED_FOLDER
    try:
        folder.mkdir(exist_ok=True)
        os.replace(path, folder / path.name)
        (folder / f"{path.name}{REASON_SUFFIX}").write_text(reason + "\n", encoding="utf-8", errors="replace")
    except OSError as exc:
        logger.warning("cannot reject %s (%s): %s", path, reason, exc)
        report.failed.append(path.name)
        return
    logger.warning("rejected %s from the drop path: %s", path.name, reason)
    report.rejected.append(path.name)
