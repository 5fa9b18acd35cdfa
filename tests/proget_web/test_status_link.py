"""The per-process status link: its copy of the service's status, coalescing and bounds, live settings, Reconnect."""
from __future__ import annotations

import asyncio
import json
import time
from types import SimpleNamespace
from typing import Any

import pytest

from indexer.messenger_config import messenger_settings
from messenger.crypto import generate_key
from messenger.endpoint import parse_endpoint
from messenger.errors import MessengerUnavailable
from proget_web.status import link as status_link
from proget_web.status.link import EVENT_EVENTS, EVENT_SNAPSHOT, ServiceLink, service_link
from proget_web.status.state import LOG_LINES, ServiceStatus
from settings_store.services import setting_set
from tests.proget_web.test_status_consumer import (  # noqa: F401 - fixtures
    RUNNER,
    admin_session,
    eventually,
    fast_link,
    harness,
    messenger_config,
    run,
    runner_state,
    until,
)


def event(type: str, seq: int, **data: Any) -> dict:
    return {"type": type, "seq": seq, "at": 1_700_000_000.0 + seq, **data}


def log(seq: int, message: str = "line") -> dict:
    return event("log", seq, level="INFO", logger="indexer", message=message)


def snapshot(seq: int = 3, logs: int = 2) -> dict:
    return {
        "service": {"node": "n1", "fingerprint": "aaaa-bbbb-cccc-dddd", "messenger": {"rejects": {}}},
        "logs": [log(n) for n in range(1, logs + 1)],
        "runners": {RUNNER: event("runner", seq, **runner_state())},
        "heartbeat": None,
        "seq": seq,
    }


# --- the status copy (pure) ---


def test_a_snapshot_then_events_give_the_latest_status() -> None:
    status = ServiceStatus()
    assert status.as_json() is None
    assert status.load(snapshot(seq=3))
    applied = status.apply([
        event("runner", 4, **runner_state(state="running", progressPercent=50)),
        log(5, "hello"),
        event("heartbeat", 6, node="n1", fingerprint="ffff-0000-ffff-0000", uptime=9.0),
        event("service", 7, state="stopping"),
    ])
    assert [e["seq"] for e in applied] == [4, 5, 6, 7]
    view = status.as_json()
    assert view["runners"][RUNNER]["progressPercent"] == 50
    assert view["logs"][-1]["message"] == "hello"
    assert view["service"] == {"node": "n1", "fingerprint": "ffff-0000-ffff-0000", "uptime": 9.0}
    assert view["serviceState"] == "stopping"
    assert view["seq"] == 7


def test_the_log_ring_keeps_the_last_200_lines() -> None:
    status = ServiceStatus()
    status.load(snapshot(seq=LOG_LINES + 50, logs=LOG_LINES + 50))
    assert len(status.as_json()["logs"]) == LOG_LINES
    status.apply([log(seq, f"n{seq}") for seq in range(1000, 1300)])
    logs = status.as_json()["logs"]
    assert len(logs) == LOG_LINES and logs[-1]["message"] == "n1299" and logs[0]["message"] == "n1100"


@pytest.mark.parametrize("bad", [None, [], {"seq": 1}, {"seq": "1", "logs": [], "runners": {}},
                                 {"seq": 1, "logs": {}, "runners": {}}, {"seq": 1, "logs": [], "runners": []}])
def test_a_malformed_snapshot_changes_nothing(bad: Any) -> None:
    status = ServiceStatus()
    status.load(snapshot(seq=3))
    before = status.as_json()
    assert status.load(bad) is False
    assert status.as_json() == before


def test_malformed_events_are_skipped() -> None:
    status = ServiceStatus()
    status.load(snapshot(seq=3))
    applied = status.apply([None, "x", {"type": "log"}, {"type": 1, "seq": 4}, {"type": "log", "seq": True},
                             event("runner", 5), log(6, "ok")])
    assert [e["seq"] for e in applied] == [6]
    assert status.apply("not a list") == []


# --- coalescing and bounds ---


def test_runner_updates_and_heartbeats_coalesce_in_the_outbox() -> None:
    async def main() -> list[dict]:
        link = ServiceLink()
        link._on_stream_item({"snapshot": snapshot(seq=3)})
        link._take_outbox()
        progress = [event("runner", 10 + n, **runner_state(state="running", progressPercent=n)) for n in range(50)]
        link._on_stream_item({"events": [progress[0], log(60, "a"), *progress[1:]]})
        link._on_stream_item({"events": [event("heartbeat", 70, node="n1"), event("heartbeat", 71, node="n1"),
                                          log(72, "b")], "dropped": 4})
        return link._take_outbox()

    messages = run(main())
    assert [m["type"] for m in messages] == [EVENT_EVENTS]
    # Encoded once for every viewer: the group message carries the browser's JSON text.
    browser = json.loads(messages[0]["text"])
    assert browser["type"] == "events"
    assert [(e["type"], e["seq"]) for e in browser["events"]] == [("runner", 59), ("log", 60), ("heartbeat", 71),
                                                                  ("log", 72)]
    assert browser["dropped"] == 4


