"""The Service Status page and its WebSocket, against a real MessengerServer standing in for the service.

Viewers connect through the real ASGI app (origin check, session auth, routing) on the in-memory channel
layer; the fake service counts its status.subscribe streams, so "one subscription per process" is measured.
"""
from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser, Permission, User
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone

from indexer.messenger_config import messenger_settings
from indexer.models import Trigger
from messenger.errors import RequestRefused
from messenger.messages import UNKNOWN_RUNNER
from messenger.server import MessengerServer, RequestContext
from proget_web.asgi import application
from proget_web.status import link as status_link
from proget_web.status.consumers import CLOSE_EXPIRED, CLOSE_FORBIDDEN
from proget_web.status.link import service_link
from settings_store.services import setting_set

pytestmark = pytest.mark.django_db(transaction=True)

SOCKET = "/ws/administration/service"
# Upper bound on one test's event loop: a hang fails fast.
TEST_DEADLINE = 30.0
LINGER = 0.3
RUNNER = "Feed Indexing"
_names = itertools.count()


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, TEST_DEADLINE))


def runner_state(name: str = RUNNER, **changes: Any) -> dict:
    state = {
        "name": name, "state": "idle", "progressPercent": None, "progressMessage": "", "lastStartedAt": None,
        "lastDuration": None, "lastResult": None, "lastError": None, "lastMessage": None,
        "nextRunAt": "2030-01-01T00:00:00+00:00", "interval": 300,
    }
    state.update(changes)
    return state


@dataclass
class FakeService:
    """Answers like indexer.service_handlers, from data the test controls. Handlers never suspend."""

    fingerprint: str
    seq: int = 0
    logs: list[dict] = field(default_factory=list)
    runners: dict[str, dict] = field(default_factory=dict)
    subscribes: int = 0  # status.subscribe streams ever opened
    open_streams: int = 0  # ... and still open
    requests: list[tuple[str, dict]] = field(default_factory=list)
    queues: list[asyncio.Queue] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.runner(runner_state())
        self.log("service started")

    def _event(self, type: str, data: dict) -> dict:
        self.seq += 1
        return {"type": type, "seq": self.seq, "at": 1_700_000_000.0 + self.seq, **data}

    def log(self, message: str, level: str = "INFO") -> dict:
        event = self._event("log", {"level": level, "logger": "indexer", "message": message})
        self.logs.append(event)
        return event

    def runner(self, state: dict) -> dict:
        event = self._event("runner", state)
        self.runners[state["name"]] = event
        return event

    def emit(self, *events: dict, dropped: int = 0) -> None:
        """Stream one batch to every open subscription."""
        batch: dict = {"events": list(events)}
        if dropped:
            batch["dropped"] = dropped
        for queue in self.queues:
            queue.put_nowait(batch)

    def info(self) -> dict:
        return {"node": "fake-node", "version": "9.9", "uptime": 12.5, "fingerprint": self.fingerprint,
                "endpoint": "pipe://fake", "settingsVersion": 1, "subscribers": self.open_streams,
                "messenger": {"connections_open": 1, "rejects": {"bad-proof": 3}}}

    def snapshot(self) -> dict:
        return {"service": self.info(), "logs": self.logs[-200:], "runners": dict(self.runners),
                "heartbeat": None, "seq": self.seq}

    # --- handlers ---

    async def ping(self, body: dict, ctx: RequestContext) -> dict:
        return {"node": "fake-node", "version": "9.9", "uptime": 12.5, "fingerprint": self.fingerprint}

    async def subscribe(self, body: dict, ctx: RequestContext) -> AsyncIterator[dict]:
        queue: asyncio.Queue = asyncio.Queue()
        self.queues.append(queue)
        self.subscribes += 1
        self.open_streams += 1
        try:
            yield {"snapshot": self.snapshot()}
            while True:
                yield await queue.get()
        finally:
            self.open_streams -= 1
            self.queues.remove(queue)

    def handler(self, type: str) -> Callable:
        async def handle(body: dict, ctx: RequestContext) -> dict:
            self.requests.append((type, body))
            if type == "trigger.nudge":
                return {"outcomes": [f"trigger {body['id']} (runner.run {RUNNER}): {RUNNER} started"]}
            if type != "service.restart" and body.get("name") != RUNNER:
                raise RequestRefused(f"unknown runner {body.get('name')!r}", code=UNKNOWN_RUNNER)  # as the service does
            if type == "runner.run":
                return {"started": True, "message": f"{RUNNER} started"}
            if type == "service.restart":
                return {"restarting": True}
            return runner_state(state="paused" if type == "runner.pause" else "idle")

        return handle

    def server(self, key: bytes) -> MessengerServer:
        handlers = {"ping": self.ping}
        handlers.update({t: self.handler(t) for t in ("runner.run", "runner.pause", "runner.resume",
                                                      "service.restart", "trigger.nudge")})
        return MessengerServer(key=key, handlers=handlers, stream_handlers={"status.subscribe": self.subscribe})


