"""Two load-balanced web nodes (daphne) and one service node over TCP, on the real PostgreSQL and Redis.

A Service Status viewer on each web node gets the same events, each exactly once, whichever node an action came
from; a Reindex posted on either node is started by the service at once (by the nudge: the poll is set to 60 s).

Identity of an event: the `seq` the service's status hub stamps on it (one counter per service process, which is
not restarted here). Log events are never coalesced, so both viewers must get the same log seqs. Runner and
heartbeat updates may be coalesced per web process (a newer state replaces an undelivered one), so for those the
test compares what survives coalescing by design: every finished run (runner, start time, result).
"""
from __future__ import annotations

import contextlib
import math
import re
import signal
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from proget_web.status.routing import STATUS_SOCKET_PATH
from tests.cluster.web_pair import logged_in, two_web_nodes
from tests.feeds.builders import wheel
from tests.processes import ServiceProcess, free_port, manage
from tests.web_clients import HOST, Browser, MiniWebSocket

pytestmark = pytest.mark.slow

ADMIN, PASSWORD = "admin", "web-nodes-pw"
FEED = "main"
SLOW = "Test Slow"
INDEXING = "Feed Indexing"
SLOW_RUNNER = "tests.indexer.slow_runner.SlowRunner"
SLOW_LINE = "test slow runner step"
SLOW_STEPS = 10  # log lines per run of the slow runner (tests/indexer/slow_runner.py STEPS)
# Far beyond the test's length: a trigger started within NUDGE_BOUND can only have been started by the nudge.
POLL_SECONDS = 60
# The nudge itself takes milliseconds; the rest is slack for two daphnes, a service and PostgreSQL on 2 busy cores.
NUDGE_BOUND = 2.0


@dataclass
class WebCluster:
    database_url: str
    ports: dict[str, int]  # web node name -> its daphne port


@pytest.fixture(scope="module")
def web_cluster(tmp_path_factory: pytest.TempPathFactory, pg_database_url: str, redis_url: str) -> Iterator[WebCluster]:
    """svc on tcp://127.0.0.1:PORT and web-a, web-b (own data dirs, one secret key) on one PostgreSQL and Redis."""
    root = tmp_path_factory.mktemp("web-nodes")
    data_dir = root / "svc"
    data_dir.mkdir(mode=0o700)  # a node refuses a data dir others can enter
    shared = {"DATABASE_URL": pg_database_url}
    port = free_port()
    for name, value in [("Service.MessengerEndpoint", f"tcp://{HOST}:{port}"),
                        ("Service.TriggerPollSeconds", str(POLL_SECONDS))]:
        manage(data_dir, "settings", "set", name, value, **shared)
    manage(data_dir, "createsuperuser", "--no-input", "--username", ADMIN, "--email", "admin@example.com",
           DJANGO_SUPERUSER_PASSWORD=PASSWORD, **shared)
    manage(data_dir, "feeds", "create", FEED, **shared)
    wheel(data_dir / "packages" / FEED, "pkg-a", "1.0")

    def listening() -> bool:
        with socket.socket() as probe:
            return probe.connect_ex((HOST, port)) == 0

    service = ServiceProcess(data_dir, PROGET_NODE_NAME="svc", PROGET_EXTRA_RUNNERS=SLOW_RUNNER,
                             PROGET_TEST_RUN_LOG=str(data_dir / "slow-runs.log"), PROGET_TEST_RUN_SECONDS="0.5",
                             **shared)
    try:
        service.start(ready=listening)
        with two_web_nodes(root, redis_url, **shared) as ports:
            yield WebCluster(database_url=pg_database_url, ports=ports)
    finally:
        if service.process is not None and service.process.poll() is None:
            service.stop(signal.SIGTERM)


