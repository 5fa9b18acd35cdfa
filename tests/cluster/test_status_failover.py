"""Service Status viewers follow the primary: two service nodes on `tcp://*:PORT`, PostgreSQL, a web node
(daphne, Redis) with a viewer. The primary is frozen (SIGSTOP past its lease, then SIGCONT), killed or stopped
(SIGTERM); the viewer must be on the new primary soon after the takeover, stay there when a frozen one wakes as a
standby, and its Run must be started by the new primary."""
from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field

import pytest

from proget_web.status.routing import STATUS_SOCKET_PATH
from tests.cluster.nodes import HEARTBEAT, STALE, holder, two_nodes
from tests.processes import manage, start_daphne, wait_for
from tests.web_clients import Browser, MiniWebSocket

pytestmark = pytest.mark.slow

ADMIN, PASSWORD = "admin", "status-failover-pw"
SLOW = "Test Slow"
# Far beyond what the link needs (SILENCE_SECONDS, then one registry check and a connect), far below the 60 s
# the messenger's idle timeout took before the link watched for silence itself.
FOLLOW_TIMEOUT = 15.0


@dataclass
class Watcher:
    """One Service Status WebSocket: which service node each snapshot it got came from, in order."""

    ws: MiniWebSocket
    snapshots: list[tuple[str, str]] = field(default_factory=list)  # (node, role)
    replies: dict[int, dict] = field(default_factory=dict)

    def read_until(self, done, *, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}: {self.snapshots}"
            try:
                message = self.ws.receive_json(0.2)
            except TimeoutError:
                continue
            if message["type"] == "snapshot" and message["snapshot"] and message["snapshot"]["service"]:
                service = message["snapshot"]["service"]
                self.snapshots.append((service["node"], service["role"]))
            elif message["type"] in ("reply", "error") and "id" in message:
                self.replies[message["id"]] = message

    def on(self, node: str) -> bool:
        return bool(self.snapshots) and self.snapshots[-1] == (node, "primary")


@pytest.fixture(scope="module")
def admin(tmp_path_factory: pytest.TempPathFactory, pg_database_url: str) -> None:
    """The admin who watches the Service Status page, in this module's database."""
    manage(tmp_path_factory.mktemp("admin"), "createsuperuser", "--no-input", "--username", ADMIN, "--email",
           "admin@example.com", DJANGO_SUPERUSER_PASSWORD=PASSWORD, DATABASE_URL=pg_database_url)


def _runs_by(cluster: dict, pid: int) -> int:
    """How many runs of the slow runner process `pid` started."""
    log = cluster["dir"] / "runs.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return sum(int(line.split()[1]) == pid for line in lines)


@pytest.mark.parametrize("form", ["freeze", "kill", "stop"])
def test_viewers_follow_the_primary_to_its_successor_and_stay_there(
    cluster: dict, redis_url: str, admin: None, form: str,
) -> None:
    shared = {"DATABASE_URL": cluster["url"]}
    a, b = two_nodes(cluster)
    web_dir = cluster["dir"] / "web"
    web_dir.mkdir(mode=0o700)
    web, port = start_daphne(web_dir, log=web_dir / "daphne.log", PROGET_NODE_NAME="web", REDIS_URL=redis_url,
                             **shared)
    cluster["processes"].append(web)
    browser = Browser(port)
    browser.login(ADMIN, PASSWORD)
    watcher = Watcher(browser.websocket(f"/{STATUS_SOCKET_PATH}"))
    try:
        watcher.read_until(lambda: watcher.on("svc-a"), timeout=FOLLOW_TIMEOUT, what="the viewer on svc-a")

        {"freeze": lambda: a.process.send_signal(signal.SIGSTOP), "kill": a.kill, "stop": a.stop}[form]()
        wait_for(lambda: holder(cluster) == "svc-b", timeout=STALE + 2 * HEARTBEAT + 3,
                 what=f"svc-b to take over ({form})")
        watcher.read_until(lambda: watcher.on("svc-b"), timeout=FOLLOW_TIMEOUT, what="the viewer on svc-b")

        moved = len(watcher.snapshots)
        if form == "freeze":
            a.process.send_signal(signal.SIGCONT)
            wait_for(lambda: "steps down from primary" in a.log.read_text(), what="the woken svc-a to step down")
        runs_before = _runs_by(cluster, b.process.pid)
        watcher.ws.send_json({"action": "run", "runner": SLOW, "id": 1})
        watcher.read_until(lambda: 1 in watcher.replies, timeout=FOLLOW_TIMEOUT, what="the answer to Run")
        assert watcher.replies[1]["type"] == "reply", watcher.replies[1]
        wait_for(lambda: _runs_by(cluster, b.process.pid) > runs_before, what="svc-b to start the run")
        # A woken svc-a is a standby now: the viewer never went back to it.
        assert watcher.snapshots[moved - 1:] == [("svc-b", "primary")], watcher.snapshots
    finally:
        watcher.ws.close()
    if a.process.poll() is None:
        a.stop()
    b.stop()
