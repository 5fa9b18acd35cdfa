"""The service's run dir (where its Unix socket lives): a symlink or a dir another user owns is refused.

Such a dir would let another user swap or watch the socket; the service listens only in a real dir of its own.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from messenger.endpoint import parse_endpoint
from messenger.errors import MessengerError
from messenger.server import MessengerServer
from tests.messenger.support import KEY, run

ENDPOINT = parse_endpoint("pipe://t")
# Any uid but ours: nobody's on Debian-like systems.
OTHER_UID = 65534


def start(run_dir: Path) -> None:
    """Start a server in `run_dir` and stop it again; MessengerError when it refuses."""
    async def main() -> None:
        server = MessengerServer(key=KEY, handlers={})
        await server.start(ENDPOINT, run_dir=run_dir)
        await server.close()

    run(main())


def test_a_symlinked_run_dir_is_refused_and_its_target_left_alone(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o755)
    os.chmod(target, 0o755)
    (tmp_path / "run").symlink_to(target)
    with pytest.raises(MessengerError, match="is a symlink") as refused:
        start(tmp_path / "run")
    assert str(tmp_path / "run") in str(refused.value)
    assert stat.S_IMODE(target.stat().st_mode) == 0o755 and list(target.iterdir()) == []


def test_a_dangling_symlink_as_run_dir_is_refused(tmp_path: Path) -> None:
    (tmp_path / "run").symlink_to(tmp_path / "absent")
    with pytest.raises(MessengerError, match="is a symlink"):
        start(tmp_path / "run")
    assert not (tmp_path / "absent").exists()


def test_a_run_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "run").write_text("")
    with pytest.raises(MessengerError, match="not a directory"):
        start(tmp_path / "run")


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a dir to another user needs root")
def test_a_run_dir_owned_by_another_user_is_refused_and_left_alone(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o755)
    os.chmod(run_dir, 0o755)
    os.chown(run_dir, OTHER_UID, OTHER_UID)
    with pytest.raises(MessengerError, match=f"owned by uid {OTHER_UID}"):
        start(run_dir)
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o755 and list(run_dir.iterdir()) == []


def test_an_own_run_dir_is_created_or_tightened_to_0700(tmp_path: Path) -> None:
    start(tmp_path / "new" / "run")
    assert stat.S_IMODE((tmp_path / "new" / "run").stat().st_mode) == 0o700
