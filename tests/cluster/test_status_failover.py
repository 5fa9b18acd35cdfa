"""Service Status viewers follow the primary, with a stream of triggers across the failover: two service nodes on
`tcp://*:PORT`, PostgreSQL, two web nodes (daphne each, one Redis channel layer) with a viewer on each. The primary
is frozen (SIGSTOP past its lease, then SIGCONT), killed or stopped (SIGTERM). Both viewers must be on the new
primary soon after the takeover and stay there when a frozen one wakes as a standby, their Runs started by the new
primary; every trigger runs exactly once and none is left pending; a woken primary runs, claims and records nothing
into the new term's runner records."""
from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from proget_web.status.routing import STATUS_SOCKET_PATH
from tests.cluster.nodes import (
    HEARTBEAT,
    PRODUCER,
    STALE,
    assert_exactly_once,
    assert_woken_node_did_nothing,
    background,
    holder,
    interrupted_by_stop,
    produced,
    query,
    runs,
    two_nodes,
)
from tests.cluster.web_pair import logged_in, two_web_nodes
from tests.processes import ServiceProcess, manage, wait_for
from tests.web_clients import MiniWebSocket

pytestmark = pytest.mark.slow

ADMIN, PASSWORD = "admin", "status-failover-pw"
SLOW = "Test Slow"
# Far beyond what the link needs (SILENCE_SECONDS, then one registry check and a connect), far below the 60 s
# the messenger's idle timeout took before the link watched for silence itself.
FOLLOW_TIMEOUT = 15.0
# Run requests in the stream at most (over 60 s); it stops once the new primary has run TRIGGERS_AFTER of them.
STREAM, TRIGGERS_AFTER = 2000, 5

FAIL: dict[str, Callable[[ServiceProcess], object]] = {
    "freeze": lambda node: node.process.send_signal(signal.SIGSTOP), "kill": ServiceProcess.kill,
    "stop": ServiceProcess.stop,
}


@dataclass
class Watcher:
    """One Service Status WebSocket: which service node each snapshot it got came from, in order."""

    ws: MiniWebSocket
    snapshots: list[tuple[str, str]] = field(default_factory=list)  # (node, role)
    replies: dict[int, dict] = field(default_factory=dict)

    def receive(self, timeout: float) -> None:
        try:
            message = self.ws.receive_json(timeout)
        except TimeoutError:
            return
        if message["type"] == "snapshot" and message["snapshot"] and message["snapshot"]["service"]:
            service = message["snapshot"]["service"]
            self.snapshots.append((service["node"], service["role"]))
        elif message["type"] in ("reply", "error") and "id" in message:
            self.replies[message["id"]] = message

    def on(self, node: str) -> bool:
        return bool(self.snapshots) and self.snapshots[-1] == (node, "primary")


def read_until(watchers: list[Watcher], done: Callable[[Watcher], bool], *, what: str) -> None:
    """Read the watchers' sockets until `done(watcher)` holds for each, within FOLLOW_TIMEOUT."""
    deadline = time.monotonic() + FOLLOW_TIMEOUT
    while pending := [watcher for watcher in watchers if not done(watcher)]:
        assert time.monotonic() < deadline, \
            f"timed out after {FOLLOW_TIMEOUT} s waiting for {what}: {[w.snapshots for w in pending]}"
        for watcher in pending:
            watcher.receive(0.1)


@pytest.fixture(scope="module")
def web_ports(tmp_path_factory: pytest.TempPathFactory, pg_database_url: str, redis_url: str) -> Iterator[dict]:
    """web-a and web-b on this module's database, and the admin who watches their Service Status pages."""
    root = tmp_path_factory.mktemp("webs")
    manage(root, "createsuperuser", "--no-input", "--username", ADMIN, "--email", "admin@example.com",
           DJANGO_SUPERUSER_PASSWORD=PASSWORD, DATABASE_URL=pg_database_url)
    with two_web_nodes(root, redis_url, DATABASE_URL=pg_database_url) as ports:
        yield ports


def _runs_by(cluster: dict, pid: int) -> int:
    """How many runs of the slow runner process `pid` started (scheduled ones too)."""
    log = cluster["dir"] / "runs.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return sum(int(line.split()[1]) == pid for line in lines)


