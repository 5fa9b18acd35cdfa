"""Shared behaviour of the management commands people type."""
from __future__ import annotations

import logging


def quiet_logging(verbosity: int) -> None:
    """Below -v 2, show only errors: a command's outcome is the line it prints, not log chatter."""
    if verbosity < 2:
        logging.getLogger().setLevel(logging.ERROR)