@dataclass
class Viewer:
    """A Service Status WebSocket on one web node that records everything it is sent."""

    node: str
    ws: MiniWebSocket
    snapshots: list[dict] = field(default_factory=list)  # full snapshots (a null one only says "not yet")
    events: list[dict] = field(default_factory=list)  # streamed events, in arrival order
    replies: dict[int, dict] = field(default_factory=dict)  # action id -> reply or error
    dropped: int = 0

    def receive(self, timeout: float) -> None:
        message = self.ws.receive_json(timeout)
        if message["type"] == "snapshot" and message["snapshot"]:
            self.snapshots.append(message["snapshot"])
        elif message["type"] == "events":
            self.events.extend(message["events"])
            self.dropped += message["dropped"]
        elif message["type"] in ("reply", "error") and "id" in message:
            self.replies[message["id"]] = message

    def runner(self, name: str) -> dict | None:
        """The runner's latest state as this viewer knows it."""
        for event in reversed(self.events):
            if event["type"] == "runner" and event["name"] == name:
                return event
        return self.snapshots[-1]["runners"].get(name) if self.snapshots else None

    def finished_runs(self, name: str) -> set[tuple[str, str]]:
        """(start time, result) of each run of `name` this viewer saw end."""
        return {(event["lastStartedAt"], event["lastResult"]) for event in self.events
                if event["type"] == "runner" and event["name"] == name and event["state"] != "running"
                and event["lastStartedAt"]}


def wait_all(viewers: list[Viewer], done: Callable[[Viewer], bool], *, what: str, timeout: float = 30) -> None:
    """Read the viewers' sockets until `done(viewer)` holds for every one of them."""
    deadline = time.monotonic() + timeout
    while pending := [viewer for viewer in viewers if not done(viewer)]:
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what} on " + ", ".join(
            viewer.node for viewer in pending)
        for viewer in pending:
            with contextlib.suppress(TimeoutError):
                viewer.receive(0.1)


def idle(name: str) -> Callable[[Viewer], bool]:
    """The viewer knows runner `name` and it is not running."""
    return lambda viewer: (viewer.runner(name) or {}).get("state") not in (None, "running")


def assert_same_events_exactly_once(viewers: list[Viewer]) -> list[dict]:
    """Each viewer got each event at most once and nothing was dropped; all got the same log events. Returns those."""
    for viewer in viewers:
        assert len(viewer.snapshots) == 1 and viewer.dropped == 0, f"{viewer.node} lost events or was reset"
        seqs = [event["seq"] for event in viewer.events]
        assert len(seqs) == len(set(seqs)), f"{viewer.node} got an event twice: {sorted(seqs)}"
        assert min(seqs, default=math.inf) > viewer.snapshots[0]["seq"], f"{viewer.node} got an event twice"
        # A coalesced runner or heartbeat update takes the place of the one it replaced; log events keep their order.
        log_seqs = [event["seq"] for event in viewer.events if event["type"] == "log"]
        assert log_seqs == sorted(log_seqs), f"{viewer.node} got log events out of order"
    # The log seqs every viewer was subscribed for: after the latest snapshot, up to the earliest last log event.
    low = max(viewer.snapshots[0]["seq"] for viewer in viewers)
    logs = [[event for event in viewer.events if event["type"] == "log"] for viewer in viewers]
    high = min(events[-1]["seq"] if events else low for events in logs)
    logs = [[event for event in events if low < event["seq"] <= high] for events in logs]
    assert all(got == logs[0] for got in logs), "the viewers got different log events"
    return logs[0]


@pytest.fixture
def viewers(web_cluster: WebCluster) -> Iterator[tuple[dict[str, Browser], list[Viewer]]]:
    """The admin, logged in once on web-a, with a Service Status viewer on each web node (same session on both)."""
    browsers = logged_in(web_cluster.ports, ADMIN, PASSWORD)
    opened = [Viewer(name, browser.websocket(f"/{STATUS_SOCKET_PATH}")) for name, browser in browsers.items()]
    try:
        wait_all(opened, lambda viewer: bool(viewer.snapshots), what="the first snapshot")
        # The runners' first runs at start-up are over: a Run now or a Reindex finds them free.
        wait_all(opened, lambda viewer: idle(SLOW)(viewer) and idle(INDEXING)(viewer), what="start-up runs to end")
        yield browsers, opened
    finally:
        for viewer in opened:
            viewer.ws.close()


