"""The Service Status page's WebSocket: one viewer of this process's ServiceLink, and the viewer's actions.

Guarantees: only users with view_service_status get in (others are closed with CLOSE_FORBIDDEN); only those
with control_service can run, pause, resume or restart, checked again for every action against the session
and the user as they are now (a socket whose session ended or whose user lost view_service_status is closed
with CLOSE_FORBIDDEN); logging out closes the session's sockets in this process; no socket lives longer than
settings.STATUS_SOCKET_LIFETIME_SECONDS (then CLOSE_EXPIRED); any malformed message gets an error reply, never
an exception; replies to actions go to the viewer who asked, nobody else.
"""
from __future__ import annotations

import asyncio
import functools
import json
import logging
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.db import DatabaseError

from indexer.models import Trigger
from indexer.runner_requests import RUNNER_NAME_MAX, RUNNER_REQUESTS, runner_name_valid
from indexer.trigger_requests import TriggerRequest, trigger_request
from indexer.triggers import TriggerError
from messenger.errors import MessengerError, MessengerUnavailable, RemoteError
from messenger.messages import SERVICE_RESTART
from proget_web.session_sockets import session_socket_add, session_socket_remove, session_user
from proget_web.status.link import EVENT_SNAPSHOT, ServiceLink, service_link

logger = logging.getLogger(__name__)

VIEW_PERMISSION = "administration.view_service_status"
CONTROL_PERMISSION = "administration.control_service"

# WebSocket close code for "not signed in or no permission" (4000-4999 are the application's; 403 echoes HTTP).
CLOSE_FORBIDDEN = 4403
# Close code for "this socket's lifetime is over": the page reconnects (408 echoes HTTP's Request Timeout).
CLOSE_EXPIRED = 4408
# A client message is a small JSON object; anything bigger is refused before parsing.
MAX_MESSAGE_BYTES = 4096

# Client -> server actions. Run goes through the trigger core (see _run); the others are the service request named.
RUN = "run"
RUNNER_ACTIONS = frozenset({RUN, *RUNNER_REQUESTS})
RESTART = "restart"
RECONNECT = "reconnect"
CONTROL_ACTIONS = frozenset({*RUNNER_ACTIONS, RESTART})
ACTIONS = frozenset({*CONTROL_ACTIONS, RECONNECT})

# Server -> browser message types.
MSG_SNAPSHOT = "snapshot"  # {"snapshot": {...} | None, "link": {...}, "canControl": bool}
# "events" and "link" messages are encoded by the link once for all viewers (link.BROWSER_EVENTS/_LINK).
MSG_REPLY = "reply"  # {"action", "runner"?, "id"?, "result": {...}}
MSG_ERROR = "error"  # {"action"?, "runner"?, "id"?, "message": "..."}


def _permissions(user: Any) -> tuple[bool, bool]:
    """(may view, may control) for `user`; anonymous and inactive users may do neither."""
    if user is None or not user.is_authenticated or not user.is_active:
        return False, False
    return user.has_perm(VIEW_PERMISSION), user.has_perm(CONTROL_PERMISSION)


_user_permissions = database_sync_to_async(_permissions)


@database_sync_to_async
def _session_permissions(session_key: str) -> tuple[bool, bool]:
    """(may view, may control) for the user the session stands for now, read again from the database."""
    return _permissions(session_user(session_key))


class ActionError(ValueError):
    """A client message that is not a valid action; the text goes back to the viewer."""


def parse_action(content: Any) -> dict[str, Any]:
    """Check a client message strictly: {"action": A, "runner"?: NAME, "id"?: int}; raise ActionError."""
    if not isinstance(content, dict):
        raise ActionError("a message must be a JSON object")
    action = content.get("action")
    if not isinstance(action, str) or action not in ACTIONS:
        raise ActionError(f"'action' must be one of: {', '.join(sorted(ACTIONS))}")
    allowed = {"action", "id", "runner"} if action in RUNNER_ACTIONS else {"action", "id"}
    unknown = set(content) - allowed
    if unknown:
        raise ActionError(f"unexpected field(s) for {action}: {', '.join(sorted(map(str, unknown)))}")
    request_id = content.get("id")
    if "id" in content and (not isinstance(request_id, int) or isinstance(request_id, bool)):
        raise ActionError("'id' must be a whole number")
    if action in RUNNER_ACTIONS:
        runner = content.get("runner")
        if not runner_name_valid(runner):
            raise ActionError(f"'runner' must be a runner name (1-{RUNNER_NAME_MAX} characters)")
    return dict(content)


