"""Shared behaviour of the management commands people type: one line out, one clear line on failure."""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from django.core.management.base import BaseCommand, CommandError


@contextlib.contextmanager
def quiet_logging(verbosity: int) -> Iterator[None]:
    """Below -v 2, show only errors while the command runs: its outcome is the line it prints."""
    root = logging.getLogger()
    previous = root.level
    if verbosity < 2:
        root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(previous)


class ActionCommand(BaseCommand):
    """A command with sub-actions (`_<action>` methods); the errors in `expected` become one CommandError line."""

    expected: tuple[type[Exception], ...] = ()

    def describe(self, exc: Exception) -> str:
        """The one line shown for an expected error."""
        return str(exc)

    def handle(self, *args: object, **options: object) -> None:
        with quiet_logging(int(options["verbosity"])):
            try:
                getattr(self, f"_{options['action']}")(**options)
            except self.expected as exc:
                raise CommandError(self.describe(exc)) from None
