"""The drop path: complete files imported and indexed, files being written left, bad ones rejected with a reason."""
from __future__ import annotations

import errno
import hashlib
import os
import shutil
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
from asgiref.sync import async_to_sync

from feeds import dropping, placement
from feeds.dropping import drop_path_import
from feeds.indexing import feed_index
from feeds.models import Feed, PackageFile
from feeds.runners.drop_path_monitor import DropPathMonitor
from feeds.selectors import project_files
from indexer.runner import Scheduler
from tests.feeds.builders import metadata_text, wheel
from tests.feeds.servers import daphne_serving, pip_install
from tests.processes import ServiceProcess, manage, migrate, wait_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def drop(feed: Feed, tmp_path: Path) -> Path:
    folder = tmp_path / "drop"
    folder.mkdir()
    Feed.objects.filter(pk=feed.pk).update(drop_path=str(folder))
    feed.refresh_from_db()
    return folder


def settled(path: Path) -> Path:
    """Backdate the file as if its writer finished a while ago."""
    past = time.time() - 60
    os.utime(path, (past, past))
    return path


def written(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def rejected(drop: Path) -> dict[str, str]:
    """The rejected files and their reasons."""
    folder = drop / dropping.REJECTED_FOLDER
    return {
        path.name: (folder / f"{path.name}{dropping.REASON_SUFFIX}").read_text()
        for path in sorted(folder.glob("*")) if not path.name.endswith(dropping.REASON_SUFFIX)
    } if folder.exists() else {}


def test_a_complete_file_is_moved_into_storage_and_indexed(feed: Feed, drop: Path) -> None:
    dropped = settled(wheel(drop, "pkg-a", "1.0"))
    digest = hashlib.sha256(dropped.read_bytes()).hexdigest()
    report = drop_path_import(feed=feed)
    assert report.imported == ["pkg_a-1.0-py3-none-any.whl"] and not report.rejected
    assert not dropped.exists()
    assert hashlib.sha256((feed.storage / dropped.name).read_bytes()).hexdigest() == digest
    [row] = project_files(feed=feed, project="pkg-a")
    assert (row.filename, row.sha256, row.version) == (dropped.name, digest, "1.0")
    assert feed_index(feed=feed).unchanged == 1  # the indexer agrees with the row written at import


def test_a_file_still_being_written_is_left_for_the_next_pass(feed: Feed, drop: Path) -> None:
    partial = drop / "pkg_a-1.0-py3-none-any.whl"
    partial.write_bytes(wheel(drop.parent, "pkg-a", "1.0").read_bytes()[:100])  # half a wheel, just written
    report = drop_path_import(feed=feed)
    assert report.waiting == [partial.name] and not report.imported and not report.rejected
    assert partial.exists() and rejected(drop) == {} and not PackageFile.objects.exists()
    assert list(feed.storage.iterdir()) == []


def test_a_file_that_changes_while_it_is_read_is_left(
    feed: Feed, drop: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    dropped = settled(wheel(drop, "pkg-a", "1.0"))
    real_check = dropping.file_check

    def check_while_the_writer_appends(**kwargs: object) -> placement.CheckedFile:
        checked = real_check(**kwargs)
        with dropped.open("ab") as writer:
            writer.write(b"more")
        return checked

    monkeypatch.setattr(dropping, "file_check", check_while_the_writer_appends)
    report = drop_path_import(feed=feed)
    assert report.waiting == [dropped.name] and dropped.exists() and list(feed.storage.iterdir()) == []


def test_dot_names_are_a_writers_temps_and_never_touched(feed: Feed, drop: Path) -> None:
    temp = settled(wheel(drop, "pkg-a", "1.0", filename=".pkg_a-1.0-py3-none-any.whl.part"))
    report = drop_path_import(feed=feed)
    assert report.summary().startswith("0 imported") and temp.exists() and rejected(drop) == {}


def test_bad_package_files_go_to_rejected_with_their_reason(feed: Feed, drop: Path) -> None:
    settled(written(drop / "notes.zip", b"hello"))
    settled(wheel(drop, "pkg-a", "1.0", metadata=metadata_text("pkg-a", "2.0")))
    settled(written(drop / "pkg_b-1.0-py3-none-any.whl", b"not a zip"))
    report = drop_path_import(feed=feed)
    assert sorted(report.rejected) == ["notes.zip", "pkg_a-1.0-py3-none-any.whl", "pkg_b-1.0-py3-none-any.whl"]
    reasons = rejected(drop)
    assert "invalid package file name" in reasons["notes.zip"]
    assert "metadata says 2.0" in reasons["pkg_a-1.0-py3-none-any.whl"]
    assert "damaged or truncated archive" in reasons["pkg_b-1.0-py3-none-any.whl"]
    assert sorted(path.name for path in drop.iterdir()) == ["rejected"]
    assert list(feed.storage.iterdir()) == [] and not PackageFile.objects.exists()


def test_a_name_already_stored_is_rejected_unless_identical(feed: Feed, drop: Path, tmp_path: Path) -> None:
    stored = wheel(feed.storage, "pkg-a", "1.0")
    feed_index(feed=feed)
    same = drop / stored.name
    shutil.copy2(stored, same)
    settled(same)
    assert drop_path_import(feed=feed).duplicates == [stored.name] and not same.exists()

    other = tmp_path / "other"
    other.mkdir()
    different = wheel(other, "pkg-a", "1.0", extra={"extra.txt": b"different"})
    original = stored.read_bytes()
    settled(Path(shutil.copy2(different, drop / different.name)))
    report = drop_path_import(feed=feed)
    assert report.rejected == [stored.name]
    assert "a different file called pkg_a-1.0-py3-none-any.whl is already in feed main" in rejected(drop)[stored.name]
    assert stored.read_bytes() == original


def test_across_file_systems_the_file_is_copied_to_a_dot_temp_then_renamed(
    feed: Feed, drop: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    dropped = settled(wheel(drop, "pkg-a", "1.0"))
    data = dropped.read_bytes()
    names_when_renamed: list[list[str]] = []
    real_link, real_replace = os.link, os.replace

    def link(source: Path, target: Path, **kwargs: object) -> None:
        if Path(source).parent == drop:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        names_when_renamed.append(sorted(os.listdir(feed.storage)))
        real_link(source, target, **kwargs)

    def replace(source: Path, target: Path) -> None:
        if Path(source).parent == drop and Path(target).parent == feed.storage:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        real_replace(source, target)

    monkeypatch.setattr(placement.os, "link", link)
    monkeypatch.setattr(placement.os, "replace", replace)
    assert drop_path_import(feed=feed).imported == [dropped.name]
    [before] = names_when_renamed
    assert len(before) == 1 and before[0].startswith(f".{dropped.name}.")  # the whole copy, under a dot-name
    assert os.listdir(feed.storage) == [dropped.name] and not dropped.exists()
    assert (feed.storage / dropped.name).read_bytes() == data


def test_the_indexer_skips_a_dot_temp_in_storage(feed: Feed) -> None:
    wheel(feed.storage, "pkg-a", "1.0", filename=".pkg_a-1.0-py3-none-any.whl.0123.tmp")
    assert feed_index(feed=feed).files == 0


def test_the_runner_imports_and_says_what_it_did(feed: Feed, drop: Path) -> None:
    settled(wheel(drop, "pkg-a", "1.0"))
    settled(written(drop / "junk.tar.gz", b"junk"))
    [state] = async_to_sync(Scheduler([DropPathMonitor()], node="n1").run_once)()
    assert state.last_result == "ok", state.last_error
    assert project_files(feed=feed, project="pkg-a") and "junk.tar.gz" in rejected(drop)
    settled(wheel(drop, "pkg-b", "1.0"))
    ctx = SimpleNamespace(progress=lambda percent, message: None, stopping=False)
    note = DropPathMonitor().process_feed(feed="main", ctx=ctx)
    assert note == "main: 1 imported, 0 already there, 0 rejected, 0 still being written, 0 failed"


@pytest.mark.slow
def test_a_file_copied_into_the_drop_path_becomes_installable_by_itself(tmp_path: Path) -> None:
    data, drop = tmp_path / "data", tmp_path / "drop"
    drop.mkdir()
    migrate(data)
    manage(data, "settings", "set", "Runners.DropPathMonitor.IntervalSeconds", "5")
    manage(data, "feeds", "create", "main", "--drop-path", str(drop))
    built = tmp_path / "built"
    built.mkdir()
    package = wheel(built, "dropped-pkg", "1.0")
    service = ServiceProcess(data).start()
    try:
        with daphne_serving(data, log=tmp_path / "daphne.log") as base:
            shutil.copy(package, drop / package.name)  # a plain copy, as an admin would do it
            project = f"{base}/pypi/main/simple/dropped-pkg/"
            wait_for(lambda: _listed(project, package.name), timeout=40, what="the dropped file to be served")
            target = tmp_path / "site"
            result = pip_install(base, "dropped-pkg", target=target)
    finally:
        service.stop()
    assert result.returncode == 0, result.stdout + result.stderr
    assert (target / "dropped_pkg_mod.py").read_text() == "VERSION = '1.0'\n"
    assert not (drop / package.name).exists()


def _listed(url: str, filename: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return filename in response.read().decode()
    except OSError:
        return False


def test_a_drop_path_inside_the_feed_folder_is_refused_and_nothing_is_touched(feed: Feed) -> None:
    stored = settled(wheel(feed.storage, "pkg-a", "1.0"))
    feed_index(feed=feed)
    Feed.objects.filter(pk=feed.pk).update(drop_path=str(feed.storage))
    feed.refresh_from_db()
    report = drop_path_import(feed=feed)
    assert "inside the feed's own folder" in report.summary() and stored.exists()
