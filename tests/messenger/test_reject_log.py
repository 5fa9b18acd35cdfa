"""Rejected connections cannot flood the log or wipe the Status page's live log; peer text is cut before logging.

Real sockets (junk from 127.0.0.2 and other loopback addresses, or over the Unix socket); the live log is a real
indexer HubLogHandler on a StatusHub, the log file a handler that keeps every record.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from indexer.logstream import HubLogHandler
from indexer.status import StatusHub
from messenger.errors import RequestRefused
from messenger.limits import MAGIC, MAX_LOGGED_PEER_TEXT, PROTOCOL_VERSION, REJECT_LOG_MAX_KEYS
from messenger.messages import UNKNOWN_RUNNER
from messenger.server import RequestContext, ServerLimits
from tests.messenger.support import eventually, run
from tests.messenger.test_server import (
    Harness,
    handshake,
    ping,
    read_until_closed,
    serving,
    transport,  # noqa: F401 - the fixture
)

JUNK = 1_000
# Junk connections in flight at once (well under the per-source handshake cap: every one gets to send its junk).
JUNK_CONCURRENCY = 8
BAD_MAGIC = b"GET / HTTP/1.1\r\n\r\n"
UNKNOWN_VERSION = MAGIC + bytes([PROTOCOL_VERSION + 1]) + bytes(32)


@dataclass
class Logs:
    """Every record the messenger logs (what a log file gets) and the live log (what the Status page shows)."""

    records: list[logging.LogRecord] = field(default_factory=list)
    hub: StatusHub | None = None

    def lines(self, text: str = "rejected") -> list[str]:
        return [record.getMessage() for record in self.records if text in record.getMessage()]

    def live(self, text: str = "rejected") -> list[str]:
        assert self.hub is not None
        return [event["message"] for event in self.hub.snapshot()["logs"] if text in event["message"]]


class _Keep(logging.Handler):
    def __init__(self, logs: Logs) -> None:
        super().__init__(logging.DEBUG)
        self.logs = logs

    def emit(self, record: logging.LogRecord) -> None:
        self.logs.records.append(record)


@pytest.fixture
def logs() -> Iterator[Logs]:
    """Attach both handlers to the `messenger` logger; the hub is made inside the test's event loop."""
    kept = Logs()
    messenger_logger = logging.getLogger("messenger")
    level = messenger_logger.level
    messenger_logger.setLevel(logging.INFO)
    keep = _Keep(kept)
    messenger_logger.addHandler(keep)
    live: list[HubLogHandler] = []

    def attach_live() -> None:
        kept.hub = StatusHub()
        live.append(HubLogHandler(kept.hub))
        messenger_logger.addHandler(live[0])

    kept.attach_live = attach_live  # type: ignore[attr-defined]
    try:
        yield kept
    finally:
        messenger_logger.removeHandler(keep)
        for handler in live:
            messenger_logger.removeHandler(handler)
        messenger_logger.setLevel(level)


async def send_junk(h: Harness, count: int, payload: bytes, hosts: tuple[str, ...] = ("127.0.0.2",)) -> None:
    """`count` connections that each send `payload` and wait to be dropped, JUNK_CONCURRENCY at a time."""
    todo = iter(range(count))

    async def worker() -> None:
        for n in todo:
            reader, writer = await h.open(hosts[n % len(hosts)])
            writer.write(payload)
            await read_until_closed(reader, timeout=2)
            writer.close()

    await asyncio.gather(*(worker() for _ in range(JUNK_CONCURRENCY)))


def test_a_thousand_junk_connections_make_one_line_then_one_summary(
    transport: str, tmp_path: Path, logs: Logs  # noqa: F811 - the fixture
) -> None:
    source = "unix" if transport == "pipe" else "127.0.0.2"

    async def main() -> None:
        logs.attach_live()  # type: ignore[attr-defined]
        async with serving(transport, tmp_path, limits=ServerLimits()) as h:
            await send_junk(h, JUNK, BAD_MAGIC)
            assert h.server.stats.rejects == {"bad-magic": JUNK}  # the counters stay exact
            assert logs.lines() == [f"messenger: rejected {source}: bad-magic"]
            assert logs.live() == []  # the live log gets summaries only
        # Closing the server writes the summary it was holding (the interval had not ended).
        summary = f"messenger: rejected {source}: bad-magic, {JUNK - 1} more suppressed"
        assert [line.startswith(summary) for line in logs.lines()] == [False, True]
        assert len(logs.live()) == 1 and logs.live()[0].startswith(summary)

    run(main())


