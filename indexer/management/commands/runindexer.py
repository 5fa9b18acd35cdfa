"""`manage.py runindexer [--once]`: run this machine's service node until SIGTERM/SIGINT."""
from __future__ import annotations

import asyncio

from django.core.management.base import BaseCommand, CommandError, CommandParser

from indexer.service import run_once, serve
from messenger.errors import MessengerError
from proget_web.startup import node_start_refusal


class Command(BaseCommand):
    help = "Run the service node: task runners and the service messenger."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="run the due task runners once, then exit")

    def handle(self, *args: object, once: bool, **options: object) -> None:
        refusal = node_start_refusal()
        if refusal is not None:
            raise CommandError(refusal)
        try:
            if once:
                for state in asyncio.run(run_once()):
                    self.stdout.write(f"{state['name']}: {state['lastResult'] or 'not due'} {state['lastMessage']}")
                return
            asyncio.run(serve())
        except MessengerError as exc:
            raise CommandError(f"the messenger cannot start: {exc}") from None
