"""`manage.py messenger ping`: talk to the service node; exit 0, or non-zero with one clear line."""
from __future__ import annotations

import logging
import time

from django.core.management.base import BaseCommand, CommandError, CommandParser

from messenger.client import call
from messenger.config import local_resolver, messenger_settings
from messenger.errors import MessengerError, MessengerUnavailable


class Command(BaseCommand):
    help = "Talk to the service node through the service messenger."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        ping = sub.add_parser("ping", help="check that the service answers, and how fast")
        ping.add_argument("--timeout", type=float, default=5.0, help="seconds to wait (default 5)")

    def handle(self, *args: object, **options: object) -> None:
        if options["verbosity"] < 2:
            # The outcome is the one line this command prints; log chatter belongs to -v 2.
            logging.getLogger().setLevel(logging.ERROR)
        try:
            getattr(self, f"_{options['action']}")(**options)
        except MessengerUnavailable as exc:
            raise CommandError(f"service not reachable: {exc.reason}") from None
        except MessengerError as exc:
            raise CommandError(str(exc)) from None

    def _ping(self, *, timeout: float, **_: object) -> None:
        config = messenger_settings()
        started = time.perf_counter()
        reply = call(
            endpoint=config.endpoint, key=config.key, run_dir=config.run_dir,
            resolver=local_resolver, type="ping", timeout=timeout,
        )
        elapsed_ms = (time.perf_counter() - started) * 1000
        self.stdout.write(
            f"pong from {reply.get('node')} (version {reply.get('version')}, up {reply.get('uptime')} s, "
            f"key {reply.get('fingerprint')}) in {elapsed_ms:.1f} ms"
        )
