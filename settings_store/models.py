"""Stored setting values, the settings version every node polls, and the audit trail."""
from __future__ import annotations

from django.db import models


class SettingValue(models.Model):
    """A setting that differs from its default. No row (or an empty value) means the default."""

    name = models.CharField(max_length=100, primary_key=True)
    value = models.TextField()
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.CharField(max_length=150, blank=True)

    def __str__(self) -> str:
        return self.name


class RetiredValue(models.Model):
    """A value a setting had before it was replaced, kept for a while (Setting.keep_replaced_seconds). Never shown.

    The messenger key's previous values: servers keep accepting them for Service.MessengerKeyGraceSeconds, so
    a key rotation fails no request while the nodes apply it.
    """

    name = models.CharField(max_length=100)
    value = models.TextField()
    retired_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["name", "retired_at"])]

    def __str__(self) -> str:
        return f"{self.name} retired at {self.retired_at:%Y-%m-%d %H:%M:%S}"


class SettingsVersion(models.Model):
    """A single row whose number grows with every change, so nodes can notice changes cheaply."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    version = models.BigIntegerField(default=0)


class SettingChange(models.Model):
    """The audit trail: who changed what, when, from which interface. Secrets are stored masked."""

    name = models.CharField(max_length=100, db_index=True)
    old_value = models.TextField(blank=True)
    new_value = models.TextField(blank=True)
    changed_by = models.CharField(max_length=150)
    source = models.CharField(max_length=20)  # web, cli, api, system
    changed_at = models.DateTimeField(auto_now_add=True, db_index=True)
    version = models.BigIntegerField()

    class Meta:
        ordering = ["-changed_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} by {self.changed_by}"