def runs_since(viewer: Viewer, name: str, since: datetime) -> set[tuple[str, str]]:
    return {(started, result) for started, result in viewer.finished_runs(name)
            if datetime.fromisoformat(started) >= since}


def test_viewers_on_both_web_nodes_get_the_same_events_exactly_once(
    viewers: tuple[dict[str, Browser], list[Viewer]],
) -> None:
    _, watching = viewers
    since = datetime.now(UTC)
    for count, viewer in enumerate(watching, 1):  # Run now from web-a's page, then from web-b's
        viewer.ws.send_json({"action": "run", "runner": SLOW, "id": count})
        wait_all([viewer], lambda v, count=count: count in v.replies, what="the answer to Run")
        assert viewer.replies[count]["type"] == "reply" and viewer.replies[count]["result"]["queued"] is False, \
            viewer.replies[count]
        wait_all(watching, lambda v, count=count: len(runs_since(v, SLOW, since)) == count,
                 what=f"run {count} to end")

    logs = assert_same_events_exactly_once(watching)
    runs = [runs_since(viewer, SLOW, since) for viewer in watching]
    assert runs[0] == runs[1] and {result for _, result in runs[0]} == {"ok"}, runs
    lines = [event["message"] for event in logs if event["message"].startswith(SLOW_LINE)]
    assert lines == [f"{SLOW_LINE} {step}" for step in range(SLOW_STEPS)] * 2, "a log line is missing"


def reindex_triggers(web_cluster: WebCluster) -> list[tuple]:
    """(state, requested_by, claimed_by, created_at, claimed_at) of every reindex trigger, oldest first."""
    with psycopg.connect(web_cluster.database_url) as db:
        return db.execute("SELECT state, requested_by, claimed_by, created_at, claimed_at FROM indexer_trigger "
                          "WHERE kind = 'feed.reindex' AND target = %s ORDER BY id", [FEED]).fetchall()


def test_reindex_from_either_web_node_starts_at_once(
    web_cluster: WebCluster, viewers: tuple[dict[str, Browser], list[Viewer]]
) -> None:
    browsers, watching = viewers
    since = datetime.now(UTC)
    for count, name in enumerate(browsers, 1):  # Reindex on web-a, then on web-b
        status, headers, _ = browsers[name].post_form(f"/feeds/{FEED}/", f"/feeds/{FEED}/reindex")
        assert status == 302 and headers["Location"] == f"/feeds/{FEED}/"
        _, _, page = browsers[name].request("GET", f"/feeds/{FEED}/")
        nudged = rf"Reindexing {FEED}: (requested; it starts as soon as the indexer is free|started|done)\."
        assert re.search(nudged, page), f"{name} did not nudge the service"
        wait_all(watching, lambda v, count=count: len(runs_since(v, INDEXING, since)) == count,
                 what=f"reindex {count} to end")

    triggers = reindex_triggers(web_cluster)
    assert [row[:3] for row in triggers] == [("done", ADMIN, "svc")] * 2, triggers
    waits = [claimed - created for *_, created, claimed in triggers]
    assert all(wait < timedelta(seconds=NUDGE_BOUND) for wait in waits), f"claimed after {waits}: not nudged"
    logs = assert_same_events_exactly_once(watching)
    assert sum(event["message"].startswith(f"feed {FEED} indexed: ") for event in logs) == 2, "a log line is missing"
    runs = [runs_since(viewer, INDEXING, since) for viewer in watching]
    assert runs[0] == runs[1] and {result for _, result in runs[0]} == {"ok"}, runs
