"""Where a node keeps what it writes (PROGET_DATA_DIR), and secrets generated into it.

Kept free of Django so settings.py can use it. The data dir is created 0700, the SQLite database 0600
(SQLite gives its -wal and -shm the database's mode); secret files appear atomically, whole, with mode 0600.
exposure() is what a node checks before it starts: none of these may be open to other users.
"""
from __future__ import annotations

import contextlib
import os
import secrets
import stat
import tempfile
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

# The data dir holds the database (messenger key, sessions, password hashes) and the secret key:
# only the nodes' own user may enter it, and only that user may read the files holding secrets.
DATA_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
# Permission bits that give group or other users any access.
_OTHERS = stat.S_IRWXG | stat.S_IRWXO
SECRET_KEY_FILE = "secret_key"
# SQLite's companions of a database file in WAL mode; they hold recent pages of it.
SQLITE_SIDE_FILES = ("-wal", "-shm")


def data_dir() -> Path:
    """The node's data directory, created 0700 if missing (default: ./data beside manage.py)."""
    path = Path(os.environ.get("PROGET_DATA_DIR") or BASE_DIR / "data").resolve()
    path.mkdir(mode=DATA_DIR_MODE, parents=True, exist_ok=True)
    return path


def private_file(path: Path) -> Path:
    """Create `path` empty with mode 0600 unless it exists (an empty file is a valid, empty SQLite database)."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE))
    return path


def exposure(data_dir: Path, database: Path | None) -> str | None:
    """One line naming the first of the data dir, the SQLite `database` (with -wal, -shm) and the secret key
    file that other users can access, with the command that fixes it; None when all are private.

    Files that do not exist are skipped: a PostgreSQL node passes database=None.
    """
    files = [data_dir / SECRET_KEY_FILE]
    if database is not None:
        files += [database, *(database.with_name(database.name + side) for side in SQLITE_SIDE_FILES)]
    for path, private_mode in [(data_dir, DATA_DIR_MODE), *((file, PRIVATE_FILE_MODE) for file in files)]:
        try:
            mode = stat.S_IMODE(os.stat(path).st_mode)
        except FileNotFoundError:
            continue
        if mode & _OTHERS:
            return (f"refusing to start: other users can access {path} (mode {mode:04o}); the data dir, database "
                    f"and secret key must be private to this user: run chmod {private_mode:o} {path}")
    return None


def read_or_create_secret(path: Path, *, nbytes: int = 50) -> str:
    """Return the secret stored at `path`, generating it on first use.

    The new secret is written to a temporary file which is then hard-linked into place: the link
    either appears complete or fails because another process won the race, whose secret we read.
    """
    if path.exists():
        return path.read_text().strip()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".secret-")  # mkstemp creates it 0600 (PRIVATE_FILE_MODE)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(nbytes))
        with contextlib.suppress(FileExistsError):  # another process won the race: use its secret
            os.link(tmp, path)
    finally:
        os.unlink(tmp)
    return path.read_text().strip()