def test_a_flood_beyond_the_bound_becomes_one_bounded_snapshot() -> None:
    async def main() -> list[dict]:
        link = ServiceLink()
        link._on_stream_item({"snapshot": snapshot(seq=3)})
        link._take_outbox()
        flood = [log(seq) for seq in range(10, 10 + status_link.MAX_PENDING_EVENTS * 3)]
        for start in range(0, len(flood), 500):
            link._on_stream_item({"events": flood[start:start + 500]})
        return link._take_outbox()

    messages = run(main())
    assert [m["type"] for m in messages] == [EVENT_SNAPSHOT]
    sent = messages[0]["snapshot"]
    assert len(sent["logs"]) == LOG_LINES and sent["seq"] == 10 + status_link.MAX_PENDING_EVENTS * 3 - 1


def test_following_the_primary_a_standbys_answers_are_not_taken_for_the_primarys() -> None:
    async def main() -> None:
        link = ServiceLink()
        link._config = SimpleNamespace(endpoint=parse_endpoint("tcp://*:7400"), fingerprint=None)
        standby = snapshot(seq=3)
        standby["service"] = {**standby["service"], "role": "standby"}
        link._on_stream_item({"snapshot": standby})
        link._on_stream_item({"events": [log(4, "from the standby")]})
        assert link.status.as_json() is None and not link.link_json()["subscribed"]
        assert "standby" in link.link_json()["streamError"]
        assert [m["type"] for m in link._take_outbox()] == [status_link.EVENT_LINK]
        with pytest.raises(MessengerUnavailable, match="n1 is a standby"):
            await link.request("runner.run", {"name": RUNNER})
        # The node it reached may step down while the link is on it: from then on its events are not passed on.
        link._standby = None
        primary = snapshot(seq=3)
        primary["service"] = {**primary["service"], "role": "primary"}
        link._on_stream_item({"snapshot": primary})
        link._take_outbox()
        link._on_stream_item({"events": [event("service", 4, state="running", role="standby"), log(5)]})
        assert link._take_outbox() == [] and link._standby == "the service"
        assert link.status.as_json()["seq"] == 3

    run(main())


def test_a_new_link_does_nothing_until_a_viewer_joins() -> None:
    async def main() -> None:
        link = service_link()
        assert service_link() is link
        assert not link.active and link.view() == {"snapshot": None, "link": link.link_json()}
        assert link.link_json()["status"] == "closed"
        await asyncio.sleep(0.05)
        assert not link.active

    run(main())


# --- live, against a real messenger server ---

pytestmark_db = pytest.mark.django_db(transaction=True)


@pytest.fixture
def live(request: pytest.FixtureRequest) -> tuple[Any, str]:
    """(messenger settings with a fresh pipe endpoint, a superuser's session id), from the consumer tests' fixtures."""
    return request.getfixturevalue("messenger_config"), request.getfixturevalue("admin_session")


@pytestmark_db
def test_an_endpoint_change_is_applied_live(live: tuple[Any, str]) -> None:
    config, session = live

    async def main() -> None:
        async with harness(config) as h:
            viewer = await h.viewer(session)
            old_server = h.server
            await asyncio.to_thread(setting_set, name="Service.MessengerEndpoint", value="pipe://moved",
                                    actor="test", source="cli")
            h.config = await asyncio.to_thread(messenger_settings)
            await h.start_server()  # the service moved there too
            link = await viewer.link_state(lambda link: link["endpoint"] == "pipe://moved"
                                           and link["status"] == "connected" and link["subscribed"], timeout=10)
            assert link["address"].endswith("/moved.sock")
            assert h.service.subscribes == 2
            await old_server.close()

    run(main())


@pytestmark_db
def test_during_a_key_rotation_the_page_stays_live(live: tuple[Any, str]) -> None:
    """The old connection keeps the stream for the grace (60 s) while the client connects with the new key: the
    stream still delivers, so the page says live, not "connected", for the whole grace."""
    config, session = live

    async def main() -> None:
        async with harness(config) as h:
            viewer = await h.viewer(session)
            await viewer.link_state(lambda link: link["status"] == "connected" and link["subscribed"])
            await asyncio.to_thread(setting_set, name="Service.MessengerKey", value=generate_key(), actor="test",
                                    source="cli")
            h.config = await asyncio.to_thread(messenger_settings)
            h.server.set_key(h.config.key, h.config.retired_keys)  # the service applied it, the grace runs
            link = await viewer.link_state(lambda link: link["fingerprint"] == h.config.fingerprint
                                           and link["status"] == "connected", timeout=5)
            assert link["subscribed"] is True, link
            h.service.emit(h.service.log("after the rotation"))  # and the stream really delivers
            message = await until(viewer, lambda m: m["type"] == "events" and m["events"])
            assert message["events"][-1]["message"] == "after the rotation"
            assert viewer.link["subscribed"] is True

    run(main())


