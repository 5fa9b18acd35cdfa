"""The node registry: each node records who it is and keeps its heartbeat fresh; an admin may remove a stale one.

The cluster page reads it; the primary lease (cluster.lease) names one of these nodes, and `tcp://*:PORT`
resolves to that node's registered IP (cluster.primary). A heartbeat re-creates a row that was removed while
its node was away, and a service node's endpoint override lives on its row.
"""
from __future__ import annotations

import logging
import socket
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from cluster.models import ApplyResult, Node
from cluster.primary import primary_live

logger = logging.getLogger(__name__)


class NodeNotRemovable(ValueError):
    """The node may not be removed now (alive, or the primary); the message says why, for the user."""


@dataclass(frozen=True, kw_only=True)
class NodeIdentity:
    name: str
    kind: str
    ip: str
    endpoint: str
    version: str
    key_fingerprint: str


def node_register(*, identity: NodeIdentity) -> Node:
    """Create or refresh this node's row at startup (started and heartbeat set to now)."""
    now = timezone.now()
    node, _ = Node.objects.update_or_create(
        name=identity.name,
        defaults={
            "kind": identity.kind,
            "host": socket.gethostname(),
            "ip": identity.ip,
            "endpoint": identity.endpoint,
            "version": identity.version,
            "key_fingerprint": identity.key_fingerprint,
            "started_at": now,
            "heartbeat_at": now,
            # A (re)started node serves what it was told to, or it would not have started: nothing refused yet.
            "refused_endpoint": "",
            "settings_result": "",
            "settings_problem": "",
        },
    )
    return node


def node_heartbeat(*, identity: NodeIdentity, settings_version: int) -> bool:
    """Mark the node alive now with its current identity; True when its row was gone and is registered again.

    An admin may have removed the row while the node was away (stale): it comes back as it is now,
    with the settings version it runs with, instead of beating into nothing.
    """
    updated = Node.objects.filter(name=identity.name).update(
        heartbeat_at=timezone.now(), ip=identity.ip, endpoint=identity.endpoint, version=identity.version,
        key_fingerprint=identity.key_fingerprint,
    )
    if updated:
        return False
    node_register(identity=identity)
    node_settings_applied(name=identity.name, version=settings_version)
    logger.warning("%s node %s was not in the registry (removed while away): registered again",
                   identity.kind, identity.name)
    return True


@dataclass(frozen=True, kw_only=True)
class ApplyOutcome:
    """What a service node's apply of a settings version gave: where its messenger is, and what it refused."""

    serves_endpoint: str  # canonical endpoint its messenger serves
    refused_endpoint: str = ""  # one it was told to serve and could not ("" when none)
    problem: str = ""  # why, for the admin ("" when everything applied)


def node_settings_applied(*, name: str, version: int, outcome: ApplyOutcome | None = None) -> None:
    """Record that node `name` now runs with settings `version` (shown per node on the settings page).

    A service node passes its `outcome`: refused (with the reason) when part of the version could not be applied.
    """
    fields: dict[str, object] = {"settings_version": version, "settings_applied_at": timezone.now()}
    if outcome is not None:
        fields.update(
            settings_result=ApplyResult.REFUSED if outcome.problem else ApplyResult.OK,
            settings_problem=outcome.problem, serves_endpoint=outcome.serves_endpoint,
            refused_endpoint=outcome.refused_endpoint,
        )
    Node.objects.filter(name=name).update(**fields)


def node_serving_instead(*, endpoint: str, version: int) -> str | None:
    """Where web nodes told to use `endpoint` (canonical) under settings `version` must connect instead, or None.

    The live primary's served endpoint while it has not applied `version` yet (it serves there until it says it
    moved), or after it refused `endpoint`; without a live primary, the endpoint the last node to beat stayed on
    when it refused `endpoint`.
    """
    rows = Node.objects.filter(kind=Node.Kind.SERVICE).exclude(serves_endpoint="")
    primary = primary_live()
    row = (rows.filter(name=primary) if primary else rows.order_by("-heartbeat_at")).first()
    if row is None or row.serves_endpoint == endpoint:
        return None
    if row.refused_endpoint == endpoint or (primary is not None and row.settings_version < version):
        return row.serves_endpoint
    return None


@transaction.atomic
def node_remove(*, name: str, stale_after_seconds: int) -> Node:
    """Remove node `name` from the registry, only when stale (no heartbeat for `stale_after_seconds`).

    Raises Node.DoesNotExist, or NodeNotRemovable when the node is alive or holds a lease in force.
    A node that turns out to be alive simply registers again with its next heartbeat.
    """
    node = Node.objects.select_for_update().get(name=name)
    age = (timezone.now() - node.heartbeat_at).total_seconds()
    if age <= stale_after_seconds:
        raise NodeNotRemovable(
            f"{name} is alive (last heartbeat {int(age)} s ago): only a node without a heartbeat for more "
            f"than {stale_after_seconds} s can be removed. Stop it first."
        )
    if primary_live() == name:
        raise NodeNotRemovable(f"{name} holds the primary lease: it cannot be removed until a standby takes over.")
    node.delete()
    return node


def node_endpoint_override_set(*, name: str, value: str) -> str | None:
    """Store `value` (validated; "" clears it) as service node `name`'s endpoint override; the old one, or None
    when unchanged. Call inside the caller's transaction. Raises Node.DoesNotExist (no such service node)."""
    node = Node.objects.select_for_update().get(name=name, kind=Node.Kind.SERVICE)
    old = node.endpoint_override
    if old == value:
        return None
    node.endpoint_override = value
    node.save(update_fields=["endpoint_override"])
    return old


def node_endpoint_override(*, name: str) -> str:
    """The endpoint override of node `name`, "" when it has none (or is not registered)."""
    return Node.objects.filter(name=name).values_list("endpoint_override", flat=True).first() or ""