class Viewer(WebsocketCommunicator):
    """A communicator that remembers the last link state it was sent (snapshot and link messages carry one)."""

    link: dict = {}

    async def receive_json_from(self, timeout: float = 1) -> Any:
        message = await super().receive_json_from(timeout)
        if isinstance(message, dict) and message.get("link"):
            self.link = message["link"]
        return message

    async def link_state(self, predicate: Callable[[dict], bool], timeout: float = 5.0) -> dict:
        """The link state once it satisfies `predicate` (maybe the one already received)."""
        if not predicate(self.link):
            await until(self, lambda m: bool(m.get("link")) and predicate(m["link"]), timeout)
        return self.link


@dataclass
class Harness:
    service: FakeService
    server: MessengerServer
    config: Any
    viewers: list[Viewer] = field(default_factory=list)

    async def start_server(self, key: bytes | None = None) -> None:
        self.server = self.service.server(key or self.config.key)
        await self.server.start(self.config.endpoint, run_dir=self.config.run_dir)

    async def viewer(self, session: str | None, *, expect_snapshot: bool = True) -> Viewer:
        headers = [(b"host", b"localhost"), (b"origin", b"http://localhost")]
        if session is not None:
            headers.append((b"cookie", f"sessionid={session}".encode()))
        communicator = Viewer(application, SOCKET, headers=headers)
        connected, _ = await communicator.connect(timeout=5)
        assert connected
        self.viewers.append(communicator)
        if expect_snapshot:
            await until(communicator, lambda m: m["type"] == "snapshot" and m["snapshot"] is not None)
        return communicator


async def until(communicator: WebsocketCommunicator, predicate: Callable[[dict], bool],
                timeout: float = 5.0) -> dict:
    """Receive messages until one satisfies `predicate`; return it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        remaining = deadline - loop.time()
        assert remaining > 0, "expected message did not arrive"
        message = await communicator.receive_json_from(timeout=remaining)
        if predicate(message):
            return message


async def closed_with(communicator: WebsocketCommunicator, timeout: float = 5.0) -> int:
    """Skip messages until the server closes the socket; its close code."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        remaining = deadline - loop.time()
        assert remaining > 0, "the socket was not closed"
        output = await communicator.receive_output(timeout=remaining)
        if output["type"] == "websocket.close":
            return output["code"]


async def eventually(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def events_of(message: dict, type: str) -> list[dict]:
    return [event for event in message.get("events", []) if event["type"] == type]


def status_viewers() -> int:
    """Viewers registered with this process's service link (the fan-out's members)."""
    return service_link().viewers


@pytest.fixture(autouse=True)
def fast_link(monkeypatch: pytest.MonkeyPatch, settings: Any) -> None:
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}  # fresh per test
    monkeypatch.setattr(status_link, "LINGER_SECONDS", LINGER)
    monkeypatch.setattr(status_link, "SETTINGS_POLL_SECONDS", 0.3)
    monkeypatch.setattr(status_link, "RESUBSCRIBE_MIN", 0.05)


@pytest.fixture
def messenger_config() -> Any:
    setting_set(name="Service.MessengerEndpoint", value=f"pipe://status{next(_names)}", actor="test", source="cli")
    return messenger_settings()


def signed_in(user: User) -> tuple[Client, str]:
    """A browser signed in as `user`, and its session key."""
    client = Client()
    client.force_login(user)
    return client, client.cookies["sessionid"].value


