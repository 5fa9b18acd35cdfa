"""The service's request handlers over a real messenger server and client: each refusal carries its code."""
from __future__ import annotations

from pathlib import Path

import pytest

from indexer.runner import Scheduler
from indexer.service_handlers import ServiceHandlers
from messenger.errors import RemoteError
from messenger.messages import (
    BAD_REQUEST,
    RUNNER_PAUSE,
    RUNNER_RESUME,
    RUNNER_RUN,
    STATUS_SNAPSHOT,
    TRIGGER_NUDGE,
    UNKNOWN_RUNNER,
)
from tests.indexer.test_runners import Probe
from tests.messenger.support import run
from tests.messenger.test_server import serving


class Node:
    """What the handlers below read of a ServiceNode: its scheduler (with one runner, "Probe")."""

    def __init__(self) -> None:
        self.scheduler = Scheduler([Probe()], node="n1")


@pytest.mark.parametrize("type, body, code", [
    (RUNNER_RUN, {"name": "Nope"}, UNKNOWN_RUNNER),
    (RUNNER_PAUSE, {"name": "Nope"}, UNKNOWN_RUNNER),
    (RUNNER_RESUME, {}, BAD_REQUEST),
    (RUNNER_RUN, {"name": "Probe", "by": 7}, BAD_REQUEST),
    (STATUS_SNAPSHOT, {"logs": -1}, BAD_REQUEST),
    (TRIGGER_NUDGE, {"id": "1"}, BAD_REQUEST),
])
def test_a_refused_request_gets_an_error_with_its_code(tmp_path: Path, type: str, body: dict, code: str) -> None:
    handlers = ServiceHandlers(node=Node())  # type: ignore[arg-type]

    async def main() -> RemoteError:
        async with serving("pipe", tmp_path, handlers=handlers.requests()) as h:
            client = h.client()
            try:
                with pytest.raises(RemoteError) as refused:
                    await client.request(type, body)
            finally:
                await client.close()
        return refused.value

    assert run(main()).code == code