class ServiceStatusConsumer(AsyncJsonWebsocketConsumer):
    """ws/administration/service: live snapshot, events and link state; run/pause/resume/restart/reconnect."""

    # Events come from this process's ServiceLink, never through the Channels layer: without a layer channel
    # a viewer costs Redis nothing (no blocking read per socket) and survives a Redis restart.
    channel_layer_alias = None
    link: ServiceLink | None = None
    can_control = False
    session_key = ""
    _lifetime: asyncio.TimerHandle | None = None
    _closing: asyncio.Task | None = None  # held so the closing task is not garbage-collected half-way

    async def connect(self) -> None:
        can_view, can_control = await _user_permissions(self.scope.get("user"))
        await self.accept()
        if not can_view:
            await self.close(code=CLOSE_FORBIDDEN)  # accepted first so the page can tell why and stop retrying
            return
        self.can_control = can_control
        self.session_key = self.scope["session"].session_key  # a signed-in user always has one
        session_socket_add(session_key=self.session_key, socket=self,
                           on_end=functools.partial(self._close_soon, CLOSE_FORBIDDEN))
        self._lifetime = asyncio.get_running_loop().call_later(settings.STATUS_SOCKET_LIFETIME_SECONDS,
                                                               self._close_soon, CLOSE_EXPIRED)
        self.link = service_link()
        self.link.join(self)
        await self.send_json({"type": MSG_SNAPSHOT, **self.link.view(), "canControl": can_control})

    async def disconnect(self, code: int) -> None:
        self._leave()

    def _leave(self) -> None:
        """Stop the events, the lifetime timer and the logout registration (idempotent)."""
        if self._lifetime is not None:
            self._lifetime.cancel()
            self._lifetime = None
        session_socket_remove(session_key=self.session_key, socket=self)
        link, self.link = self.link, None
        if link is not None:
            link.leave(self)

    async def _close_with(self, code: int) -> None:
        self._leave()
        await self.close(code=code)

    def _close_soon(self, code: int) -> None:
        """Close from a callback on this loop (logout, lifetime over); nothing if already closing."""
        if self.link is not None:
            self._closing = asyncio.ensure_future(self._close_with(code))

    # --- browser -> server ---

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any) -> None:
        if self.link is None:
            return
        if text_data is None:
            await self._error("messages must be JSON text")
            return
        if len(text_data) > MAX_MESSAGE_BYTES:
            await self._error(f"message too long (at most {MAX_MESSAGE_BYTES} bytes)")
            return
        try:
            content = json.loads(text_data)
        except ValueError:
            await self._error("message is not valid JSON")
            return
        await self.receive_json(content)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        try:
            message = parse_action(content)
        except ActionError as exc:
            await self._error(str(exc), content)
            return
        action = message["action"]
        can_view, self.can_control = await _session_permissions(self.session_key)
        if self.link is None:  # closed while the session was read (a logout, the lifetime)
            return
        if not can_view:
            logger.warning("status page: refused %s by %s: signed out or no longer allowed to view", action,
                           self.scope["user"])
            await self._error("signed out, or no longer allowed to view the service status", message)
            await self._close_with(CLOSE_FORBIDDEN)
            return
        if action in CONTROL_ACTIONS and not self.can_control:
            await self._error("you do not have permission to control the service", message)
            return
        assert self.link is not None
        if action == RECONNECT:
            self.link.reconnect()
            await self._reply(message, {"reconnecting": True})
            return
        if action == RUN:
            await self._run(message)
            return
        if action == RESTART:
            type, body = SERVICE_RESTART, {}
        else:
            type, body = RUNNER_REQUESTS[action], {"name": message["runner"]}
        try:
            result = await self.link.request(type, body)
        except MessengerUnavailable as exc:
            await self._error(f"service not reachable: {exc.reason}", message)
        except RemoteError as exc:
            await self._error(str(exc), message)
        except MessengerError as exc:
            await self._error(f"messenger error: {exc}", message)
        else:
            logger.info("status page: %s %s by %s", action, message.get("runner", ""), self.scope["user"])
            await self._reply(message, result)

    async def _run(self, message: dict) -> None:
        """Run is a durable trigger, as `manage.py messenger run`: queued (and said so) while the service is away.

        The reply goes out as soon as the trigger is stored; the nudge travels over the process's open messenger
        connection without being awaited, and a Run while one is still pending adds nothing ("already queued").
        """
        try:
            outcome = await _run_request(runner=message["runner"], user=self.scope["user"].get_username())
        except TriggerError as exc:
            await self._error(str(exc), message)
            return
        except DatabaseError as exc:  # nothing queued: say so rather than drop the socket
            logger.warning("status page: run %s not queued: %s", message["runner"], exc)
            await self._error(f"run not queued: the database is not available ({exc})", message)
            return
        logger.info("status page: run %s by %s: %s", message["runner"], self.scope["user"], outcome.message)
        await self._reply(message, run_reply(outcome))

    # --- link -> browser ---

    async def deliver(self, message: dict) -> None:
        """A message from this process's service link (link.EVENT_*)."""
        if message["type"] == EVENT_SNAPSHOT:
            await self.send_json({"type": MSG_SNAPSHOT, "snapshot": message["snapshot"], "link": message["link"],
                                  "canControl": self.can_control})
        else:  # events and link state: JSON text encoded once by the link for every viewer
            await self.send(text_data=message["text"])

    # --- helpers ---

    async def _reply(self, message: dict, result: dict) -> None:
        await self.send_json({"type": MSG_REPLY, **_echo(message), "result": result})

    async def _error(self, text: str, content: Any = None) -> None:
        await self.send_json({"type": MSG_ERROR, **_echo(content), "message": text})


@database_sync_to_async
def _run_request(*, runner: str, user: str) -> TriggerRequest:
    return trigger_request(kind=Trigger.Kind.RUNNER_RUN, target=runner, requested_by=user, wait=False)


def run_reply(outcome: TriggerRequest) -> dict[str, Any]:
    """The page's answer to Run: the trigger, whether it waits for the service, and one line saying so."""
    return {"trigger": outcome.trigger.id, "queued": not outcome.nudged, "alreadyQueued": outcome.already_queued,
            "message": outcome.message}


def _echo(content: Any) -> dict[str, Any]:
    """The well-typed identifying fields of a client message, to label the answer with."""
    if not isinstance(content, dict):
        return {}
    echo: dict[str, Any] = {}
    for field, kind in (("action", str), ("runner", str), ("id", int)):
        value = content.get(field)
        if isinstance(value, kind) and not isinstance(value, bool) and (kind is not str or len(value) <= 200):
            echo[field] = value
    return echo
