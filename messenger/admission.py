"""The budget of connections still handshaking (keyless so far): bounded in all, per source, oldest dropped first.

Pure bookkeeping (no asyncio, no sockets): the server adds each accepted connection, removes it once its
handshake completes or it is gone, and drops whatever `admit` names. Like OpenSSH's MaxStartups, a flood of
keyless connections then only ever evicts other keyless connections, never locks out a peer that has the key.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Hashable
from typing import Generic, TypeVar

from messenger.limits import IPV6_SOURCE_PREFIX

T = TypeVar("T", bound=Hashable)

# Why an evicted handshake was dropped (the reject counters' keys).
OVER_BUDGET = "handshake-evicted"
OVER_SOURCE_CAP = "handshake-source-cap"


def source_of(peer_ip: str | None) -> str | None:
    """The source a TCP peer is counted under: its IPv4 address, or its IPv6 /64; None for a Unix socket peer."""
    if peer_ip is None:
        return None
    try:
        ip = ipaddress.ip_address(peer_ip.split("%", 1)[0])
    except ValueError:
        return peer_ip
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is None:
            return str(ipaddress.IPv6Network((ip, IPV6_SOURCE_PREFIX), strict=False))
        ip = ip.ipv4_mapped
    return str(ip)


class HandshakeBudget(Generic[T]):
    """At most `size` handshakes at once, at most `per_source` of them from one TCP source."""

    def __init__(self, *, size: int, per_source: int) -> None:
        self.size = size
        self.per_source = per_source
        self._all: dict[T, str | None] = {}  # insertion order: oldest first
        self._by_source: dict[str, dict[T, None]] = {}  # TCP sources only: Unix peers are one local user

    def __len__(self) -> int:
        return len(self._all)

    def admit(self, item: T, source: str | None) -> tuple[T, str] | None:
        """Count `item` in; return the handshake to drop for it, with the reason, or None when there was room.

        A source at its cap loses its own oldest handshake; otherwise a full budget loses the oldest of all.
        """
        victim: tuple[T, str] | None = None
        mine = self._by_source.get(source) if source is not None else None
        if mine is not None and len(mine) >= self.per_source:
            victim = (next(iter(mine)), OVER_SOURCE_CAP)
        elif len(self._all) >= self.size:
            victim = (next(iter(self._all)), OVER_BUDGET)
        if victim is not None:
            self.leave(victim[0])
        self._all[item] = source
        if source is not None:
            self._by_source.setdefault(source, {})[item] = None
        return victim

    def leave(self, item: T) -> None:
        """`item` is no longer handshaking (done, or gone); unknown items are ignored."""
        source = self._all.pop(item, None)
        if source is None:
            return
        mine = self._by_source[source]
        del mine[item]
        if not mine:
            del self._by_source[source]