def _trigger_runs_by(cluster: dict, pid: int) -> int:
    """How many triggers process `pid` ran."""
    return sum(run[1] == pid for run in runs(cluster))


def _written_by(cluster: dict, node: str) -> list[tuple]:
    """Runner records that say `node` runs them, or that a stop cut their run short."""
    return query(cluster, f"SELECT name FROM indexer_runnerrecord WHERE running_node = '{node}'") + \
        interrupted_by_stop(cluster)


def _watch_records_until(cluster: dict, node: str, done: Callable[[], bool]) -> list[tuple]:
    """Sample the runner records every 50 ms until `done()`: what `node` wrote into them meanwhile."""
    seen: list[tuple] = []
    deadline = time.monotonic() + 120
    while not done():
        assert time.monotonic() < deadline, "timed out watching the runner records"
        seen += _written_by(cluster, node)
        time.sleep(0.05)
    return seen + _written_by(cluster, node)


@pytest.mark.parametrize("form", ["freeze", "kill", "stop"])
def test_viewers_on_both_web_nodes_follow_the_primary_while_triggers_stream(
    cluster: dict, web_ports: dict[str, int], form: str,
) -> None:
    a, b = two_nodes(cluster)
    watchers = [Watcher(browser.websocket(f"/{STATUS_SOCKET_PATH}"))
                for browser in logged_in(web_ports, ADMIN, PASSWORD).values()]
    try:
        read_until(watchers, lambda watcher: watcher.on("svc-a"), what="the viewers on svc-a")
        stop_stream = cluster["dir"] / "stop-stream"
        producer = background(cluster, PRODUCER, str(STREAM), str(stop_stream), log="producer.log")
        wait_for(lambda: len(runs(cluster)) >= 3, timeout=30, what="triggers to flow")

        FAIL[form](a)
        wait_for(lambda: holder(cluster) == "svc-b", timeout=STALE + 2 * HEARTBEAT + 3,
                 what=f"svc-b to take over ({form})")
        read_until(watchers, lambda watcher: watcher.on("svc-b"), what="the viewers on svc-b")
        moved = [len(watcher.snapshots) for watcher in watchers]

        if form == "freeze":
            # svc-b has recorded svc-a's cut-short runs; from now on only svc-b may write the runner records.
            wait_for(lambda: _written_by(cluster, "svc-a") == [], what="svc-b to take over the runner records")
            woke = time.time()
            a.process.send_signal(signal.SIGCONT)
            written = _watch_records_until(cluster, "svc-a", lambda: "steps down from primary" in a.log.read_text()
                                           and _trigger_runs_by(cluster, b.process.pid) >= TRIGGERS_AFTER)
            assert written == [], f"the woken svc-a wrote into the new term's runner records: {written[:3]}"
        wait_for(lambda: _trigger_runs_by(cluster, b.process.pid) >= TRIGGERS_AFTER, timeout=30,
                 what="the stream to go on on svc-b")
        assert producer.poll() is None, "the trigger stream ended before the new primary ran its part"
        stop_stream.touch()
        assert producer.wait(timeout=30) == 0, (cluster["dir"] / "producer.log").read_text()[-2000:]
        rows = assert_exactly_once(cluster, produced(cluster))
        assert {row[3] for row in rows} == {"svc-a", "svc-b"}, "the stream did not run across the failover"
        if form == "freeze":
            assert_woken_node_did_nothing(cluster, rows, "svc-a", a.process.pid, woke)

        for number, watcher in enumerate(watchers, 1):  # Run now on web-a's page, then on web-b's
            runs_before = _runs_by(cluster, b.process.pid)
            watcher.ws.send_json({"action": "run", "runner": SLOW, "id": number})
            read_until([watcher], lambda w, number=number: number in w.replies, what="the answer to Run")
            assert watcher.replies[number]["type"] == "reply", watcher.replies[number]
            wait_for(lambda before=runs_before: _runs_by(cluster, b.process.pid) > before,
                     what="svc-b to start the run")
        # A woken svc-a is a standby now: neither viewer went back to it.
        for watcher, count in zip(watchers, moved, strict=True):
            assert set(watcher.snapshots[count - 1:]) == {("svc-b", "primary")}, watcher.snapshots
    finally:
        for watcher in watchers:
            watcher.ws.close()
    if a.process.poll() is None:
        a.stop()
    b.stop()
