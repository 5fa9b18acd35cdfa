"""The cluster's shared state: the node registry, and the primary lease with its failover history.

Both node kinds use it (web nodes resolve the primary, service nodes hold the lease). The tables keep the names
they had when these models lived in the indexer app (db_table), so moving them changed no schema.
"""
from __future__ import annotations

from django.db import models
from django.utils import timezone

# Room for any endpoint parse_endpoint accepts (a 253-character host name, brackets, a port).
ENDPOINT_MAX_LENGTH = 300


class ApplyResult(models.TextChoices):
    """How a node's last settings apply went."""

    OK = "ok"
    REFUSED = "refused"


class Node(models.Model):
    """A node of the cluster as it registered itself; its heartbeat says whether it is alive."""

    class Kind(models.TextChoices):
        SERVICE = "service"
        WEB = "web"

    name = models.CharField(max_length=200, primary_key=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    host = models.CharField(max_length=255, blank=True)
    ip = models.CharField(max_length=64, blank=True)
    endpoint = models.CharField(max_length=300, blank=True)  # the messenger address it serves (service nodes)
    # This node's own Service.MessengerEndpoint, set by an admin on the Cluster page; "" uses the cluster's.
    endpoint_override = models.CharField(max_length=ENDPOINT_MAX_LENGTH, blank=True)
    version = models.CharField(max_length=32, blank=True)
    key_fingerprint = models.CharField(max_length=32, blank=True)
    settings_version = models.BigIntegerField(default=0)  # the settings version it has applied
    settings_applied_at = models.DateTimeField(null=True, blank=True)
    # What applying that version gave (service nodes): ok, or refused with the reason (e.g. a port in use).
    settings_result = models.CharField(max_length=16, choices=ApplyResult.choices, blank=True)
    settings_problem = models.TextField(blank=True)
    # The endpoint (canonical) its messenger serves, and one it was told to serve but could not ("" when none):
    # web nodes told to use the refused one connect to the served one instead.
    serves_endpoint = models.CharField(max_length=ENDPOINT_MAX_LENGTH, blank=True)
    refused_endpoint = models.CharField(max_length=ENDPOINT_MAX_LENGTH, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    heartbeat_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "indexer_node"

    def __str__(self) -> str:
        return f"{self.kind} node {self.name}"


# The lease table holds exactly one row, with this id.
LEASE_ID = 1


class ServiceLease(models.Model):
    """The primary lease: which service node runs the task runners, and until when (the database's clock).

    `token` grows by one each time ownership changes; writes that must come from the primary are
    conditional on it (fencing), so a node that lost the lease cannot claim or finish anything.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=LEASE_ID)
    holder = models.CharField(max_length=200, blank=True)  # a Node name; empty before the first primary
    token = models.BigIntegerField(default=0)
    acquired_at = models.DateTimeField(null=True, blank=True)
    renewed_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    released = models.BooleanField(default=False)  # the holder stopped cleanly: take over at once

    class Meta:
        db_table = "indexer_servicelease"

    def __str__(self) -> str:
        return f"primary lease: {self.holder or 'nobody'} (token {self.token})"


class Failover(models.Model):
    """One change of primary, for the cluster page: when, from whom, to whom, why."""

    at = models.DateTimeField()
    from_node = models.CharField(max_length=200, blank=True)  # empty for the cluster's first primary
    to_node = models.CharField(max_length=200)
    token = models.BigIntegerField()  # the new holder's fencing token
    reason = models.TextField()

    class Meta:
        db_table = "indexer_failover"
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.from_node or '-'} -> {self.to_node} (token {self.token}): {self.reason}"
