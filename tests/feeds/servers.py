"""A real daphne serving a node's data dir, and a real pip installing from it, for the end-to-end feed tests."""
from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from tests.processes import start_daphne, stop

# pip resolving and downloading a few tiny packages from a local server takes seconds; this is a hang.
PIP_TIMEOUT_SECONDS = 120


def accepts(port: int) -> bool:
    """Whether something listens on 127.0.0.1:`port`."""
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def daphne_serving(data: Path, *, log: Path) -> Iterator[str]:
    """Run daphne for the node at `data` on a free port; yield its base URL; stop it by pid afterwards."""
    daphne, port = start_daphne(data, log=log)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(daphne)


def pip_install(base: str, *requirements: str, target: Path, feed: str = "main") -> subprocess.CompletedProcess:
    """`pip install` REQUIREMENTS from `feed` at `base` into `target`, isolated from any pip config or cache."""
    return subprocess.run(
        [sys.executable, "-m", "pip", "install", "--isolated", "--index-url", f"{base}/pypi/{feed}/simple/",
         "--no-cache-dir", "--disable-pip-version-check", "--target", str(target), *requirements],
        capture_output=True, text=True, timeout=PIP_TIMEOUT_SECONDS,
    )