def session_for(user: User | None) -> str | None:
    return None if user is None else signed_in(user)[1]


def make_user(name: str, *perms: str, superuser: bool = False) -> User:
    if superuser:
        return User.objects.create_superuser(name, password="pw")
    user = User.objects.create_user(name, password="pw")
    for perm in perms:
        user.user_permissions.add(Permission.objects.get(content_type__app_label="administration", codename=perm))
    return user


@pytest.fixture
def admin_session() -> str:
    return session_for(make_user("admin", superuser=True))


@pytest.fixture
def viewer_session() -> str:
    return session_for(make_user("watcher", "view_service_status"))


@asynccontextmanager
async def harness(config: Any) -> AsyncIterator[Harness]:
    service = FakeService(fingerprint=config.fingerprint)
    h = Harness(service=service, server=None, config=config)  # type: ignore[arg-type]
    await h.start_server()
    try:
        yield h
    finally:
        for communicator in h.viewers:
            await communicator.disconnect()
        link = service_link()
        if link.active:
            link._stop_session()
        await asyncio.sleep(0.05)
        await h.server.close()


# --- the consumer ---


def test_a_viewer_gets_the_snapshot_and_the_link_state_on_connect(messenger_config: Any, admin_session: str) -> None:
    async def main() -> None:
        async with harness(messenger_config) as h:
            viewer = await h.viewer(admin_session, expect_snapshot=False)
            first = await viewer.receive_json_from(timeout=5)
            assert first["type"] == "snapshot" and first["canControl"] is True
            assert first["link"]["status"] in ("connecting", "connected")
            full = first if first["snapshot"] else await until(viewer, lambda m: m["type"] == "snapshot")
            snapshot = full["snapshot"]
            assert snapshot["runners"][RUNNER]["name"] == RUNNER
            assert [line["message"] for line in snapshot["logs"]] == ["service started"]
            assert snapshot["service"]["messenger"]["rejects"] == {"bad-proof": 3}
            assert snapshot["seq"] == h.service.seq
            link = await viewer.link_state(lambda link: link.get("rttMs") is not None)
            assert link["status"] == "connected" and link["subscribed"] is True
            assert link["fingerprintMatch"] is True and link["fingerprint"] == messenger_config.fingerprint
            assert link["endpoint"] == str(messenger_config.endpoint)
            assert link["address"] == str(messenger_config.run_dir / f"{messenger_config.endpoint.name}.sock")

    run(main())


def test_runner_progress_and_log_lines_reach_the_viewer(messenger_config: Any, admin_session: str) -> None:
    async def main() -> None:
        async with harness(messenger_config) as h:
            viewer = await h.viewer(admin_session)
            progress = h.service.runner(runner_state(state="running", progressPercent=40, progressMessage="feed a"))
            line = h.service.log("indexed feed a", level="WARNING")
            h.service.emit(progress, line)
            message = await until(viewer, lambda m: m["type"] == "events" and m["events"])
            assert message["events"] == [progress, line]
            # The link's own snapshot moved on too: a viewer joining now starts from there.
            late = await h.viewer(admin_session, expect_snapshot=False)
            current = (await late.receive_json_from(timeout=5))["snapshot"]
            assert current["runners"][RUNNER]["progressPercent"] == 40
            assert current["logs"][-1]["message"] == "indexed feed a"
            assert current["seq"] == line["seq"]

    run(main())


def test_several_viewers_share_one_subscription(messenger_config: Any, admin_session: str,
                                                viewer_session: str) -> None:
    async def main() -> None:
        async with harness(messenger_config) as h:
            viewers = [await h.viewer(admin_session if n % 2 else viewer_session) for n in range(4)]
            assert h.service.subscribes == 1
            assert service_link().subscriptions_opened == 1
            assert status_viewers() == 4
            line = h.service.log("one line for everybody")
            h.service.emit(line)
            for viewer in viewers:
                message = await until(viewer, lambda m: m["type"] == "events" and m["events"])
                assert message["events"] == [line]
            assert h.service.subscribes == 1

    run(main())


