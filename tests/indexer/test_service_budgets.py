"""A real service node under floods from one authenticated peer (issue 12, item 4): pipelined nudges do not
starve another client, and a burst of config.changed is coalesced into a few applies."""
from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import pytest

from messenger.client import MessengerClient
from messenger.crypto import parse_key
from messenger.endpoint import parse_endpoint
from tests.processes import ServiceProcess, manage, migrate, shell, wait_for

pytestmark = pytest.mark.slow

KEY = ("from indexer.messenger_config import messenger_settings as m; import base64; "
       "print(base64.b64encode(m().key).decode())")
VERSION = "from settings_store.selectors import settings_version; print(settings_version())"
APPLIED = re.compile(r"settings version \d+ applied")
# Pipelined nudges from one connection: each is database work on the service's shared thread.
NUDGES = 3000
# config.changed requests in one burst.
CONFIG_CHANGES = 300
# Another client's answers while the flood is under way: a ping (no database) and an action (the shared database
# thread, as every action of the Service Status page) come well within this.
PROMPT_SECONDS = 1.0


@pytest.fixture
def service(tmp_path: Path):
    migrate(tmp_path)
    key = parse_key(shell(tmp_path, KEY))
    process = ServiceProcess(tmp_path).start()
    try:
        yield process, key
    finally:
        process.stop()


def _client(data_dir: Path, key: bytes) -> MessengerClient:
    return MessengerClient(endpoint=parse_endpoint(""), key=key, run_dir=data_dir / "run", connect_timeout=2,
                           request_timeout=60)


def test_a_flood_of_pipelined_nudges_does_not_starve_another_client(service: tuple[ServiceProcess, bytes]) -> None:
    process, key = service

    async def main() -> float:
        flooder, other = _client(process.data_dir, key), _client(process.data_dir, key)
        try:
            await flooder.request("ping")
            flood = [asyncio.ensure_future(flooder.request("trigger.nudge", {"id": i})) for i in range(1, NUDGES + 1)]
            await asyncio.wait(flood, return_when=asyncio.FIRST_COMPLETED)  # the service is working through it
            began = time.monotonic()
            await other.request("ping", timeout=PROMPT_SECONDS)
            await other.request("runner.resume", {"name": "Feed Retention"}, timeout=PROMPT_SECONDS)
            elapsed = time.monotonic() - began
            assert not all(task.done() for task in flood), "the flood was over before the other client asked"
            for task in flood:
                task.cancel()
            return elapsed
        finally:
            await flooder.close()
            await other.close()

    assert asyncio.run(main()) < PROMPT_SECONDS


def test_a_burst_of_config_changed_is_coalesced(service: tuple[ServiceProcess, bytes]) -> None:
    process, key = service

    async def burst() -> None:
        client = _client(process.data_dir, key)
        try:
            replies = await asyncio.gather(*(client.request("config.changed") for _ in range(CONFIG_CHANGES)))
            assert all(reply["accepted"] for reply in replies)
        finally:
            await client.close()

    asyncio.run(burst())
    # A last change, applied after every apply the burst caused (applies run one at a time, in order).
    assert "the service applies it now" in manage(process.data_dir, "settings", "set",
                                                  "Service.TriggerPollSeconds", "2").stdout
    version = shell(process.data_dir, VERSION)
    wait_for(lambda: f"settings version {version} applied" in process.log.read_text(), what="the last change applied")
    applies = len(APPLIED.findall(process.log.read_text()))
    assert applies <= CONFIG_CHANGES // 10, f"{applies} applies for {CONFIG_CHANGES} config.changed"
