"""End to end: a real twine uploads to a real daphne, and a real pip installs the package the moment twine returns.

No service node runs: the upload indexes the file itself (its reindex trigger just waits in the queue).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.feeds.builders import sdist_tar, wheel
from tests.feeds.servers import daphne_serving, pip_install
from tests.processes import manage, migrate, shell

pytestmark = pytest.mark.slow

# Uploading two tiny files to a local server takes a second or two; this is a hang.
TWINE_TIMEOUT_SECONDS = 120


def twine_upload(base: str, *files: Path, home: Path) -> subprocess.CompletedProcess:
    """`twine upload` with a user name and password, no ~/.pypirc, no keyring, no prompts."""
    env = {**os.environ, "HOME": str(home), "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring"}
    return subprocess.run(
        [sys.executable, "-m", "twine", "upload", "--repository-url", f"{base}/pypi/main/legacy/",
         "-u", "uploader", "-p", "secret", "--non-interactive", "--disable-progress-bar", *map(str, files)],
        capture_output=True, text=True, timeout=TWINE_TIMEOUT_SECONDS, env=env, cwd=home,
    )


def test_twine_uploads_and_pip_installs_at_once(tmp_path: Path) -> None:
    data, dist = tmp_path / "data", tmp_path / "dist"
    dist.mkdir()
    migrate(data)
    manage(data, "feeds", "create", "main")
    shell(data, "from django.contrib.auth.models import User; "
                "User.objects.create_user('uploader', password='secret', is_staff=True)")
    # twine finds an sdist's top folder as the members' common path, so it needs more than PKG-INFO
    sdist = sdist_tar(dist, "twined-pkg", "1.0", extra={"twined_pkg-1.0/setup.py": b""})
    files = [wheel(dist, "twined-pkg", "1.0"), sdist]
    target = tmp_path / "site"
    with daphne_serving(data, log=tmp_path / "daphne.log") as base:
        uploaded = twine_upload(base, *files, home=tmp_path)
        assert uploaded.returncode == 0, uploaded.stdout + uploaded.stderr
        installed = pip_install(base, "twined-pkg", target=target)
        again = twine_upload(base, files[0], home=tmp_path)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert (target / "twined_pkg_mod.py").read_text() == "VERSION = '1.0'\n"
    assert sorted(path.name for path in (data / "packages" / "main").iterdir()) == sorted(f.name for f in files)
    assert again.returncode != 0 and "409" in again.stdout + again.stderr