def test_summaries_come_once_per_interval_per_source_and_reason(tmp_path: Path, logs: Logs) -> None:
    interval = 0.5

    async def main() -> None:
        async with serving("tcp", tmp_path, limits=ServerLimits(reject_log_interval=interval)) as h:
            await send_junk(h, 10, BAD_MAGIC, hosts=("127.0.0.2",))
            await send_junk(h, 6, UNKNOWN_VERSION, hosts=("127.0.0.3",))
            assert sorted(logs.lines()) == [
                "messenger: rejected 127.0.0.2: bad-magic", "messenger: rejected 127.0.0.3: unknown-version"]
            await eventually(lambda: len(logs.lines()) == 4, timeout=interval * 3)
            assert sorted(logs.lines()[2:]) == [
                f"messenger: rejected 127.0.0.2: bad-magic, 9 more suppressed in the last {interval:g} s",
                f"messenger: rejected 127.0.0.3: unknown-version, 5 more suppressed in the last {interval:g} s",
            ]
            # Two quiet intervals later the pairs are forgotten: the next reject is logged at once again.
            await asyncio.sleep(interval * 2.5)
            assert len(logs.lines()) == 4
            await send_junk(h, 1, BAD_MAGIC)
            assert logs.lines()[4:] == ["messenger: rejected 127.0.0.2: bad-magic"]

    run(main())


def test_many_sources_are_summed_up_beyond_a_bound(tmp_path: Path, logs: Logs) -> None:
    hosts = tuple(f"127.0.0.{n}" for n in range(2, REJECT_LOG_MAX_KEYS + 12))

    async def main() -> None:
        async with serving("tcp", tmp_path, limits=ServerLimits()) as h:
            await send_junk(h, len(hosts), BAD_MAGIC, hosts=hosts)
            lines = logs.lines()
            assert len(lines) == REJECT_LOG_MAX_KEYS + 1
            assert lines[-1] == "messenger: rejected other sources: bad-magic"
            assert h.server.stats.rejects == {"bad-magic": len(hosts)}
        assert logs.lines()[-1].startswith("messenger: rejected other sources: bad-magic, 9 more suppressed")

    run(main())


def test_text_a_peer_supplies_is_cut_before_it_is_logged(transport: str, tmp_path: Path, logs: Logs) -> None:  # noqa: F811
    name = "r" * 100_000

    async def pause(body: dict, context: RequestContext) -> dict:
        raise ValueError(f"unknown runner {body['name']!r} (known: Feed Indexing)")  # as the service's handler does

    async def main() -> None:
        async with serving(transport, tmp_path, handlers={"ping": ping, "runner.pause": pause}) as h:
            peer = await handshake(h)
            peer.writer.write(peer.conn.send_request(id=1, type="runner.pause", body={"name": name}))
            await peer.read_frame()  # the ERROR reply
        [failure] = [record for record in logs.records if record.levelno >= logging.ERROR]
        text = logging.Formatter().format(failure)
        assert "runner.pause handler failed" in text and "unknown runner 'rrrr" in text
        assert "Traceback (most recent call last)" in text and "in pause" in text  # the stack is kept
        assert len(text) < MAX_LOGGED_PEER_TEXT + 2_000  # the message line is cut; the stack is our own code

    run(main())


def test_a_deliberate_refusal_is_one_info_line_not_an_error(transport: str, tmp_path: Path, logs: Logs) -> None:  # noqa: F811
    """A peer asking for something that does not exist is not the service failing: no ERROR, no stack."""
    name = "r" * 100_000

    async def pause(body: dict, context: RequestContext) -> dict:
        raise RequestRefused(f"unknown runner {body['name']!r}", code=UNKNOWN_RUNNER)

    async def main() -> None:
        async with serving(transport, tmp_path, handlers={"ping": ping, "runner.pause": pause}) as h:
            peer = await handshake(h)
            peer.writer.write(peer.conn.send_request(id=1, type="runner.pause", body={"name": name}))
            await peer.read_frame()  # the ERROR reply
        assert not [record for record in logs.records if record.levelno >= logging.WARNING]
        [refusal] = [record for record in logs.records if "runner.pause" in record.getMessage()]
        text = logging.Formatter().format(refusal)
        assert refusal.levelno == logging.INFO and "runner.pause refused" in text and "unknown runner 'rrrr" in text
        assert "Traceback" not in text and len(text) < MAX_LOGGED_PEER_TEXT + 200

    run(main())
