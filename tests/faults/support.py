"""Shared set-up of the fault tests: a node's data dir with an admin, a feed and a 1 s trigger poll,
and quick read-only looks at its SQLite database (no Django start-up per poll)."""
from __future__ import annotations

import contextlib
import http.client
import shutil
import sqlite3
from pathlib import Path
from urllib.parse import urlsplit

from tests.feeds.test_upload import basic, multipart
from tests.processes import manage, shell

ADMIN, PASSWORD = "admin", "faults-pw"
FEED = "main"
SLOW_RUNNER = "tests.indexer.slow_runner.SlowRunner"

PREPARE = f"""
from django.contrib.auth.models import User
from feeds.services import feed_create
from settings_store.services import setting_set
User.objects.create_superuser({ADMIN!r}, "admin@example.com", {PASSWORD!r})
setting_set(name="Service.TriggerPollSeconds", value="1", actor="test", source="test")
feed_create(name={FEED!r})
"""


def node_prepare(data_dir: Path, **env: str) -> Path:
    """Migrate the node at `data_dir` (or the database `env` names) and add the admin, the feed and a 1 s poll."""
    manage(data_dir, "migrate", "--no-input", **env)
    manage(data_dir, "shell", "--no-imports", "-c", PREPARE, **env)
    return data_dir


def node_copy(template: Path, data_dir: Path) -> Path:
    """A node at `data_dir` with a copy of the prepared SQLite node `template` (its feed folder now under `data_dir`).

    Seconds cheaper than node_prepare for every test that runs on the embedded database.
    """
    for name in ("proget.sqlite3", "proget.sqlite3-wal", "secret_key"):
        if (template / name).exists():
            shutil.copy2(template / name, data_dir / name)
    folder = data_dir / "packages" / FEED
    folder.mkdir(parents=True, exist_ok=True)
    with contextlib.closing(sqlite3.connect(data_dir / "proget.sqlite3")) as db, db:
        db.execute("UPDATE feeds_feed SET storage_path = ? WHERE name = ?", (str(folder), FEED))
    return data_dir


def not_due_yet(data_dir: Path, runner: str) -> None:
    """Record that `runner` ran a moment ago, so a starting service does not run it on its own."""
    shell(data_dir, "from django.utils import timezone; from indexer.models import RunnerRecord as R;"
                    f"R.objects.update_or_create(name={runner!r}, defaults={{'last_started_at': timezone.now()}})")


def query(data_dir: Path, sql: str, *params: object) -> list[tuple]:
    """Rows of `sql` on the node's SQLite database, read-only."""
    uri = f"file:{data_dir / 'proget.sqlite3'}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=10)) as db:
        return db.execute(sql, params).fetchall()


def trigger_rows(data_dir: Path) -> list[tuple[int, str, str]]:
    """(id, state, result) of every trigger, oldest first."""
    return query(data_dir, "SELECT id, state, result FROM indexer_trigger ORDER BY id")


def feed_listing(data_dir: Path) -> list[str]:
    """The entries of the feed's storage folder, dot-names (temps) included, sorted."""
    return sorted(entry.name for entry in (data_dir / "packages" / FEED).iterdir())


def upload_request(package: Path, *, user: str = ADMIN, password: str = PASSWORD) -> tuple[bytes, dict[str, str]]:
    """The body and headers twine would send to upload `package` (a wheel built as `<name>-<version>-...`)."""
    name, version = package.name.split("-")[:2]
    body, content_type = multipart({":action": "file_upload", "name": name, "version": version},
                                   filename=package.name, content=package.read_bytes())
    return body, {"Content-Type": content_type, "Authorization": basic(user, password)}


def post_upload(base: str, package: Path) -> tuple[int, str]:
    """Upload `package` to the feed at daphne `base` as the admin; (status, body)."""
    body, headers = upload_request(package)
    connection = http.client.HTTPConnection(urlsplit(base).netloc, timeout=30)
    try:
        connection.request("POST", f"/pypi/{FEED}/legacy/", body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()
