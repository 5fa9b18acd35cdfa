"""A drop path can never point the drop monitor at the node's own files: the data folder (database, secret key,
sockets), the packages root, this feed's or another feed's storage, another feed's drop path are refused on create
and edit, and skipped at import time if stored before; and the monitor leaves files that are no package alone."""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from feeds import dropping
from feeds.dropping import drop_path_import
from feeds.models import Feed
from feeds.services import FeedError, feed_create, feed_update
from tests.feeds.builders import wheel

pytestmark = pytest.mark.django_db

# Files a node keeps in its data folder, which the monitor once moved into rejected/.
NODE_FILES = ("proget.sqlite3", "secret_key", "notes.txt", "config.json")


def _settled(path: Path) -> Path:
    past = os.stat(path).st_mtime - 60
    os.utime(path, (past, past))
    return path


@pytest.fixture
def other(tmp_path: Path, feed: Feed) -> Feed:
    """A second feed, with a drop path of its own."""
    (tmp_path / "other-drop").mkdir()
    return feed_create(name="other", drop_path=str(tmp_path / "other-drop"))


def _refused(tmp_path: Path, feed: Feed, other: Feed) -> dict[str, Path]:
    data = Path(settings.DATA_DIR)
    (tmp_path / "link-to-data").symlink_to(data)
    return {
        "the data folder": data,
        "inside the data folder": data / "run",
        "a folder containing the data folder": data.parent,
        "the data folder through a link": tmp_path / "link-to-data",
        "the packages root": tmp_path / "packages",
        "inside the packages root": tmp_path / "packages" / "new-feed",
        "this feed's storage": feed.storage,
        "inside this feed's storage": feed.storage / "sub",
        "another feed's storage": other.storage,
        "another feed's drop path": Path(other.drop_path),
        "inside another feed's drop path": Path(other.drop_path) / "rejected",
        "a folder containing another feed's drop path": tmp_path,
    }


def test_drop_paths_over_the_nodes_own_folders_are_refused_on_create_and_edit(
        tmp_path: Path, feed: Feed, other: Feed) -> None:
    for what, path in _refused(tmp_path, feed, other).items():
        with pytest.raises(FeedError, match="drop path"):
            feed_update(name=feed.name, description="", drop_path=str(path), keep_latest=0, dry_run=False)
        if what.startswith("this feed"):
            continue
        with pytest.raises(FeedError, match="drop path"):
            feed_create(name="third", drop_path=str(path))
    assert Feed.objects.get(name=feed.name).drop_path == ""
    assert not Feed.objects.filter(name="third").exists()


@pytest.mark.parametrize("bad", ["relative/drop", "/srv/drop\x00x", "/srv/../etc", "/"])
def test_a_drop_path_that_is_no_sane_absolute_folder_is_refused(bad: str, feed: Feed) -> None:
    with pytest.raises(FeedError, match="drop path"):
        feed_create(name="third", drop_path=bad)


def test_a_separate_folder_is_still_a_drop_path(tmp_path: Path, feed: Feed, other: Feed) -> None:
    (tmp_path / "drop").mkdir()
    changed = feed_update(name=feed.name, description="", drop_path=str(tmp_path / "drop"), keep_latest=0,
                          dry_run=False)
    assert changed.drop_path == str(tmp_path / "drop")


@pytest.fixture
def data_folder_file() -> Iterator[Path]:
    """A settled file in the data folder (which the monitor must not touch), removed afterwards."""
    path = Path(settings.DATA_DIR) / "secret_key_copy"
    path.write_bytes(b"precious")
    yield _settled(path)
    path.unlink(missing_ok=True)


def test_a_data_folder_drop_path_stored_before_the_rule_is_not_imported_from(
        feed: Feed, data_folder_file: Path) -> None:
    Feed.objects.filter(pk=feed.pk).update(drop_path=str(data_folder_file.parent))
    feed.refresh_from_db()
    report = drop_path_import(feed=feed)
    assert "data folder" in report.problem and report.summary().startswith("failed: ")
    assert data_folder_file.read_bytes() == b"precious"
    assert not (data_folder_file.parent / dropping.REJECTED_FOLDER).exists()


def test_the_monitor_leaves_files_that_are_no_package_alone(tmp_path: Path, feed: Feed) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    feed_update(name=feed.name, description="", drop_path=str(drop), keep_latest=0, dry_run=False)
    feed.refresh_from_db()
    for name in (*NODE_FILES, "pkg_b-1.0-py3-none-any.whl"):
        (drop / name).write_bytes(b"precious" if name in NODE_FILES else b"not a zip")
        _settled(drop / name)
    _settled(wheel(drop, "pkg-a", "1.0"))
    report = drop_path_import(feed=feed)
    assert report.imported == ["pkg_a-1.0-py3-none-any.whl"] and report.rejected == ["pkg_b-1.0-py3-none-any.whl"]
    for name in NODE_FILES:
        assert (drop / name).read_bytes() == b"precious", name
    assert sorted(path.name for path in (drop / dropping.REJECTED_FOLDER).iterdir()) == [
        "pkg_b-1.0-py3-none-any.whl", f"pkg_b-1.0-py3-none-any.whl{dropping.REASON_SUFFIX}"]