def test_the_subscription_ends_after_the_last_viewer_and_the_linger(messenger_config: Any,
                                                                    admin_session: str) -> None:
    async def main() -> None:
        async with harness(messenger_config) as h:
            first, second = await h.viewer(admin_session), await h.viewer(admin_session)
            await first.disconnect()
            h.viewers.remove(first)
            await asyncio.sleep(LINGER * 2)
            assert h.service.open_streams == 1, "one viewer is still watching"
            await second.disconnect()
            h.viewers.remove(second)
            assert status_viewers() == 0
            # A reload within the linger keeps the same stream.
            reload = await h.viewer(admin_session)
            assert h.service.subscribes == 1
            await reload.disconnect()
            h.viewers.remove(reload)
            await asyncio.sleep(LINGER / 3)
            assert h.service.open_streams == 1, "still lingering"
            await eventually(lambda: h.service.open_streams == 0, timeout=LINGER + 3)
            assert not service_link().active
            assert status_viewers() == 0
            assert h.service.subscribes == 1

    run(main())


@pytest.mark.parametrize("who", ["anonymous", "no-permission", "inactive"])
def test_users_without_the_view_permission_are_refused(messenger_config: Any, who: str) -> None:
    if who == "anonymous":
        session = None
    else:
        user = make_user("someone", "control_service")  # control without view does not let you in
        session = session_for(user)
        if who == "inactive":
            User.objects.filter(pk=user.pk).update(is_active=False)

    async def main() -> None:
        async with harness(messenger_config) as h:
            viewer = await h.viewer(session, expect_snapshot=False)
            closed = await viewer.receive_output(timeout=5)
            assert closed == {"type": "websocket.close", "code": CLOSE_FORBIDDEN}
            assert status_viewers() == 0
            assert h.service.subscribes == 0
            assert not service_link().active

    run(main())


def test_a_viewer_without_control_service_cannot_run_pause_or_restart(messenger_config: Any,
                                                                      viewer_session: str) -> None:
    async def main() -> None:
        async with harness(messenger_config) as h:
            viewer = await h.viewer(viewer_session)
            attempts = [{"action": "run", "runner": RUNNER}, {"action": "pause", "runner": RUNNER},
                        {"action": "resume", "runner": RUNNER}, {"action": "restart"}]
            for attempt in attempts:
                await viewer.send_json_to(attempt)
                reply = await until(viewer, lambda m: m["type"] in ("reply", "error"))
                assert reply["type"] == "error" and "permission" in reply["message"]
                assert reply["action"] == attempt["action"]
            assert h.service.requests == []
            # Reconnect needs only the view permission.
            await viewer.send_json_to({"action": "reconnect", "id": 7})
            reply = await until(viewer, lambda m: m["type"] in ("reply", "error"))
            assert reply == {"type": "reply", "action": "reconnect", "id": 7, "result": {"reconnecting": True}}

    run(main())


def test_control_actions_reach_the_service_and_answer_only_the_asker(messenger_config: Any, admin_session: str,
                                                                     viewer_session: str) -> None:
    async def main() -> None:
        async with harness(messenger_config) as h:
            admin, bystander = await h.viewer(admin_session), await h.viewer(viewer_session)
            await admin.link_state(lambda link: link.get("status") == "connected")
            await admin.send_json_to({"action": "run", "runner": RUNNER, "id": 1})
            reply = await until(admin, lambda m: m["type"] in ("reply", "error"))
            trigger = await sync_to_async(Trigger.objects.get)()
            assert reply["type"] == "reply" and (reply["action"], reply["runner"], reply["id"]) == ("run", RUNNER, 1)
            assert reply["result"]["trigger"] == trigger.id and reply["result"]["queued"] is False
            assert (trigger.kind, trigger.target, trigger.requested_by) == ("runner.run", RUNNER, "admin")
            await eventually(lambda: ("trigger.nudge", {"id": trigger.id}) in h.service.requests)
            h.service.requests.remove(("trigger.nudge", {"id": trigger.id}))
            await admin.send_json_to({"action": "pause", "runner": RUNNER})
            reply = await until(admin, lambda m: m["type"] in ("reply", "error"))
            assert reply["result"]["state"] == "paused"
            await admin.send_json_to({"action": "resume", "runner": "No Such Runner"})
            error = await until(admin, lambda m: m["type"] in ("reply", "error"))
            assert error["type"] == "error" and "unknown runner" in error["message"]
            await admin.send_json_to({"action": "restart"})
            reply = await until(admin, lambda m: m["type"] in ("reply", "error"))
            assert reply["result"] == {"restarting": True}
            assert [t for t, _ in h.service.requests] == ["runner.pause", "runner.resume", "service.restart"]
            assert h.service.requests[0][1] == {"name": RUNNER}
            await asyncio.sleep(0.2)
            while not await bystander.receive_nothing(timeout=0.05):
                message = await bystander.receive_json_from()
                assert message["type"] not in ("reply", "error"), "answers go to the asker only"

    run(main())


