"""The data dir and the files in it that hold secrets are private to the node's user; a node refuses to start
when other users could read them. Tests run as root, which ignores modes: they check the modes themselves."""
from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from node_base.datadir import exposure
from tests.processes import ROOT, ServiceProcess, manage, migrate, node_env, wait_for

DATABASE = "proget.sqlite3"
SECRET_KEY_FILE = "secret_key"
# What the refusal tells the admin to run, for a directory and for a file.
DIR_FIX, FILE_FIX = "chmod 700", "chmod 600"


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def node(tmp_path: Path) -> Path:
    """A migrated node (database copied by tests.processes.migrate) with its secret key generated."""
    data = tmp_path / "data"
    migrate(data)
    manage(data, "check")
    return data


@pytest.mark.slow
def test_a_new_node_makes_its_data_dir_database_and_secret_key_private(tmp_path: Path) -> None:
    data = tmp_path / "new" / "data"
    manage(data, "migrate", "--no-input")  # creates the data dir, the database and the secret key
    service = ServiceProcess(data).start()
    try:
        wal, shm = data / f"{DATABASE}-wal", data / f"{DATABASE}-shm"
        wait_for(lambda: wal.exists() and shm.exists(), what="SQLite's -wal and -shm files")
        modes = {path.name: oct(mode(path)) for path in (data, data / DATABASE, wal, shm, data / SECRET_KEY_FILE)}
    finally:
        service.stop()
    assert modes == {"data": "0o700", DATABASE: "0o600", wal.name: "0o600", shm.name: "0o600",
                     SECRET_KEY_FILE: "0o600"}


@pytest.mark.slow  # migrates a node and runs `manage.py check` in processes
def test_the_test_helpers_copy_databases_private(node: Path) -> None:
    assert (mode(node), mode(node / DATABASE), mode(node / SECRET_KEY_FILE)) == (0o700, 0o600, 0o600)


@pytest.mark.parametrize(("name", "loose", "fix"), [
    ("", 0o755, DIR_FIX),
    ("", 0o701, DIR_FIX),
    (DATABASE, 0o640, FILE_FIX),
    (DATABASE, 0o604, FILE_FIX),
    (f"{DATABASE}-wal", 0o644, FILE_FIX),
    (f"{DATABASE}-shm", 0o660, FILE_FIX),
    (SECRET_KEY_FILE, 0o644, FILE_FIX),
], ids=["dir 0755", "dir 0701", "db 0640", "db 0604", "wal 0644", "shm 0660", "secret 0644"])
def test_exposure_names_what_others_can_read_and_the_fix(tmp_path: Path, name: str, loose: int, fix: str) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    for file in (DATABASE, f"{DATABASE}-wal", f"{DATABASE}-shm", SECRET_KEY_FILE):
        (data / file).touch(mode=0o600)
    assert exposure(data, data / DATABASE) is None
    os.chmod(data / name, loose)
    line = exposure(data, data / DATABASE)
    assert line is not None and "\n" not in line
    assert f"{fix} {data / name}".rstrip("/") in line and f"mode {loose:04o}" in line


def test_exposure_ignores_files_not_there_and_a_database_elsewhere(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    assert exposure(data, None) is None  # PostgreSQL: only the data dir and the secret key count
    assert exposure(data, data / DATABASE) is None


def _refusal(result: subprocess.CompletedProcess) -> str:
    """The refused start's one line (stderr), after checking it exited non-zero with nothing else said."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0 and len(lines) == 1, (result.returncode, result.stdout, result.stderr)
    return lines[0]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "loose", "fix"), [
    (DATABASE, 0o640, FILE_FIX), ("", 0o755, DIR_FIX), (SECRET_KEY_FILE, 0o644, FILE_FIX),
], ids=["group-readable database", "world-readable data dir", "readable secret key"])
def test_runindexer_refuses_to_start_on_exposed_files(node: Path, name: str, loose: int, fix: str) -> None:
    os.chmod(node / name, loose)
    line = _refusal(manage(node, "runindexer", check=False, timeout=30))
    assert f"{fix} {node / name}".rstrip("/") in line and "other users" in line
    assert not (node / "run" / "messenger.sock").exists()


@pytest.mark.slow
def test_daphne_refuses_to_start_on_a_group_readable_database(node: Path) -> None:
    os.chmod(node / DATABASE, 0o640)
    result = subprocess.run(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", "0", "proget_web.asgi:application"],
        env=node_env(node), cwd=ROOT, capture_output=True, text=True, timeout=30,
    )
    assert f"{FILE_FIX} {node / DATABASE}" in _refusal(result)
