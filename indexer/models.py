"""The service node's durable state: triggers (user requests to run something), each runner's last run
and the run history (the node registry and the primary lease live in the cluster app).

A Trigger row is written before anyone is told about it, so a request survives a messenger outage;
a RunnerRecord keeps what must survive a restart (paused, last run).
"""
from __future__ import annotations

from django.db import models
from django.utils import timezone

TARGET_MAX_LENGTH = 200
# A runner's name: a Run's trigger carries it as its target, so the same cap (indexer.runner_requests checks it).
RUNNER_NAME_MAX = TARGET_MAX_LENGTH


class Trigger(models.Model):
    """One request to run something, claimed by exactly one service node and finished once."""

    class Kind(models.TextChoices):
        FEED_REINDEX = "feed.reindex", "Reindex a feed"
        RUNNER_RUN = "runner.run", "Run a task runner"

    class State(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    kind = models.CharField(max_length=32, choices=Kind.choices)
    target = models.CharField(max_length=TARGET_MAX_LENGTH)  # a feed or runner name
    requested_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    result = models.TextField(blank=True)  # what happened, or why it failed
    claimed_by = models.CharField(max_length=200, blank=True)  # the node that runs it
    claimed_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The primary lease's fencing token under which it was claimed (None: claimed outside any lease).
    claim_token = models.BigIntegerField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["state", "created_at"], name="indexer_trigger_state_created")]

    def __str__(self) -> str:
        return f"{self.kind} {self.target} ({self.state})"


class RunnerRecord(models.Model):
    """What a task runner keeps across restarts: whether it is paused, and its last run."""

    class Result(models.TextChoices):
        OK = "ok"
        FAILED = "failed"

    name = models.CharField(max_length=RUNNER_NAME_MAX, primary_key=True)
    paused = models.BooleanField(default=False)
    last_started_at = models.DateTimeField(null=True, blank=True)
    last_duration = models.FloatField(null=True, blank=True)  # seconds
    last_result = models.CharField(max_length=16, choices=Result.choices, blank=True)
    last_error = models.TextField(blank=True)
    last_message = models.TextField(blank=True)
    # Set while a run is under way, so a run cut short by a crash is recorded as interrupted at the next start.
    running_since = models.DateTimeField(null=True, blank=True)
    running_node = models.CharField(max_length=200, blank=True)
    running_trigger_id = models.BigIntegerField(null=True, blank=True)  # None: a scheduled run

    def __str__(self) -> str:
        return self.name


class RunHistory(models.Model):
    """One run of a task runner: when, how long, how it ended, who or what asked for it, and its own log lines.

    Written by the service node (indexer.run_history) as the run begins and ends; `log` holds at most
    Service.RunHistoryLogLines lines, with `log_dropped` lines left out at index `log_dropped_at`.
    """

    class Result(models.TextChoices):
        RUNNING = "running"
        OK = "ok"
        FAILED = "failed"

    runner = models.CharField(max_length=RUNNER_NAME_MAX)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    duration = models.FloatField(null=True, blank=True)  # seconds
    result = models.CharField(max_length=16, choices=Result.choices, default=Result.RUNNING)
    message = models.TextField(blank=True)
    error = models.TextField(blank=True)
    target = models.CharField(max_length=TARGET_MAX_LENGTH, blank=True)  # e.g. the feed of a Reindex
    trigger_id = models.BigIntegerField(null=True, blank=True)  # None: not asked for through a trigger
    triggered_by = models.CharField(max_length=200, blank=True)  # "schedule", a user, "cli", "alice (API key 3)"
    node = models.CharField(max_length=200, blank=True)
    lease_token = models.BigIntegerField(null=True, blank=True)  # the primary's term it ran in (None: no lease)
    log = models.JSONField(default=list)  # [{"at": unix time, "level", "logger", "message"}, ...]
    log_dropped = models.PositiveIntegerField(default=0)
    log_dropped_at = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [
            models.Index(fields=["runner", "id"], name="indexer_runhistory_runner_id"),
            models.Index(fields=["started_at"], name="indexer_runhistory_started"),
        ]

    def __str__(self) -> str:
        return f"{self.runner} run {self.id} ({self.result})"