def test_run_with_the_service_away_is_queued_once_and_the_page_keeps_when_it_last_saw_it(
        messenger_config: Any, admin_session: str) -> None:
    async def main() -> None:
        async with harness(messenger_config) as h:
            admin = await h.viewer(admin_session)
            seen = (await admin.link_state(lambda link: link.get("status") == "connected"
                                           and isinstance(link.get("lastSeen"), float)))["lastSeen"]
            await h.server.close()
            link = await admin.link_state(lambda link: link.get("status") != "connected")
            assert link["lastSeen"] == seen  # what the page shows as "stale — last seen ..."
            answers = []
            for request_id in (1, 2):
                await admin.send_json_to({"action": "run", "runner": RUNNER, "id": request_id})
                answers.append(await until(admin, lambda m: m["type"] in ("reply", "error")))
            trigger = await sync_to_async(Trigger.objects.get)()
            assert trigger.state == Trigger.State.PENDING
            first, second = (answer["result"] for answer in answers)
            assert (first["trigger"], first["queued"], first["alreadyQueued"]) == (trigger.id, True, False)
            assert first["message"].startswith(f"trigger {trigger.id} queued — the service is not reachable (")
            assert (second["trigger"], second["queued"], second["alreadyQueued"]) == (trigger.id, True, True)
            await admin.send_json_to({"action": "run", "runner": "No Such Runner", "id": 3})
            error = await until(admin, lambda m: m["type"] in ("reply", "error"))
            assert error["type"] == "error" and error["message"].startswith("unknown runner 'No Such Runner'")
            assert await sync_to_async(Trigger.objects.count)() == 1

    run(main())


# --- rights are checked again for every action, and sockets end with the session ---


def permission(codename: str) -> Permission:
    return Permission.objects.get(content_type__app_label="administration", codename=codename)


def lose_the_right_to_view(how: str, user: User, session: str) -> None:
    if how == "signed out in another web process":  # its logout deletes the session row; no signal reaches us
        Session.objects.filter(session_key=session).delete()
    elif how == "session expired":
        Session.objects.filter(session_key=session).update(expire_date=timezone.now() - timezone.timedelta(seconds=1))
    elif how == "password changed":  # the session's auth hash no longer matches, as after a password reset
        user.set_password("another-pw")
        user.save()
    elif how == "deactivated":
        User.objects.filter(pk=user.pk).update(is_active=False)
    else:
        user.user_permissions.remove(permission("view_service_status"))


@pytest.mark.parametrize("how", ["signed out in another web process", "session expired", "password changed",
                                 "deactivated", "view_service_status removed"])
def test_a_control_action_after_the_right_to_view_ended_is_refused_and_the_socket_closed(
        messenger_config: Any, how: str) -> None:
    user = make_user("operator", "view_service_status", "control_service")
    session = session_for(user)

    async def main() -> None:
        async with harness(messenger_config) as h:
            viewer = await h.viewer(session)
            await sync_to_async(lose_the_right_to_view)(how, user, session)
            await viewer.send_json_to({"action": "run", "runner": RUNNER, "id": 3})
            error = await until(viewer, lambda m: m["type"] in ("reply", "error"))
            assert error["type"] == "error" and error["id"] == 3
            assert await closed_with(viewer) == CLOSE_FORBIDDEN
            assert h.service.requests == []
            assert status_viewers() == 0

    run(main())


