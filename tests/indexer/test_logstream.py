"""HubLogHandler: records become log events, truncated, with exception text, at the set level, without recursion."""
from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterator

import pytest

from indexer.logstream import MAX_LOG_MESSAGE, TRUNCATION_MARK, HubLogHandler, truncate_message
from indexer.status import StatusHub


@pytest.fixture
def test_logger(request: pytest.FixtureRequest) -> Iterator[logging.Logger]:
    log = logging.getLogger(f"tests.logstream.{request.node.name}")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    yield log
    log.handlers.clear()


def run_with_handler(log: logging.Logger, body: Callable[[HubLogHandler], None], hub_class: type = StatusHub) -> dict:
    """Attach a handler on a fresh hub, run `body`, return the hub's snapshot."""

    async def main() -> dict:
        handler = HubLogHandler(hub_class())
        log.addHandler(handler)
        try:
            body(handler)
            await asyncio.sleep(0)  # let records handed over from threads arrive
        finally:
            log.removeHandler(handler)
        return handler.hub.snapshot()

    return asyncio.run(main())


def messages(snapshot: dict) -> list[str]:
    return [event["message"] for event in snapshot["logs"]]


def test_a_record_becomes_a_log_event(test_logger: logging.Logger) -> None:
    records: list[logging.LogRecord] = []
    test_logger.addFilter(lambda record: records.append(record) or True)

    snap = run_with_handler(test_logger, lambda handler: test_logger.warning("feed %s: %d files", "pypi", 3))
    (event,) = snap["logs"]
    assert event == {
        "type": "log", "seq": 1, "at": records[0].created,
        "level": "WARNING", "logger": test_logger.name, "message": "feed pypi: 3 files",
    }


def test_nothing_is_escaped(test_logger: logging.Logger) -> None:
    text = "<script>alert('x')</script> & \"quotes\"\nnext line"
    snap = run_with_handler(test_logger, lambda handler: test_logger.info(text))
    assert messages(snap) == [text]


def test_exception_text_is_included(test_logger: logging.Logger) -> None:
    def body(handler: HubLogHandler) -> None:
        try:
            1 / 0  # noqa: B018
        except ZeroDivisionError:
            test_logger.exception("indexing failed")

    (message,) = messages(run_with_handler(test_logger, body))
    assert message.startswith("indexing failed\nTraceback (most recent call last):")
    assert message.endswith("ZeroDivisionError: division by zero")


def test_long_messages_keep_head_and_tail(test_logger: logging.Logger) -> None:
    def body(handler: HubLogHandler) -> None:
        test_logger.info("a" * 10_000 + "END")
        try:
            raise ValueError("the real cause")
        except ValueError:
            test_logger.exception("start " + "b" * 10_000)

    long_line, with_traceback = messages(run_with_handler(test_logger, body))
    assert len(long_line) == len(with_traceback) == MAX_LOG_MESSAGE
    assert long_line.startswith("aaa") and long_line.endswith("aEND") and TRUNCATION_MARK in long_line
    assert with_traceback.startswith("start b") and with_traceback.endswith("ValueError: the real cause")


def test_truncate_message_bounds() -> None:
    fits = "x" * MAX_LOG_MESSAGE
    assert truncate_message(fits) is fits
    cut = truncate_message(fits + "y")
    assert len(cut) == MAX_LOG_MESSAGE and cut.endswith("y") and TRUNCATION_MARK in cut
    assert truncate_message("0123456789" * 10, limit=len(TRUNCATION_MARK) + 4) == "01" + TRUNCATION_MARK + "89"


def test_level_follows_the_setting(test_logger: logging.Logger) -> None:
    def body(handler: HubLogHandler) -> None:
        test_logger.debug("debug hidden by default")
        test_logger.info("info 1")
        handler.set_level_name("WARNING")
        test_logger.info("info hidden")
        test_logger.warning("warning 1")
        handler.set_level_name(" debug ")
        test_logger.debug("debug 1")
        with pytest.raises(ValueError, match="unknown log level 'LOUD'"):
            handler.set_level_name("LOUD")
        assert handler.level == logging.DEBUG

    assert messages(run_with_handler(test_logger, body)) == ["info 1", "warning 1", "debug 1"]


def test_a_hub_that_logs_does_not_make_it_recurse(test_logger: logging.Logger) -> None:
    calls = []

    class ChattyHub(StatusHub):
        def publish_log(self, record: dict, *, at: float | None = None) -> None:
            calls.append(record["message"])
            test_logger.warning("published %s", record["message"])  # back into the same handler
            super().publish_log(record, at=at)

    snap = run_with_handler(test_logger, lambda handler: test_logger.info("once"), hub_class=ChattyHub)
    assert calls == ["once"]
    assert messages(snap) == ["once"]


def test_emit_never_raises(test_logger: logging.Logger, monkeypatch: pytest.MonkeyPatch) -> None:
    failures = []

    class FlakyHub(StatusHub):
        broken = True

        def publish_log(self, record: dict, *, at: float | None = None) -> None:
            if self.broken:
                raise RuntimeError("hub broken")
            super().publish_log(record, at=at)

    def body(handler: HubLogHandler) -> None:
        monkeypatch.setattr(handler, "handleError", failures.append)
        test_logger.error("lost")
        test_logger.error("lost too")
        handler.hub.broken = False  # repaired: the handler was not left stuck
        test_logger.error("kept")

    snap = run_with_handler(test_logger, body, hub_class=FlakyHub)
    assert [record.getMessage() for record in failures] == ["lost", "lost too"]
    assert messages(snap) == ["kept"]


def test_records_from_other_threads_are_streamed(test_logger: logging.Logger) -> None:
    def body(handler: HubLogHandler) -> None:
        worker = threading.Thread(target=lambda: [test_logger.info("from thread %d", n) for n in range(50)])
        worker.start()
        worker.join(timeout=5)

    assert messages(run_with_handler(test_logger, body)) == [f"from thread {n}" for n in range(50)]
