"""Indexing a feed's folder: good files listed, hostile ones recorded as errors, incremental, removals forgotten."""
from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync

from feeds import indexing
from feeds.indexing import feed_index
from feeds.models import Feed, PackageFile
from feeds.placement import STALE_TEMP_SECONDS
from feeds.runners.feed_indexing import FeedIndexing
from feeds.selectors import feed_projects, project_files
from indexer.runner import Scheduler
from tests.feeds.builders import metadata_text, sdist_tar, wheel

pytestmark = pytest.mark.django_db


def errors(feed: Feed) -> dict[str, str]:
    return dict(PackageFile.objects.filter(feed=feed).exclude(index_error="").values_list("filename", "index_error"))


def test_good_files_are_indexed_with_hash_size_and_metadata(feed: Feed) -> None:
    path = wheel(feed.storage, "pkg-a", "1.0", requires_python=">=3.8")
    sdist_tar(feed.storage, "pkg-a", "1.0")
    report = feed_index(feed=feed)
    assert (report.files, report.read, report.errors) == (2, 2, 0)
    row = PackageFile.objects.get(feed=feed, filename=path.name)
    assert (row.project, row.version, row.requires_python, row.summary) == ("pkg-a", "1.0", ">=3.8", "pkg-a for tests")
    assert (row.size, row.sha256) == (path.stat().st_size, hashlib.sha256(path.read_bytes()).hexdigest())
    feed.refresh_from_db()
    assert feed.last_indexed_at is not None
    assert feed.last_index_result == "2 file(s): 2 read, 0 unchanged, 0 removed, 0 error(s)"


def test_every_hostile_file_gets_its_own_error_and_the_run_goes_on(feed: Feed, tmp_path: Path) -> None:
    folder = feed.storage
    truncated = wheel(folder, "trunc", "1.0")
    truncated.write_bytes(truncated.read_bytes()[:200])
    wheel(folder, "bomb", "1.0", metadata=metadata_text("bomb", "1.0") + b" " * (900 * 1024))
    wheel(folder, "travel", "1.0", extra={"../../evil.py": b"x"})
    sdist_tar(folder, "huge", "1.0", pkg_info=os.urandom(2 * 1024 * 1024))
    latin1 = metadata_text("latin", "1.0", summary="caf\u00e9").decode().encode("latin-1")
    wheel(folder, "latin", "1.0", metadata=latin1)
    outside = wheel(tmp_path, "outside", "1.0")  # a valid package, but not in the feed's folder
    (folder / outside.name).symlink_to(outside)
    (folder / "readme.txt").write_text("not a package")
    wheel(folder, "good", "1.0")
    progress: list[tuple[float, str]] = []

    report = feed_index(feed=feed, progress=lambda percent, message: progress.append((percent, message)))

    assert (report.files, report.errors) == (8, 7)
    assert feed_projects(feed=feed) == ["good"]
    found = errors(feed)
    assert "damaged or truncated archive" in found["trunc-1.0-py3-none-any.whl"]
    assert "zip bomb" in found["bomb-1.0-py3-none-any.whl"]
    assert "path traversal" in found["travel-1.0-py3-none-any.whl"]
    assert "refusing more than" in found["huge-1.0.tar.gz"]
    assert "not UTF-8" in found["latin-1.0-py3-none-any.whl"]
    assert found[outside.name] == "symlink points outside the feed folder; not followed"
    assert "not a Python package file" in found["readme.txt"]
    link_row = PackageFile.objects.get(feed=feed, filename=outside.name)
    # The row describes the link itself: its target was never opened.
    assert link_row.sha256 == "" and link_row.size == os.lstat(folder / outside.name).st_size
    assert [message for _, message in progress] == [f"main: {name}" for name in sorted(os.listdir(folder))]
    assert [percent for percent, _ in progress] == [100 * i / 8 for i in range(8)]


def test_a_symlink_to_a_file_inside_the_folder_is_indexed(feed: Feed) -> None:
    real = wheel(feed.storage, "pkg-a", "1.0")
    (feed.storage / "pkg_a-1.0-py2.py3-none-any.whl").symlink_to(real.name)
    assert feed_index(feed=feed).errors == 0
    assert len(project_files(feed=feed, project="pkg-a")) == 2


def test_unchanged_files_are_not_read_again(feed: Feed, monkeypatch: pytest.MonkeyPatch) -> None:
    wheel(feed.storage, "pkg-a", "1.0")
    bad = wheel(feed.storage, "pkg-b", "1.0", extra={"../x": b""})
    assert feed_index(feed=feed).read == 2

    def no_reads(**_: object) -> None:
        raise AssertionError("an unchanged file was read")

    monkeypatch.setattr(indexing, "_read", no_reads)
    report = feed_index(feed=feed)
    assert (report.read, report.unchanged, report.errors) == (0, 2, 1)
    monkeypatch.undo()

    os.utime(bad, ns=(bad.stat().st_atime_ns, bad.stat().st_mtime_ns + 1_000_000_000))
    report = feed_index(feed=feed)
    assert (report.read, report.unchanged) == (1, 1)