def test_a_control_action_after_control_service_was_removed_is_refused(messenger_config: Any) -> None:
    user = make_user("operator", "view_service_status", "control_service")
    session = session_for(user)

    async def main() -> None:
        async with harness(messenger_config) as h:
            viewer = await h.viewer(session)
            await sync_to_async(lambda: user.user_permissions.remove(permission("control_service")))()
            for attempt in ({"action": "pause", "runner": RUNNER}, {"action": "restart"}):
                await viewer.send_json_to(attempt)
                reply = await until(viewer, lambda m: m["type"] in ("reply", "error"))
                assert reply["type"] == "error" and "permission" in reply["message"]
            assert h.service.requests == []
            await viewer.send_json_to({"action": "reconnect"})  # still a viewer: the page stays live
            assert (await until(viewer, lambda m: m["type"] in ("reply", "error")))["type"] == "reply"

    run(main())


def test_logout_closes_the_sockets_of_that_session_at_once(messenger_config: Any) -> None:
    user = make_user("operator", "view_service_status", "control_service")
    browser, session = signed_in(user)
    other_browser = session_for(user)

    async def main() -> None:
        async with harness(messenger_config) as h:
            tabs = [await h.viewer(session), await h.viewer(session)]
            elsewhere = await h.viewer(other_browser)
            response = await sync_to_async(browser.post)("/accounts/logout/")
            assert response.status_code == 302
            for tab in tabs:
                assert await closed_with(tab) == CLOSE_FORBIDDEN
            assert status_viewers() == 1
            await elsewhere.send_json_to({"action": "reconnect"})  # the user's other browser is still signed in
            assert (await until(elsewhere, lambda m: m["type"] in ("reply", "error")))["type"] == "reply"

    run(main())


def test_a_socket_ends_after_its_lifetime_and_the_page_can_reconnect(messenger_config: Any, admin_session: str,
                                                                     settings: Any) -> None:
    settings.STATUS_SOCKET_LIFETIME_SECONDS = 0.5

    async def main() -> None:
        async with harness(messenger_config) as h:
            viewer = await h.viewer(admin_session)
            assert await closed_with(viewer) == CLOSE_EXPIRED
            assert status_viewers() == 0
            again = await h.viewer(admin_session)
            await again.send_json_to({"action": "pause", "runner": RUNNER})
            assert (await until(again, lambda m: m["type"] in ("reply", "error")))["type"] == "reply"

    run(main())


MALFORMED = [
    ("not json", "not valid JSON"),
    ("[1, 2]", "JSON object"),
    ('"run"', "JSON object"),
    ("{}", "'action' must be one of"),
    ('{"action": "explode"}', "'action' must be one of"),
    ('{"action": 5}', "'action' must be one of"),
    ('{"action": "run"}', "'runner' must be a runner name"),
    ('{"action": "run", "runner": 12}', "'runner' must be a runner name"),
    ('{"action": "run", "runner": "   "}', "'runner' must be a runner name"),
    ('{"action": "run", "runner": "' + "x" * 201 + '"}', "'runner' must be a runner name"),
    ('{"action": "restart", "runner": "Feed Indexing"}', "unexpected field"),
    ('{"action": "run", "runner": "Feed Indexing", "force": true}', "unexpected field"),
    ('{"action": "reconnect", "id": true}', "'id' must be a whole number"),
    ('{"action": "reconnect", "id": "7"}', "'id' must be a whole number"),
    ("x" * 5000, "message too long"),
]


def test_malformed_messages_get_an_error_reply_and_the_socket_stays_open(messenger_config: Any,
                                                                          admin_session: str) -> None:
    async def main() -> None:
        async with harness(messenger_config) as h:
            viewer = await h.viewer(admin_session)
            for text, expected in MALFORMED:
                await viewer.send_to(text_data=text)
                reply = await until(viewer, lambda m: m["type"] in ("reply", "error"))
                assert reply["type"] == "error" and expected in reply["message"], (text, reply)
            await viewer.send_to(bytes_data=b"\x00\x01")
            reply = await until(viewer, lambda m: m["type"] in ("reply", "error"))
            assert "JSON text" in reply["message"]
            assert h.service.requests == []
            await viewer.send_json_to({"action": "reconnect"})
            assert (await until(viewer, lambda m: m["type"] in ("reply", "error")))["type"] == "reply"

    run(main())


