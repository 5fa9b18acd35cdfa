"""The node registry: each node records who it is and keeps its heartbeat fresh.

The cluster page reads it; the primary lease (indexer.lease) names one of these nodes, and `tcp://*:PORT`
resolves to that node's registered IP (indexer.cluster).
"""
from __future__ import annotations

import socket
from dataclasses import dataclass

from django.utils import timezone

from indexer.models import Node


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
        },
    )
    return node


def node_heartbeat(*, name: str, **changes: object) -> None:
    """Mark node `name` alive now, updating any of its fields given in `changes`."""
    Node.objects.filter(name=name).update(heartbeat_at=timezone.now(), **changes)


def node_settings_applied(*, name: str, version: int) -> None:
    """Record that node `name` now runs with settings `version` (shown per node on the settings page)."""
    Node.objects.filter(name=name).update(settings_version=version, settings_applied_at=timezone.now())
