"""The task runner framework: the Runner base, the context a run reports progress through, and the Scheduler.

The scheduler runs each runner as its own asyncio task (never twice at once), records every run,
outlives a runner that raises, and reports every state or progress change through `on_change`.
"""
from __future__ import annotations

import abc
import asyncio
import contextlib
import enum
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar

from asgiref.sync import sync_to_async
from django.db import close_old_connections
from django.utils import timezone

from cluster.lease import LeaseLost
from indexer.models import RunnerRecord
from indexer.run_history import CAUSE_RERUN, CAUSE_RUN_NOW, CAUSE_SCHEDULE, RunRecorder, run_history_recover_interrupted
from indexer.runner_records import (
    runner_paused_set,
    runner_records_read,
    runner_run_begin,
    runner_run_record,
    runner_runs_recover_interrupted,
)
from indexer.scheduling import is_due, next_run_at, seconds_until_next
from indexer.triggers import trigger_release, triggers_recover_interrupted
from settings_store.selectors import setting_get

logger = logging.getLogger(__name__)

INTERRUPTED_BY_STOP = "interrupted: service stopping"
# After cancelling the runners that outlived stop()'s timeout, how long they get to record that.
CANCEL_GRACE_SECONDS = 5.0
# The longest the loop sleeps without looking at the clock: bounds the cost of a missed wake-up.
DEFAULT_MAX_SLEEP_SECONDS = 60.0


class State(enum.StrEnum):
    IDLE = "idle"
    RUNNING = "running"
    PAUSED = "paused"
    FAILED = "failed"


class UnknownRunner(KeyError):
    """No runner has that name."""

    def __str__(self) -> str:
        name, known = self.args
        return f"unknown runner {name!r} (known: {', '.join(known)})"


class Runner(abc.ABC):
    """A periodic task: subclasses set `name` and `interval_setting` and implement `run`."""

    name: ClassVar[str]
    interval_setting: ClassVar[str]
    # Frequent housekeeping runners log their routine runs at DEBUG so they do not drown the live log.
    routine_log_level: ClassVar[int] = logging.INFO

    def interval(self) -> timedelta:
        """How often the runner runs; read from its setting on every pass, so a change applies live."""
        return timedelta(seconds=setting_get(self.interval_setting))

    @abc.abstractmethod
    async def run(self, ctx: RunContext) -> str:
        """Do one run and return a one-line result; raise to fail the run."""


class RunContext:
    """What a run gets: its target and trigger (if any), a logger, and `progress` to report through."""

    def __init__(
        self, *, scheduler: Scheduler, runner: Runner, target: str | None, trigger_id: int | None,
        report: Callable[[float, str], None],
    ) -> None:
        self.scheduler = scheduler
        self.node = scheduler.node
        self.runner_name = runner.name
        self.target = target  # e.g. the feed a `feed.reindex` trigger names; None for a scheduled run
        self.trigger_id = trigger_id
        self.logger = logging.getLogger(type(runner).__module__)
        self._report = report
        self._loop = asyncio.get_running_loop()

    @property
    def stopping(self) -> bool:
        """True once the service is stopping: a long run should wind down at its next safe point."""
        return self.scheduler.stopping

    def progress(self, percent: float, message: str) -> None:
        """Report progress (0-100) and what is happening; safe to call from a worker thread too."""
        percent = min(100.0, max(0.0, float(percent)))
        try:
            in_loop = asyncio.get_running_loop() is self._loop
        except RuntimeError:
            in_loop = False
        if in_loop:
            self._report(percent, message)
        else:
            self._loop.call_soon_threadsafe(self._report, percent, message)


