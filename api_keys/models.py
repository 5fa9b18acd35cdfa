"""API keys as stored: a SHA-256 hash of the secret, never the secret itself, plus scopes and usage.

The key a client sends is `pgk_<id>_<secret>`: the id finds the row, the hash of the secret proves it.
"""
from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone

# The scopes a key may carry (a key is refused for anything outside its scopes).
SCOPES = (
    ("feeds:read", "list and download packages"),
    ("feeds:upload", "upload packages (twine)"),
    ("feeds:reindex", "reindex a feed, read its triggers"),
    ("settings:read", "list Advanced Settings (secrets masked)"),
    ("settings:write", "change Advanced Settings (except the messenger key)"),
    ("settings:messenger-key", "replace the messenger key (with settings:write and confirm=yes)"),
    ("service:read", "read the service status"),
    ("service:control", "run, pause and resume task runners"),
    ("metrics:read", "scrape /metrics"),
)
SCOPE_NAMES = tuple(name for name, _ in SCOPES)


class ApiKey(models.Model):
    """One API key: who owns it, what it may do, until when, and when and from where it was last used."""

    name = models.CharField(max_length=100)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    scopes = models.JSONField(default=list)  # a list of SCOPE_NAMES
    secret_hash = models.CharField(max_length=64)  # hex SHA-256 of the secret part of the key
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)  # None: never expires
    revoked = models.BooleanField(default=False)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_used_ip = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        db_table = "api_apikey"  # the name it had in the api app: the move changed no schema
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"API key {self.id} ({self.name})"

    def expired(self, *, now: datetime | None = None) -> bool:
        """Whether the key is past its expiry (a key without one never expires)."""
        return self.expires_at is not None and self.expires_at <= (now or timezone.now())
