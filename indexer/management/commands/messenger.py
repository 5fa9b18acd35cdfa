"""`manage.py messenger ping|status|run RUNNER|reindex FEED`: talk to the service node.

Exit 0 on success; non-zero with one clear line on failure. `run` and `reindex` write a durable
trigger first, so with the service down they are queued rather than lost.
"""
from __future__ import annotations

import time

from django.core.management.base import CommandParser

from indexer.messenger_config import service_call
from indexer.models import Trigger
from indexer.trigger_requests import trigger_request
from indexer.triggers import TriggerError
from messenger.errors import MessengerError, MessengerUnavailable
from messenger.messages import PING, STATUS_SNAPSHOT
from node_base.cli import ActionCommand


def _runner_line(runner: dict) -> str:
    progress = ""
    if runner["state"] == "running":
        progress = f" {runner['progressPercent'] or 0:.0f}% {runner['progressMessage']}"
    last = f"last {runner['lastResult']} {runner['lastStartedAt']}" if runner["lastStartedAt"] else "never run"
    return f"{runner['name']:<28} {runner['state']:<8}{progress}  {last}  next {runner['nextRunAt'] or '-'}"


class Command(ActionCommand):
    help = "Talk to the service node through the service messenger."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        for name, text in [("ping", "check that the service answers, and how fast"),
                           ("status", "the service's task runners and messenger counters")]:
            sub.add_parser(name, help=text).add_argument(
                "--timeout", type=float, default=5.0, help="seconds to wait (default 5)")
        sub.add_parser("run", help="run a task runner now (queued if the service is down)").add_argument("runner")
        sub.add_parser("reindex", help="reindex a feed now (queued if the service is down)").add_argument("feed")

    expected = (MessengerError, TriggerError)

    def describe(self, exc: Exception) -> str:
        if isinstance(exc, MessengerUnavailable):
            return f"service not reachable: {exc.reason}"
        return str(exc)

    def _ping(self, *, timeout: float, **_: object) -> None:
        started = time.perf_counter()
        reply = service_call(PING, timeout=timeout)
        elapsed_ms = (time.perf_counter() - started) * 1000
        self.stdout.write(
            f"pong from {reply.get('node')} ({reply.get('role', 'service')}, version {reply.get('version')}, "
            f"up {reply.get('uptime')} s, "
            f"key {reply.get('fingerprint')}) in {elapsed_ms:.1f} ms"
        )

    def _status(self, *, timeout: float, **_: object) -> None:
        snapshot = service_call(STATUS_SNAPSHOT, timeout=timeout, body={"logs": 0})
        service = snapshot["service"]
        self.stdout.write(f"service {service['node']} (version {service['version']}) up {service['uptime']} s "
                          f"on {service['endpoint']}, key {service['fingerprint']}")
        for runner in snapshot["runners"].values():
            self.stdout.write("  " + _runner_line(runner))
        rejects = service["messenger"].get("rejects") or {}
        self.stdout.write(f"  messenger rejects: {dict(rejects) or 'none'}")

    def _run(self, *, runner: str, **_: object) -> None:
        self._trigger(Trigger.Kind.RUNNER_RUN, runner)

    def _reindex(self, *, feed: str, **_: object) -> None:
        self._trigger(Trigger.Kind.FEED_REINDEX, feed)

    def _trigger(self, kind: str, target: str) -> None:
        outcome = trigger_request(kind=kind, target=target, requested_by="cli")
        self.stdout.write(outcome.message)