def test_a_rewritten_file_is_read_again_and_its_row_updated(feed: Feed) -> None:
    path = wheel(feed.storage, "pkg-a", "1.0")
    feed_index(feed=feed)
    wheel(feed.storage, "pkg-a", "1.0", requires_python=">=3.10")
    os.utime(path, ns=(0, path.stat().st_mtime_ns + 1_000_000_000))
    assert feed_index(feed=feed).read == 1
    assert PackageFile.objects.get(filename=path.name).requires_python == ">=3.10"


def test_a_removed_file_is_deindexed(feed: Feed) -> None:
    path = wheel(feed.storage, "pkg-a", "1.0")
    wheel(feed.storage, "pkg-b", "1.0")
    feed_index(feed=feed)
    path.unlink()
    report = feed_index(feed=feed)
    assert (report.removed, report.files) == (1, 1)
    assert feed_projects(feed=feed) == ["pkg-b"]


def test_hidden_files_and_folders_are_skipped(feed: Feed) -> None:
    (feed.storage / ".upload-tmp").write_bytes(b"partial")
    (feed.storage / "sub").mkdir()
    assert feed_index(feed=feed).files == 0


def test_temps_left_by_a_killed_writer_are_removed_once_stale_and_fresh_ones_kept(feed: Feed) -> None:
    stale = feed.storage / ".pkg-1.0.whl.0123456789abcdef.tmp"
    fresh = feed.storage / ".pkg-2.0.whl.fedcba9876543210.tmp"
    other = feed.storage / ".keep-me"
    for path in (stale, fresh, other):
        path.write_bytes(b"partial")
    old = time.time() - STALE_TEMP_SECONDS - 60
    os.utime(stale, (old, old))
    os.utime(other, (old, old))
    assert feed_index(feed=feed).files == 0
    assert not stale.exists() and fresh.exists() and other.exists()  # a copy may still be writing the fresh one


def test_stopping_ends_the_run_between_files(feed: Feed) -> None:
    wheel(feed.storage, "pkg-a", "1.0")
    wheel(feed.storage, "pkg-b", "1.0")
    seen: list[str] = []
    report = feed_index(feed=feed, progress=lambda _, message: seen.append(message), stopping=lambda: bool(seen))
    assert report.stopped and report.read == 1 and report.summary().endswith("stopped early")
    # What was read before the stop is written (rows are written in batches, the last one at the end).
    assert feed_projects(feed=feed) == ["pkg-a"]


def test_rows_written_in_batches_insert_update_and_keep_upload_time(
    feed: Feed, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(indexing, "WRITE_BATCH", 2)
    paths = [wheel(feed.storage, f"pkg-{n}", "1.0") for n in range(5)]
    (feed.storage / "junk.txt").write_text("not a package")
    assert (feed_index(feed=feed).read, PackageFile.objects.filter(feed=feed).count()) == (6, 6)
    first = PackageFile.objects.get(filename=paths[0].name)
    wheel(feed.storage, "pkg-0", "1.0", requires_python=">=3.10")
    os.utime(paths[0], ns=(0, paths[0].stat().st_mtime_ns + 1_000_000_000))
    paths[1].unlink()
    report = feed_index(feed=feed)
    assert (report.read, report.unchanged, report.removed, report.errors) == (1, 4, 1, 1)
    again = PackageFile.objects.get(filename=paths[0].name)
    assert (again.pk, again.uploaded_at, again.requires_python) == (first.pk, first.uploaded_at, ">=3.10")
    assert again.sha256 == hashlib.sha256(paths[0].read_bytes()).hexdigest() != first.sha256
    assert feed_projects(feed=feed) == ["pkg-0", "pkg-2", "pkg-3", "pkg-4"]


def test_a_missing_folder_is_recorded_on_the_feed(feed: Feed) -> None:
    feed.storage.rmdir()
    report = feed_index(feed=feed)
    feed.refresh_from_db()
    assert report.problem.startswith("cannot list the storage folder")
    assert feed.last_index_result.startswith("failed: cannot list the storage folder")


def test_the_feed_indexing_runner_indexes_the_feeds(feed: Feed) -> None:
    wheel(feed.storage, "pkg-a", "1.0")
    scheduler = Scheduler([FeedIndexing()], node="n1")
    states = async_to_sync(scheduler.run_once)()
    assert states[0].last_message == "indexed 1 feed(s)"
    assert feed_projects(feed=feed) == ["pkg-a"]
