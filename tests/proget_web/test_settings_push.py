"""The settings push (settings_store.push): a published version reaches every subscriber of this
process's listener, and a layer that fails never fails the save that published."""
from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from channels.layers import get_channel_layer

from settings_store.push import GROUP, settings_listener, settings_push


@pytest.fixture(autouse=True)
def fresh_layer(settings: Any) -> None:
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


async def _joined() -> None:
    """Until the listener has joined the group (its task runs after the test's first await)."""
    while not get_channel_layer().groups.get(GROUP):
        await asyncio.sleep(0.01)


def test_a_pushed_version_reaches_every_subscriber() -> None:
    async def main() -> list[tuple[str, int]]:
        got: list[tuple[str, int]] = []
        done = asyncio.Event()
        listener = settings_listener()
        listener.subscribe(lambda version: got.append(("beat", version)))
        listener.subscribe(lambda version: (got.append(("link", version)), done.set()))
        await asyncio.wait_for(_joined(), 5)
        await settings_push(version=7)
        await asyncio.wait_for(done.wait(), 5)
        return got

    assert asyncio.run(main()) == [("beat", 7), ("link", 7)]


def test_a_failing_layer_is_logged_not_raised(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
                                              ) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise ConnectionError("redis is restarting")

    monkeypatch.setattr(get_channel_layer(), "group_send", broken)
    with caplog.at_level(logging.WARNING):
        asyncio.run(settings_push(version=3))
    assert "settings version 3 not pushed to the web nodes (redis is restarting)" in caplog.text
