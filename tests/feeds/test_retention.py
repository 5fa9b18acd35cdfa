"""Feed Retention: the latest N versions per project (packaging's order) stay; dry run lists, real mode deletes."""
from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
from asgiref.sync import async_to_sync

from feeds.indexing import feed_index
from feeds.models import Feed, PackageFile
from feeds.retention import feed_retention_apply
from feeds.runners.feed_retention import FeedRetention
from feeds.selectors import project_files
from indexer.runner import Scheduler
from tests.feeds.builders import sdist_tar, wheel

pytestmark = pytest.mark.django_db

# In packaging's order 1.0 < 1.2 < 1.10 < 2.0rc1; as strings "2.0rc1" > "1.2" > "1.10" > "1.0".
OLD = ["pkg_a-1.0-py3-none-any.whl", "pkg_a-1.0.tar.gz", "pkg_a-1.2-py3-none-any.whl"]
KEPT = ["pkg_a-1.10-py3-none-any.whl", "pkg_a-2.0rc1-py3-none-any.whl", "pkg_b-0.1-py3-none-any.whl"]


@pytest.fixture
def versions(feed: Feed) -> Feed:
    for version in ("1.0", "1.2", "1.10", "2.0rc1"):
        wheel(feed.storage, "pkg-a", version)
    sdist_tar(feed.storage, "pkg-a", "1.0")
    wheel(feed.storage, "pkg-b", "0.1")
    feed_index(feed=feed)
    Feed.objects.filter(pk=feed.pk).update(retention_keep_latest=2)
    feed.refresh_from_db()
    return feed


def on_disk(feed: Feed) -> list[str]:
    return sorted(path.name for path in feed.storage.iterdir())


def indexed(feed: Feed) -> list[str]:
    return sorted(PackageFile.objects.filter(feed=feed).values_list("filename", flat=True))


def test_dry_run_lists_what_would_go_and_deletes_nothing(versions: Feed, caplog: pytest.LogCaptureFixture) -> None:
    Feed.objects.filter(pk=versions.pk).update(retention_dry_run=True)
    versions.refresh_from_db()
    with caplog.at_level(logging.INFO, logger="feeds.retention"):
        report = feed_retention_apply(feed=versions)
    assert report.doomed == OLD
    assert report.summary() == f"keep latest 2: would delete 3 file(s) ({', '.join(OLD)})"
    assert on_disk(versions) == sorted(OLD + KEPT) == indexed(versions)
    assert all(name in caplog.text for name in OLD) and "dry run" in caplog.text


def test_real_mode_deletes_the_files_and_their_rows(versions: Feed) -> None:
    report = feed_retention_apply(feed=versions)
    assert report.doomed == OLD and not report.failed
    assert on_disk(versions) == KEPT == indexed(versions)
    assert [file.version for file in project_files(feed=versions, project="pkg-a")] == ["1.10", "2.0rc1"]
    assert feed_index(feed=versions).removed == 0  # the index already agrees with the folder


def test_keep_zero_keeps_everything(versions: Feed) -> None:
    Feed.objects.filter(pk=versions.pk).update(retention_keep_latest=0)
    versions.refresh_from_db()
    report = feed_retention_apply(feed=versions)
    assert report.doomed == [] and report.summary() == "no retention rule (keeps every version)"
    assert on_disk(versions) == sorted(OLD + KEPT)


def test_the_runner_applies_the_rule_and_says_what_it_deleted(versions: Feed) -> None:
    [state] = async_to_sync(Scheduler([FeedRetention()], node="n1").run_once)()
    assert state.last_result == "ok", state.last_error
    assert on_disk(versions) == KEPT
    wheel(versions.storage, "pkg-b", "0.2")
    wheel(versions.storage, "pkg-b", "0.3")
    feed_index(feed=versions)
    ctx = SimpleNamespace(progress=lambda percent, message: None, stopping=False)
    note = FeedRetention().process_feed(feed="main", ctx=ctx)
    assert note == "main: keep latest 2: deleted 1 file(s) (pkg_b-0.1-py3-none-any.whl)"
