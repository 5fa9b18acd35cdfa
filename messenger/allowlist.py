"""Parsing `Service.MessengerAllowedIps`: the peers the messenger accepts over TCP.

Empty means "any address"; otherwise a list of IPs or CIDR networks, separated by commas or spaces.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Sequence

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Long enough for any sane allowlist, short enough that a pasted file is refused.
MAX_ENTRIES = 256


def parse_allowed_ips(text: str, *, setting: str = "Service.MessengerAllowedIps") -> tuple[IPNetwork, ...]:
    """Parse an allowlist; raise ValueError naming `setting`, the first bad entry and the accepted forms."""
    entries = [e for e in text.replace(",", " ").split() if e]
    if len(entries) > MAX_ENTRIES:
        raise ValueError(f"{setting} has {len(entries)} entries; at most {MAX_ENTRIES} are allowed")
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(
                f"{setting} must be a list of IP addresses or CIDR networks "
                f"(e.g. 10.0.0.5, 10.0.0.0/24, ::1) separated by commas; {entry[:60]!r} is neither"
            ) from None
    return tuple(networks)


def ip_allowed(address: str, networks: Sequence[IPNetwork]) -> bool:
    """True when `networks` is empty or contains `address` (IPv4-mapped IPv6 counts as IPv4)."""
    if not networks:
        return True
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return any(ip in net for net in networks)
