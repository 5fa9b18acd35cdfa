"""Feed Integrity: a changed or vanished file is flagged on its row and in the report; no file is ever touched."""
from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest
from asgiref.sync import async_to_sync

from feeds.indexing import feed_index
from feeds.integrity import feed_integrity_check
from feeds.models import Feed, PackageFile
from feeds.runners.feed_integrity import FeedIntegrity
from feeds.selectors import feed_projects
from indexer.runner import Scheduler
from tests.feeds.builders import wheel

pytestmark = pytest.mark.django_db

A, B, C = "pkg_a-1.0-py3-none-any.whl", "pkg_b-1.0-py3-none-any.whl", "pkg_c-1.0-py3-none-any.whl"


@pytest.fixture
def indexed(feed: Feed) -> Feed:
    for name in ("pkg-a", "pkg-b", "pkg-c"):
        wheel(feed.storage, name, "1.0")
    feed_index(feed=feed)
    return feed


def flags(feed: Feed) -> dict[str, str]:
    return dict(PackageFile.objects.filter(feed=feed).values_list("filename", "integrity_error"))


def corrupt(path: Path) -> tuple[bytes, os.stat_result]:
    """Flip one byte in place and put the mtime back, as bit rot would: the indexer sees no change."""
    status = path.stat()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns))
    return bytes(data), path.stat()


def test_all_good_flags_nothing_and_records_the_check(indexed: Feed) -> None:
    report = feed_integrity_check(feed=indexed)
    assert (report.checked, report.changed, report.missing) == (3, [], [])
    assert set(flags(indexed).values()) == {""}
    assert not PackageFile.objects.filter(integrity_checked_at=None).exists()


def test_a_modified_and_a_vanished_file_are_flagged_and_nothing_is_modified(indexed: Feed) -> None:
    data, status = corrupt(indexed.storage / A)
    (indexed.storage / B).unlink()
    report = feed_integrity_check(feed=indexed)
    assert (report.checked, report.changed, report.missing) == (3, [A], [B])
    assert report.summary() == f"3 file(s) checked, 1 changed, 1 missing ({A}, {B})"
    found = flags(indexed)
    assert found[A].startswith("changed: sha256 is ") and found[B].startswith("missing:") and found[C] == ""
    assert (indexed.storage / A).read_bytes() == data
    assert (indexed.storage / A).stat().st_mtime_ns == status.st_mtime_ns
    assert not (indexed.storage / B).exists()
    # pip no longer sees the flagged files: a corrupted download is never offered.
    assert feed_projects(feed=indexed) == ["pkg-c"]


def test_a_file_that_matches_again_is_cleared(indexed: Feed) -> None:
    original = (indexed.storage / A).read_bytes()
    status = (indexed.storage / A).stat()
    corrupt(indexed.storage / A)
    feed_integrity_check(feed=indexed)
    (indexed.storage / A).write_bytes(original)  # restored from a backup
    os.utime(indexed.storage / A, ns=(status.st_atime_ns, status.st_mtime_ns))
    assert feed_integrity_check(feed=indexed).changed == []
    assert flags(indexed)[A] == ""


def test_the_runner_checks_every_feed_and_says_what_it_found(indexed: Feed) -> None:
    (indexed.storage / C).unlink()
    [state] = async_to_sync(Scheduler([FeedIntegrity()], node="n1").run_once)()
    assert state.last_result == "ok", state.last_error
    assert flags(indexed)[C].startswith("missing:")
    ctx = SimpleNamespace(progress=lambda percent, message: None, stopping=False)
    note = FeedIntegrity().process_feed(feed="main", ctx=ctx)
    assert note == f"main: 3 file(s) checked, 0 changed, 1 missing ({C})"
