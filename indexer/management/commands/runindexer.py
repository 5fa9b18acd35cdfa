"""`manage.py runindexer`: run this machine's service node until SIGTERM/SIGINT."""
from __future__ import annotations

import asyncio

from django.core.management.base import BaseCommand, CommandError

from indexer.service import serve
from messenger.config import messenger_settings
from messenger.errors import MessengerError


class Command(BaseCommand):
    help = "Run the service node: task runners and the service messenger."

    def handle(self, *args: object, **options: object) -> None:
        try:
            asyncio.run(serve(messenger_settings()))
        except MessengerError as exc:
            raise CommandError(f"the messenger cannot start: {exc}") from None
