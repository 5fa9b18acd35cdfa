"""Two load-balanced web nodes for the process tests: web-a and web-b (daphne each, own data dirs, one secret key
so a session is valid on both) on a shared Redis channel layer, and an admin logged in on both."""
from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.processes import start_daphne, stop
from tests.web_clients import Browser


@contextmanager
def two_web_nodes(root: Path, redis_url: str, **env: str) -> Iterator[dict[str, int]]:
    """Run web-a and web-b under `root` with `env` (e.g. DATABASE_URL); yields web node name -> daphne port."""
    secret = secrets.token_urlsafe(50)
    webs: list[subprocess.Popen] = []
    ports: dict[str, int] = {}
    try:
        for name in ("web-a", "web-b"):
            (root / name).mkdir(mode=0o700)  # a node refuses a data dir others can enter
            process, ports[name] = start_daphne(root / name, log=root / name / "daphne.log", PROGET_NODE_NAME=name,
                                                DJANGO_SECRET_KEY=secret, REDIS_URL=redis_url, **env)
            webs.append(process)
        yield ports
    finally:
        for process in webs:
            stop(process)


def logged_in(ports: dict[str, int], username: str, password: str) -> dict[str, Browser]:
    """A browser per web node, all in the one session of `username` (logged in once, on the first node)."""
    browsers = {name: Browser(port) for name, port in ports.items()}
    first, *others = browsers.values()
    first.login(username, password)
    for browser in others:
        browser.cookies = dict(first.cookies)
    return browsers