@pytestmark_db
def test_reconnect_drops_the_connection_and_resubscribes_at_once(live: tuple[Any, str]) -> None:
    config, session = live

    async def main() -> None:
        async with harness(config) as h:
            viewer = await h.viewer(session)
            link = service_link()
            started = time.monotonic()
            link.reconnect()
            await eventually(lambda: h.service.subscribes == 2, timeout=3)
            assert time.monotonic() - started < 2
            await eventually(lambda: h.service.open_streams == 1)
            message = await viewer.receive_json_from(timeout=3)
            while message["type"] != "snapshot" or message["snapshot"] is None:
                message = await viewer.receive_json_from(timeout=3)
            assert message["snapshot"]["runners"][RUNNER]["name"] == RUNNER

    run(main())


@pytestmark_db
def test_actions_fail_fast_with_a_reason_when_the_service_is_down(live: tuple[Any, str]) -> None:
    config, session = live

    async def main() -> None:
        async with harness(config) as h:
            viewer = await h.viewer(session)
            await h.server.close()
            await viewer.link_state(lambda link: link["status"] == "unreachable")
            started = time.monotonic()
            # Pause needs the service now (Run does not: it is queued, see tests/indexer/test_trigger_requests.py).
            await viewer.send_json_to({"action": "pause", "runner": RUNNER})
            message = await viewer.receive_json_from(timeout=status_link.ACTION_TIMEOUT + status_link.CONNECT_TIMEOUT)
            while message["type"] not in ("reply", "error"):
                message = await viewer.receive_json_from(timeout=5)
            assert message["type"] == "error" and message["message"].startswith("service not reachable: ")
            assert time.monotonic() - started < status_link.ACTION_TIMEOUT + status_link.CONNECT_TIMEOUT
            await h.start_server()  # so the harness can close it

    run(main())


def test_a_stuck_or_broken_viewer_never_holds_up_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(status_link, "DELIVER_TIMEOUT", 0.2)

    class Recorder:
        def __init__(self, behaviour: str) -> None:
            self.behaviour, self.got = behaviour, []

        async def deliver(self, message: dict) -> None:
            if self.behaviour == "stuck":
                await asyncio.sleep(3600)
            if self.behaviour == "broken":
                raise ConnectionError("gone")
            self.got.append(message)

    async def main() -> tuple[list[dict], float]:
        link = ServiceLink()
        good = Recorder("good")
        for viewer in (Recorder("stuck"), Recorder("broken"), good):
            link._viewers.add(viewer)
        started = time.monotonic()
        await link._fan_out({"type": EVENT_EVENTS, "text": "{}"})
        return good.got, time.monotonic() - started

    got, took = run(main())
    assert got == [{"type": EVENT_EVENTS, "text": "{}"}]
    assert took < 1.0


def test_viewers_that_take_a_message_at_once_cost_no_task_and_waiting_ones_still_get_it() -> None:
    """A delivery runs in the flushing task up to its first wait (daphne writes at once: no task per viewer);
    one that waits goes on by itself and finishes with its awaited result or error, as in a task of its own."""

    class Viewer:
        def __init__(self, wait: asyncio.Future | None = None, yields: bool = False) -> None:
            self.wait, self.yields, self.got, self.tasks = wait, yields, [], []

        async def deliver(self, message: dict) -> None:
            self.tasks.append(asyncio.current_task())
            if self.yields:
                await asyncio.sleep(0)
            if self.wait is not None:
                message = {**message, "awaited": await self.wait}
            self.got.append(message)

    async def main() -> None:
        link = ServiceLink()
        loop = asyncio.get_running_loop()
        resolved, failing = loop.create_future(), loop.create_future()
        at_once, yields, waits, fails = Viewer(), Viewer(yields=True), Viewer(resolved), Viewer(failing)
        link._viewers.update((at_once, yields, waits, fails))
        loop.call_soon(resolved.set_result, 7)
        loop.call_soon(failing.set_exception, ConnectionError("gone"))
        flushing = asyncio.current_task()
        await link._fan_out({"type": EVENT_EVENTS, "text": "{}"})
        assert at_once.got == [{"type": EVENT_EVENTS, "text": "{}"}] and at_once.tasks == [flushing]
        assert yields.got == [{"type": EVENT_EVENTS, "text": "{}"}]
        assert waits.got == [{"type": EVENT_EVENTS, "text": "{}", "awaited": 7}]
        assert fails.got == []

    run(main())


def test_a_viewer_still_waiting_at_the_deadline_is_cancelled_where_it_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    """The delivery that waits past DELIVER_TIMEOUT sees CancelledError at its await (and may clean up there)."""
    monkeypatch.setattr(status_link, "DELIVER_TIMEOUT", 0.2)

    class Stuck:
        cancelled = False

        async def deliver(self, message: dict) -> None:
            try:
                await asyncio.get_running_loop().create_future()  # never resolved
            except asyncio.CancelledError:
                self.cancelled = True
                raise

    async def main() -> bool:
        link = ServiceLink()
        stuck = Stuck()
        link._viewers.add(stuck)
        await link._fan_out({"type": EVENT_EVENTS, "text": "{}"})
        await asyncio.sleep(0)  # the cancelled task's last step
        return stuck.cancelled

    assert run(main())