def test_a_log_line_with_markup_arrives_as_plain_data(messenger_config: Any, admin_session: str) -> None:
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)>'

    async def main() -> None:
        async with harness(messenger_config) as h:
            viewer = await h.viewer(admin_session)
            h.service.emit(h.service.log(hostile, level="ERROR"))
            message = await until(viewer, lambda m: m["type"] == "events" and m["events"])
            assert events_of(message, "log")[0]["message"] == hostile

    run(main())


def test_bursts_are_coalesced_into_few_group_messages(messenger_config: Any, admin_session: str) -> None:
    async def main() -> None:
        async with harness(messenger_config) as h:
            viewer = await h.viewer(admin_session)
            for percent in range(100):
                h.service.emit(h.service.runner(runner_state(state="running", progressPercent=percent)))
            h.service.emit(h.service.log("burst over"))
            received: list[dict] = []
            message = await until(viewer, lambda m: received.append(m) or events_of(m, "log") != [])
            assert events_of(message, "log")[0]["message"] == "burst over"
            batches = [m for m in received if m["type"] == "events"]
            runner_events = [e for m in batches for e in events_of(m, "runner")]
            assert len(batches) <= 5, "one group message per 100 ms at most"
            assert len(runner_events) < 100, "progress updates of one runner coalesce"
            assert runner_events[-1]["progressPercent"] == 99

    run(main())


def test_service_going_away_is_reported_and_the_stream_resumes_when_it_returns(messenger_config: Any,
                                                                               admin_session: str) -> None:
    async def main() -> None:
        async with harness(messenger_config) as h:
            viewer = await h.viewer(admin_session)
            await h.server.close()
            down = await until(viewer, lambda m: m["type"] == "link" and m["link"]["status"] == "unreachable")
            assert down["link"]["reason"]
            assert down["link"]["subscribed"] is False
            h.service.log("service is back")
            await h.start_server()
            back = await until(viewer, lambda m: m["type"] == "snapshot", timeout=15)
            assert back["snapshot"]["logs"][-1]["message"] == "service is back"
            await viewer.link_state(lambda link: link["status"] == "connected" and link["subscribed"])
            assert h.service.subscribes == 2 and h.service.open_streams == 1

    run(main())


def test_a_service_with_another_key_shows_key_mismatch(messenger_config: Any, admin_session: str) -> None:
    async def main() -> None:
        async with harness(messenger_config) as h:
            await h.server.close()
            await h.start_server(key=bytes(range(32)))
            viewer = await h.viewer(admin_session, expect_snapshot=False)
            link = await viewer.link_state(lambda link: link.get("status") == "key-mismatch")
            assert link["fingerprintMatch"] is False
            assert h.service.subscribes == 0

    run(main())


# --- the page ---


def test_the_page_needs_the_view_permission() -> None:
    client = Client()
    response = client.get("/administration/service")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    client.force_login(make_user("nobody"))
    assert client.get("/administration/service").status_code == 403


@pytest.mark.parametrize("control", [False, True])
def test_the_page_is_a_skeleton_without_inline_script_or_style(control: bool) -> None:
    client = Client()
    perms = ["view_service_status", "control_service"] if control else ["view_service_status"]
    client.force_login(make_user("viewer", *perms))
    response = client.get("/administration/service")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-socket-path="/ws/administration/service"' in html
    assert f'data-can-control="{"true" if control else "false"}"' in html
    assert "proget/status.js" in html and "proget/status.css" in html
    assert html.count("<script") == html.count("<script src=")
    assert "<style" not in html and " style=" not in html and "onclick" not in html
    assert ('data-action="restart"' in html) is control


def test_the_anonymous_user_never_reaches_the_link() -> None:
    # AnonymousUser is what AuthMiddlewareStack puts in the scope without a session.
    from proget_web.status.consumers import _user_permissions

    assert run(_user_permissions(AnonymousUser())) == (False, False)
    assert run(_user_permissions(None)) == (False, False)


def test_status_js_never_writes_service_data_as_html() -> None:
    from pathlib import Path

    source = (Path(__file__).resolve().parents[2] / "proget_web/static/proget/status.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in source
    assert "textContent" in source
