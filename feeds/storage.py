"""Opening a file of a feed's storage folder without ever leaving the folder.

A name is one entry of the folder; a symlink is followed only when it resolves to a regular file inside
the folder, and the file is opened with O_NOFOLLOW, so a link swapped in meanwhile is refused too.
"""
from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO, Protocol


class FileRefused(Exception):
    """A folder entry we will not open; the message says why."""


def file_locate(*, root: Path, name: str) -> tuple[Path, os.stat_result]:
    """The real path of entry `name` of folder `root` (resolved) and its status; raises FileRefused, OSError."""
    if not name or name in {".", ".."} or "/" in name or "\x00" in name:
        raise FileRefused(f"{name!r} is not a file name")
    path = root / name
    status = os.lstat(path)
    if stat.S_ISLNK(status.st_mode):
        path = path.resolve()
        if not path.is_relative_to(root):
            raise FileRefused("symlink points outside the feed folder; not followed")
        status = os.stat(path)
    if not stat.S_ISREG(status.st_mode):
        raise FileRefused("not a regular file")
    return path, status


def file_open(*, path: Path) -> tuple[BinaryIO, os.stat_result]:
    """Open `path` (from file_locate) for reading, refusing a link or non-file put there since; raises OSError."""
    stream = os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW), "rb")
    status = os.fstat(stream.fileno())
    if not stat.S_ISREG(status.st_mode):
        stream.close()
        raise OSError(f"{path.name} is not a regular file")
    return stream, status


Progress = Callable[[float, str], None]


class Stoppable(Protocol):
    stopped: bool


def files_in_turn(
    names: Sequence[str], *, feed: str, report: Stoppable, stopping: Callable[[], bool], progress: Progress | None,
) -> Iterator[str]:
    """Yield `names` one by one with progress ("feed: file"); stop early, noting it in `report`, when asked to."""
    for position, name in enumerate(names):
        if stopping():
            report.stopped = True
            return
        if progress is not None:
            progress(100 * position / len(names), f"{feed}: {name}")
        yield name
