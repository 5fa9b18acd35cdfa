"""End to end with a real daphne and a real pip: pip reads core metadata instead of wheels, and skips a yanked release.

The release is yanked through the real API; the web server's access log shows which files pip fetched. pip 23.2
still downloads the wheels it finally picks (even with --dry-run), so the proof is a candidate pip rejects: only
its `.metadata` is fetched, never its wheel.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.feeds.builders import wheel
from tests.feeds.servers import PIP_TIMEOUT_SECONDS
from tests.processes import WEB_SERVER, manage, migrate, start_daphne, stop

pytestmark = pytest.mark.slow

# Any password will do: the test user only owns the API key.
OWNER_PASSWORD = "owner-pass-for-tests"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, str]:
    """A node serving a feed with an access log; (url, log, API key with feeds:upload).

pkg-a 2.0 needs a pkg-b that does not exist, so pip backtracks to pkg-a 1.0; pkg-c 2.0 gets yanked.
"""
    root = tmp_path_factory.mktemp("node")
    data = root / "data"
    migrate(data)
    manage(data, "feeds", "create", "main")
    folder = data / "packages" / "main"
    wheel(folder, "pkg-a", "1.0", requires=("pkg-b",))
    wheel(folder, "pkg-a", "2.0", requires=("pkg-b>=3",))
    wheel(folder, "pkg-b", "1.0")
    wheel(folder, "pkg-c", "1.0")
    wheel(folder, "pkg-c", "2.0")
    manage(data, "runindexer", "--once")
    manage(data, "createsuperuser", "--no-input", "--username", "owner", "--email", "owner@example.com",
           DJANGO_SUPERUSER_PASSWORD=OWNER_PASSWORD)
    key = manage(data, "apikeys", "create", "ci", "--owner", "owner", "--scope", "feeds:upload").stdout.strip()
    access = root / "access.log"
    daphne, port = start_daphne(data, log=root / "daphne.log", server=(*WEB_SERVER, "--access-log", str(access)))
    try:
        yield f"http://127.0.0.1:{port}", access, key
    finally:
        stop(daphne)


def pip_resolve(base: str, requirement: str, report: Path) -> dict[str, str]:
    """`pip install --dry-run --report` of `requirement`: the chosen version of each project (nothing installed)."""
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--isolated", "--index-url", f"{base}/pypi/main/simple/",
         "--no-cache-dir", "--disable-pip-version-check", "--ignore-installed", "--dry-run", "--report", str(report),
         requirement],
        capture_output=True, text=True, timeout=PIP_TIMEOUT_SECONDS,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    chosen = json.loads(report.read_text())["install"]
    return {entry["metadata"]["name"]: entry["metadata"]["version"] for entry in chosen}


def fetched(access: Path) -> list[str]:
    """The feed files the server was asked for (downloads and .metadata), from its access log.

    Complete once pip has exited: daphne writes a request's line (line-buffered) before the reply is flushed.
    """
    return re.findall(r'"GET /pypi/main/files/(\S+)"', access.read_text())


def test_pip_reads_core_metadata_and_never_downloads_a_wheel_it_rejects(
    served: tuple[str, Path, str], tmp_path: Path,
) -> None:
    base, access, _ = served
    before = len(fetched(access))
    assert pip_resolve(base, "pkg-a", tmp_path / "report.json") == {"pkg-a": "1.0", "pkg-b": "1.0"}
    asked = fetched(access)[before:]
    assert "pkg_a-2.0-py3-none-any.whl.metadata" in asked  # pip learnt pkg-a 2.0's needs from its metadata
    # and never downloaded the wheel it rejected. (Whether it downloads the chosen ones depends on pip's version:
    # pip 26 resolves a --dry-run from the metadata alone, pip 23 downloads them.)
    assert {name for name in asked if not name.endswith(".metadata")} <= {
        "pkg_a-1.0-py3-none-any.whl", "pkg_b-1.0-py3-none-any.whl"}
    assert all(asked.index(f"{name}.metadata") < asked.index(name) for name in asked if name.endswith(".whl"))


def test_pip_skips_a_yanked_release_unless_pinned(served: tuple[str, Path, str], tmp_path: Path) -> None:
    base, _, key = served
    request = urllib.request.Request(
        f"{base}/api/feeds/main/yank", method="POST", headers={"X-ApiKey": key, "Content-Type": "application/json"},
        data=json.dumps({"project": "pkg-c", "version": "2.0", "reason": "broken"}).encode(),
    )
    with urllib.request.urlopen(request) as response:
        assert json.load(response)["files"] == ["pkg_c-2.0-py3-none-any.whl"]
    assert pip_resolve(base, "pkg-c", tmp_path / "unpinned.json") == {"pkg-c": "1.0"}
    assert pip_resolve(base, "pkg-c==2.0", tmp_path / "pinned.json") == {"pkg-c": "2.0"}
