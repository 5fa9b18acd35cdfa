"""The feed storage runs out of space: a real, tiny tmpfs mounted over the node's packages folder.

An upload then gets a 507 that says so (no traceback, no partial file); a drop-path import fails with the
reason and keeps the dropped file; once space is back both work without any manual step.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.support import FEED, feed_listing, node_copy, post_upload, query
from tests.feeds.builders import wheel
from tests.feeds.servers import daphne_serving
from tests.processes import manage, shell

pytestmark = pytest.mark.slow

# The storage file system: room for the feed folder, not for the package below once the filler is in.
TMPFS_BYTES = 4 * 1024 * 1024
FILLER_BYTES = TMPFS_BYTES - 256 * 1024
PACKAGE_BYTES = 1024 * 1024


@contextlib.contextmanager
def tiny_file_system(mount_point: Path) -> Iterator[None]:
    """Mount a TMPFS_BYTES tmpfs at `mount_point` (skips the test where mounting is not permitted)."""
    mount_point.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_BYTES},mode=0755", "tmpfs",
                              str(mount_point)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): {mounted.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=True)


@pytest.fixture
def full_node(template: Path, tmp_path: Path) -> Iterator[Path]:
    """A node whose packages folder is a tiny tmpfs, filled up but for a few hundred KiB."""
    with tiny_file_system(tmp_path / "packages"):
        node_copy(template, tmp_path)
        (tmp_path / "packages" / "filler").write_bytes(b"\0" * FILLER_BYTES)
        yield tmp_path


def _big_wheel(folder: Path) -> Path:
    folder.mkdir(exist_ok=True)
    return wheel(folder, "big", "1.0", extra={"big_data.bin": os.urandom(PACKAGE_BYTES)})


def test_an_upload_to_a_full_disk_gets_507_leaves_nothing_and_works_once_space_is_back(full_node: Path) -> None:
    package = _big_wheel(full_node / "built")
    before = feed_listing(full_node)
    with daphne_serving(full_node, log=full_node / "daphne.log") as base:
        status, body = post_upload(base, package)
        assert status == 507, body
        assert body.startswith(f"no space left to store {package.name} in feed {FEED}"), body
        assert "Traceback" not in body
        assert feed_listing(full_node) == before, "a partial file was left in the feed folder"
        assert query(full_node, "SELECT filename FROM feeds_packagefile") == []

        (full_node / "packages" / "filler").unlink()
        status, body = post_upload(base, package)
        assert status == 200, body
        assert (full_node / "packages" / FEED / package.name).read_bytes() == package.read_bytes()

        # Any other storage failure is a 500 that still says what went wrong.
        other = wheel(full_node / "built", "other", "1.0")
        subprocess.run(["mount", "-o", "remount,ro", str(full_node / "packages")], check=True)
        try:
            status, body = post_upload(base, other)
        finally:
            subprocess.run(["mount", "-o", "remount,rw", str(full_node / "packages")], check=True)
        assert (status, body) == (500, f"cannot store {other.name} in feed {FEED}: Read-only file system\n")


def test_a_drop_path_import_on_a_full_disk_fails_with_the_reason_keeps_the_file_and_recovers(
    full_node: Path, tmp_path_factory: pytest.TempPathFactory,
) -> None:
    drop = tmp_path_factory.mktemp("drop")  # outside the data folder: a drop path may not overlap it
    package = _big_wheel(drop)
    os.utime(package, (0, 0))  # settled: not "still being written"
    shell(full_node, "from feeds.models import Feed;"
                     f"Feed.objects.filter(name={FEED!r}).update(drop_path={str(drop)!r})")
    before = feed_listing(full_node)

    ran = manage(full_node, "runindexer", "--once").stdout
    assert f"{FEED}: 0 imported, 0 already there, 0 rejected, 0 still being written, 1 failed " \
           f"({package.name}: No space left on device)" in ran, ran
    assert feed_listing(full_node) == before and package.exists(), "the dropped file must wait for space"

    (full_node / "packages" / "filler").unlink()
    shutil.rmtree(full_node / "built", ignore_errors=True)
    shell(full_node, "from indexer.models import RunnerRecord; RunnerRecord.objects.all().delete()")
    ran = manage(full_node, "runindexer", "--once").stdout
    assert f"{FEED}: 1 imported" in ran, ran
    assert not package.exists() and (full_node / "packages" / FEED / package.name).is_file()