@dataclass(frozen=True, kw_only=True)
class RunnerState:
    """A snapshot of one runner, as the Service Status page shows it."""

    name: str
    state: State
    progress_percent: float | None  # None unless running
    progress_message: str
    last_started_at: datetime | None  # the current run's start while running
    last_duration: float | None  # seconds
    last_result: str  # "ok", "failed", or "" before the first run
    last_error: str
    last_message: str
    next_run_at: datetime | None  # None while running or paused
    interval: float | None  # seconds; None until the scheduler has read the settings

    def as_json(self) -> dict[str, Any]:
        """The snapshot as JSON-ready values (ISO 8601 times)."""
        return {
            "name": self.name,
            "state": self.state.value,
            "progressPercent": self.progress_percent,
            "progressMessage": self.progress_message,
            "lastStartedAt": self.last_started_at.isoformat() if self.last_started_at else None,
            "lastDuration": self.last_duration,
            "lastResult": self.last_result,
            "lastError": self.last_error,
            "lastMessage": self.last_message,
            "nextRunAt": self.next_run_at.isoformat() if self.next_run_at else None,
            "interval": self.interval,
        }


@dataclass(frozen=True, kw_only=True)
class RunStart:
    """The answer to "run now": whether a run started, and a line saying what happened."""

    started: bool
    message: str


@dataclass(kw_only=True)
class _Slot:
    """The scheduler's mutable bookkeeping for one runner (RunnerState is its frozen view)."""

    runner: Runner
    interval: timedelta | None = None
    paused: bool = False
    task: asyncio.Task | None = None
    progress_percent: float | None = None
    progress_message: str = ""
    last_started_at: datetime | None = None
    last_duration: float | None = None
    last_result: str = ""
    last_error: str = ""
    last_message: str = ""
    rerun: bool = False  # its scheduled run was cut short by a crash (an earlier term): start it again at once


