"""What a node (runindexer, daphne) checks before it serves: the data dir and the files holding secrets are private.

Both entry points call node_start_refusal() and stop with its one line: the database holds the messenger key,
sessions and password hashes, which other local users must not read.
"""
from __future__ import annotations

from pathlib import Path

from django.conf import settings

from node_base.datadir import exposure

SQLITE_ENGINE = "django.db.backends.sqlite3"


def node_start_refusal() -> str | None:
    """Why this node must not start (one line), or None: see node_base.datadir.exposure."""
    database = settings.DATABASES["default"]
    sqlite = Path(database["NAME"]) if database["ENGINE"] == SQLITE_ENGINE else None
    return exposure(Path(settings.DATA_DIR), sqlite)
