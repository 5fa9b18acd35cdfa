"""The budget of connections still handshaking (keyless so far): bounded in all and per source, the heaviest first.

Pure bookkeeping (no asyncio, no sockets): the server adds each accepted connection, removes it once its
handshake completes or it is gone, and drops whatever `admit` names. Like OpenSSH's MaxStartups, a flood of
keyless connections then only ever evicts other keyless connections, never locks out a peer that has the key;
and since the source holding the most handshakes loses first, a flood from a few addresses evicts itself.
"""

from __future__ import annotations

import ipaddress
import itertools
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
    """At most `size` handshakes at once, at most `per_source` of them from one TCP source.

    Unix socket peers (source None) are one local user: they share the budget as one source, with no cap of their own.
    """

    def __init__(self, *, size: int, per_source: int) -> None:
        if size < 1 or per_source < 1:
            raise ValueError("the handshake budget needs room for at least one handshake, in all and per source")
        self.size = size
        self.per_source = per_source
        self._order = itertools.count()  # admission order: lower is older
        self._source: dict[T, str | None] = {}
        self._by_source: dict[str | None, dict[T, int]] = {}  # per source, oldest first, with admission order

    def __len__(self) -> int:
        return len(self._source)

    def admit(self, item: T, source: str | None) -> tuple[T, str] | None:
        """Count `item` in; return the handshake to drop for it, with the reason, or None when there was room.

        A TCP source at its cap loses its own oldest handshake; otherwise a full budget loses the oldest handshake
        of the source holding the most (of those, the one whose oldest is oldest).
        """
        victim: tuple[T, str] | None = None
        mine = self._by_source.get(source)
        if source is not None and mine is not None and len(mine) >= self.per_source:
            victim = (next(iter(mine)), OVER_SOURCE_CAP)
        elif len(self._source) >= self.size:
            victim = (self._heaviest_sources_oldest(), OVER_BUDGET)
        if victim is not None:
            self.leave(victim[0])
        self._source[item] = source
        self._by_source.setdefault(source, {})[item] = next(self._order)
        return victim

    def leave(self, item: T) -> None:
        """`item` is no longer handshaking (done, or gone); unknown items are ignored."""
        if item not in self._source:
            return
        source = self._source.pop(item)
        mine = self._by_source[source]
        del mine[item]
        if not mine:
            del self._by_source[source]

    def _heaviest_sources_oldest(self) -> T:
        most = max(len(items) for items in self._by_source.values())
        oldest = (next(iter(items.items())) for items in self._by_source.values() if len(items) == most)
        return min(oldest, key=lambda pair: pair[1])[0]