def describe_error(exc: BaseException) -> str:
    """One line naming an exception, for the status page and the trigger result."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


class Scheduler:
    """Owns the runners of one service node: runs them when due or asked, keeps their state, records runs.

    Call from one event loop: `run_forever()` until `stop()`, or `run_once()`; `run_now`, `pause`,
    `resume` and `nudge` may be called at any time in between.
    """

    def __init__(
        self, runners: Sequence[Runner], *, node: str, on_change: Callable[[RunnerState], None] | None = None,
        clock: Callable[[], datetime] = timezone.now, max_sleep: float = DEFAULT_MAX_SLEEP_SECONDS,
        gate: Callable[[RunContext], Awaitable[None]] | None = None, fencing_token: int | None = None,
    ) -> None:
        self._slots = {runner.name: _Slot(runner=runner) for runner in runners}
        if len(self._slots) != len(runners):
            raise ValueError("runner names must be unique")
        self.node = node
        self._on_change = on_change
        self._clock = clock
        self._max_sleep = max_sleep
        self._gate = gate  # awaited before every run; raising fails the run (e.g. this node is not the primary)
        # The primary lease term this scheduler runs for: its run records are written under this token only.
        self.fencing_token = fencing_token
        self._tasks: set[asyncio.Task] = set()
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()

    # -- reading state -------------------------------------------------------------------------

    @property
    def names(self) -> list[str]:
        return list(self._slots)

    def states(self) -> list[RunnerState]:
        """A snapshot of every runner, in registration order."""
        return [self._snapshot(slot) for slot in self._slots.values()]

    def state(self, name: str) -> RunnerState:
        """A snapshot of runner `name`; raises UnknownRunner."""
        return self._snapshot(self._slot(name))

    @property
    def stopping(self) -> bool:
        """True once stop() was called."""
        return self._stopping.is_set()

    # -- commands ------------------------------------------------------------------------------

    def run_now(
        self, name: str, *, target: str | None = None, trigger_id: int | None = None, requested_by: str = "",
    ) -> RunStart:
        """Start runner `name` now (even when paused); a no-op that says so when it is already running.

        A `trigger_id` is finished with the run's result when the run ends; `requested_by` (who asked, when no
        trigger says it) goes to the run history. Raises UnknownRunner.
        """
        slot = self._slot(name)
        if slot.task is not None:
            return RunStart(started=False, message=f"{name} is already running")
        if self._stopping.is_set():
            return RunStart(started=False, message=f"{name} not started: the service is stopping")
        cause = f"{CAUSE_RUN_NOW} by {requested_by}" if requested_by else CAUSE_RUN_NOW
        self._launch(slot, target=target, trigger_id=trigger_id, cause=cause)
        return RunStart(started=True, message=f"{name} started")

    async def pause(self, name: str) -> RunnerState:
        """Stop scheduling runner `name` (a run in progress finishes); persisted across restarts."""
        return await self._set_paused(name, paused=True)

    async def resume(self, name: str) -> RunnerState:
        """Schedule runner `name` again; persisted across restarts."""
        return await self._set_paused(name, paused=False)

    def nudge(self) -> None:
        """Wake the loop to re-read intervals and look for due runners (e.g. after a settings change)."""
        self._wake.set()

    # -- the loop ------------------------------------------------------------------------------

    async def load(self) -> None:
        """Read the persisted runner records and the intervals (run_forever and run_once do it first).

        A runner that is running keeps its in-memory state.
        """
        records = await sync_to_async(runner_records_read)(names=self.names)
        for name, record in records.items():
            slot = self._slots[name]
            if slot.task is not None:
                continue
            slot.paused = record.paused
            slot.last_started_at = record.last_started_at
            slot.last_duration = record.last_duration
            slot.last_result = record.last_result
            slot.last_error = record.last_error
            slot.last_message = record.last_message
        await self._refresh_intervals()

    async def run_forever(self) -> None:
        """Run due runners until stop(): fail what earlier runs left under way, then loop (the primary's term)."""
        await sync_to_async(triggers_recover_interrupted)(node=self.node)
        interrupted = await sync_to_async(runner_runs_recover_interrupted)(
            node=self.node, fencing_token=self.fencing_token)
        await sync_to_async(run_history_recover_interrupted)(node=self.node, fencing_token=self.fencing_token)
        if interrupted:
            logger.warning("recorded the runs of %s as interrupted: their node stopped during them",
                           ", ".join(run.runner for run in interrupted))
        await self.load()
        for run in interrupted:  # a scheduled run starts again at once; a trigger's run is never repeated
            if run.scheduled and run.runner in self._slots:
                self._slots[run.runner].rerun = True
        while not self._stopping.is_set():
            self._wake.clear()
            self._start_due()
            now = self._clock()
            sleep = seconds_until_next(
                runners_next_runs=[self._next_run(slot, now) for slot in self._slots.values()],
                now=now, max_sleep=self._max_sleep,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=sleep)
            if not self._stopping.is_set():
                await self._refresh_intervals()

    async def run_once(self) -> list[RunnerState]:
        """Run every due runner once (and whatever they start), wait for all, return the states."""
        await self.load()
        self._start_due()
        await self.wait_idle()
        return self.states()

    async def wait_idle(self) -> None:
        """Wait until no runner is running (runs started meanwhile included)."""
        while pending := {task for task in self._tasks if not task.done()}:
            await asyncio.wait(pending)

    async def stop(self, timeout: float) -> None:
        """Stop scheduling, give running runners `timeout` seconds, then cancel the rest.

        A cancelled run is recorded as failed and its trigger failed with "interrupted: service stopping".
        """
        self._stopping.set()
        self._wake.set()
        pending = {task for task in self._tasks if not task.done()}
        if pending:
            _, pending = await asyncio.wait(pending, timeout=timeout)
        for task in pending:
            logger.warning("cancelling %s: it did not finish within %s s of the stop", task.get_name(), timeout)
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=CANCEL_GRACE_SECONDS)

    # -- internals -----------------------------------------------------------------------------

    def _slot(self, name: str) -> _Slot:
        try:
            return self._slots[name]
        except KeyError:
            raise UnknownRunner(name, self.names) from None

    def _next_run(self, slot: _Slot, now: datetime) -> datetime | None:
        if slot.task is not None or slot.paused or slot.interval is None:
            return None
        if slot.rerun:
            return now
        return next_run_at(last_started_at=slot.last_started_at, interval=slot.interval, now=now)

    def _snapshot(self, slot: _Slot) -> RunnerState:
        if slot.task is not None:
            state = State.RUNNING
        elif slot.paused:
            state = State.PAUSED
        elif slot.last_result == RunnerRecord.Result.FAILED:
            state = State.FAILED
        else:
            state = State.IDLE
        return RunnerState(
            name=slot.runner.name,
            state=state,
            progress_percent=slot.progress_percent,
            progress_message=slot.progress_message,
            last_started_at=slot.last_started_at,
            last_duration=slot.last_duration,
            last_result=slot.last_result,
            last_error=slot.last_error,
            last_message=slot.last_message,
            next_run_at=self._next_run(slot, self._clock()),
            interval=slot.interval.total_seconds() if slot.interval is not None else None,
        )

    def _notify(self, slot: _Slot) -> None:
        if self._on_change is None:
            return
        try:
            self._on_change(self._snapshot(slot))
        except Exception:
            logger.exception("the on_change callback failed for runner %s", slot.runner.name)

    async def _refresh_intervals(self) -> None:
        """Re-read every runner's interval; a runner whose interval cannot be read keeps its previous one."""
        intervals = await sync_to_async(self._read_intervals)()
        for name, interval in intervals.items():
            slot = self._slots[name]
            if slot.interval != interval:
                slot.interval = interval
                self._notify(slot)

    def _read_intervals(self) -> dict[str, timedelta]:
        # Every pass, in the thread all of the node's sync_to_async calls share: drop a connection that broke
        # (database restarted or unreachable for a while), as Django does per request, so the next query reconnects.
        close_old_connections()
        intervals = {}
        for name, slot in self._slots.items():
            try:
                intervals[name] = slot.runner.interval()
            except Exception:
                logger.exception("could not read the interval of %s; keeping the previous one", name)
        return intervals

    def _start_due(self) -> None:
        now = self._clock()
        for slot in self._slots.values():
            if slot.task is None and slot.interval is not None and (slot.rerun and not slot.paused or is_due(
                last_started_at=slot.last_started_at, interval=slot.interval, now=now, paused=slot.paused
            )):
                self._launch(slot, target=None, trigger_id=None, cause=CAUSE_RERUN if slot.rerun else CAUSE_SCHEDULE)

    def _launch(self, slot: _Slot, *, target: str | None, trigger_id: int | None, cause: str) -> None:
        slot.last_started_at, slot.rerun = self._clock(), False
        slot.progress_percent, slot.progress_message = 0.0, "starting"
        task = asyncio.create_task(
            self._execute(slot, target=target, trigger_id=trigger_id, cause=cause), name=f"runner {slot.runner.name}"
        )
        slot.task = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self._notify(slot)

    def _report_progress(self, slot: _Slot, task: asyncio.Task, percent: float, message: str) -> None:
        if slot.task is task:  # progress arriving after the run ended is dropped
            slot.progress_percent, slot.progress_message = percent, message
            self._notify(slot)

    async def _execute(self, slot: _Slot, *, target: str | None, trigger_id: int | None, cause: str) -> None:
        runner, task = slot.runner, asyncio.current_task()
        history = RunRecorder(runner=runner.name, node=self.node, target=target, trigger_id=trigger_id, cause=cause)
        ctx = RunContext(
            scheduler=self, runner=runner, target=target, trigger_id=trigger_id,
            report=lambda percent, message: self._report_progress(slot, task, percent, message),
        )
        begun = time.monotonic()
        scope = f" for {target}" if target else ""
        logger.log(runner.routine_log_level, "task runner %s started%s", runner.name, scope)
        finish = functools.partial(self._finish, slot, begun=begun, trigger_id=trigger_id, history=history)
        began = False
        try:
            if self._gate is not None:
                await self._gate(ctx)
            began = True
            history.begin(started_at=slot.last_started_at)
            # Beside the run, not before it: the start does not wait for a database write. The finish waits for
            # it, so the record clears the mark and never the other way round.
            finish = functools.partial(finish, marking=asyncio.create_task(self._mark_running(slot, trigger_id)))
            message = str(await runner.run(ctx))
        except asyncio.CancelledError:
            await finish(ok=False, message="", error=INTERRUPTED_BY_STOP)
            raise
        except Exception as exc:
            if not began:  # refused at the gate (e.g. the lease is not trusted right now): nothing of it ran
                logger.warning("task runner %s not started: %s", runner.name, exc)
                await finish(ok=False, message="", error=describe_error(exc), trigger_id=None)
                await self._requeue(trigger_id)
                return
            logger.exception("task runner %s failed", runner.name)
            await finish(ok=False, message="", error=describe_error(exc))
        else:
            logger.log(runner.routine_log_level, "task runner %s finished: %s", runner.name, message)
            await finish(ok=True, message=message, error="")

    async def _mark_running(self, slot: _Slot, trigger_id: int | None) -> None:
        """Record that the run is under way, so a crash during it is recorded at the next start."""
        try:
            await sync_to_async(runner_run_begin)(
                name=slot.runner.name, started_at=slot.last_started_at, node=self.node, trigger_id=trigger_id,
                fencing_token=self.fencing_token,
            )
        except LeaseLost as exc:  # the run is cancelled as the node steps down
            logger.info("start of %s not recorded: %s", slot.runner.name, exc)
        except Exception as exc:  # the run itself does not depend on the record
            logger.warning("could not record the start of %s: %s", slot.runner.name, exc)

    async def _requeue(self, trigger_id: int | None) -> None:
        """Put the trigger of a run that never began back to pending: the primary runs it later, still once."""
        if trigger_id is None:
            return
        try:
            if await sync_to_async(trigger_release)(trigger_id=trigger_id, node=self.node):
                logger.info("trigger %s put back to pending: its run could not begin here", trigger_id)
        except Exception:  # left running: the node's next start (or Node Message Cleanup) fails it with the reason
            logger.exception("could not put trigger %s back to pending", trigger_id)

    async def _finish(
        self, slot: _Slot, *, begun: float, ok: bool, message: str, error: str, trigger_id: int | None,
        history: RunRecorder, marking: asyncio.Task | None = None,
    ) -> None:
        history.log.close()  # what the change callbacks start from here is not part of the run
        slot.task = None
        slot.progress_percent, slot.progress_message = None, ""
        slot.last_duration = round(time.monotonic() - begun, 3)
        slot.last_result = (RunnerRecord.Result.OK if ok else RunnerRecord.Result.FAILED).value
        slot.last_error, slot.last_message = error, message
        self._notify(slot)
        self._wake.set()
        if marking is not None:
            await marking
        try:
            await sync_to_async(runner_run_record)(
                name=slot.runner.name, started_at=slot.last_started_at, duration=slot.last_duration, ok=ok,
                error=error, message=message, trigger_id=trigger_id, node=self.node, fencing_token=self.fencing_token,
            )
        except LeaseLost as exc:  # the new primary's term owns the record (and the trigger) now
            logger.info("run of %s not recorded: %s", slot.runner.name, exc)
        except Exception:
            logger.exception("could not record the run of %s", slot.runner.name)
        await history.finish(ok=ok, message=message, error=error, duration=slot.last_duration)

    async def _set_paused(self, name: str, *, paused: bool) -> RunnerState:
        slot = self._slot(name)
        await sync_to_async(runner_paused_set)(name=name, paused=paused)
        slot.paused = paused
        logger.info("task runner %s %s", name, "paused" if paused else "resumed")
        self._notify(slot)
        self._wake.set()
        return self._snapshot(slot)
