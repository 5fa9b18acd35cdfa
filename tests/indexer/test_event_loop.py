"""The service node's event loop: uvloop when installed, asyncio's loop otherwise (indexer/event_loop.py)."""
from __future__ import annotations

import asyncio
import sys

import pytest

from indexer.event_loop import loop_run


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_the_service_node_runs_on_uvloop_when_it_is_installed() -> None:
    pytest.importorskip("uvloop")
    assert loop_run(_loop_module()).startswith("uvloop")


def test_the_service_node_falls_back_to_asyncio_without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop raises ImportError
    policy = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(None)  # asyncio's own loop, even when PROGET_TEST_UVLOOP=1 made uvloop the default
    try:
        assert loop_run(_loop_module()).startswith("asyncio")
    finally:
        asyncio.set_event_loop_policy(policy)
