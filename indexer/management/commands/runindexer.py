"""`manage.py runindexer [--once]`: run this machine's service node until SIGTERM/SIGINT."""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from indexer.event_loop import loop_run
from indexer.service import run_once, serve
from messenger.errors import MessengerError
from node_base.startup import node_start_refusal


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
                for state in loop_run(run_once()):
                    self.stdout.write(f"{state['name']}: {state['lastResult'] or 'not due'} {state['lastMessage']}")
                return
            loop_run(serve())
        except MessengerError as exc:
            raise CommandError(f"the messenger cannot start: {exc}") from None
