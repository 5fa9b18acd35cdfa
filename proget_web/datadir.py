"""Where a node keeps what it writes (PROGET_DATA_DIR), and secrets generated into it.

Kept free of Django so settings.py can use it. Secret files appear atomically, whole, with mode 0600.
"""
from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """The node's data directory, created if missing (default: ./data beside manage.py)."""
    path = Path(os.environ.get("PROGET_DATA_DIR") or BASE_DIR / "data").resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def read_or_create_secret(path: Path, *, nbytes: int = 50) -> str:
    """Return the secret stored at `path`, generating it on first use.

    The new secret is written to a temporary file which is then hard-linked into place: the link
    either appears complete or fails because another process won the race, whose secret we read.
    """
    if path.exists():
        return path.read_text().strip()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".secret-")  # mkstemp creates it 0600
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(nbytes))
        with contextlib.suppress(FileExistsError):  # another process won the race: use its secret
            os.link(tmp, path)
    finally:
        os.unlink(tmp)
    return path.read_text().strip()
