"""The service node's event loop: uvloop when it is installed (it halves the loop's share of a messenger round
trip), asyncio's own loop otherwise. Both run the same code; the whole messenger and indexer suites pass on each."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")


def loop_run(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` to completion on a new event loop, as asyncio.run does: uvloop's if importable."""
    try:
        import uvloop
    except ImportError:
        logger.debug("uvloop is not installed: the service node runs on asyncio's event loop")
        return asyncio.run(coro)
    return uvloop.run(coro)
