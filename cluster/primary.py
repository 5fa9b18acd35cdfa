"""Where the cluster's primary service node is: the address `tcp://*:PORT` resolves to.

Reads the lease holder and its registered IP (PROGET_NODE_IP) from the shared database; None when no
primary has registered an IP yet, so the caller can fall back to this machine.
"""
from __future__ import annotations

from django.db.models.functions import Now

from cluster.lease import lease_get
from cluster.models import LEASE_ID, Node, ServiceLease


def primary_name() -> str | None:
    """The name of the service node that holds (or last held) the primary lease, or None."""
    lease = lease_get()
    return lease.holder if lease is not None and lease.holder else None


def primary_live() -> str | None:
    """The lease holder while its lease is in force (not released, not expired on the database's clock), or None."""
    live = ServiceLease.objects.filter(pk=LEASE_ID, released=False, expires_at__gt=Now()).exclude(holder="")
    return live.values_list("holder", flat=True).first()


def primary_address() -> str | None:
    """The IP of the current lease holder as it registered it, or None (no holder, or it has no IP).

    A holder whose lease went stale is still returned until a standby takes over: it is the best guess,
    and a web node that cannot reach it simply retries and resolves again.
    """
    name = primary_name()
    if name is None:
        return None
    ip = Node.objects.filter(name=name, kind=Node.Kind.SERVICE).values_list("ip", flat=True).first()
    return ip or None
