"""Refusing guessable messenger keys: one byte repeated, a few bytes in a pattern, or printable text.

Applies where a key is chosen (the Service.MessengerKey setting), not where a stored key is used: a key
from generate_key() (os.urandom) passes except with a chance below 1e-13, as each limit's comment says.
"""
from __future__ import annotations

from messenger.crypto import parse_key
from messenger.errors import InvalidKey

# 32 random bytes hold ~30 distinct values; 15 or fewer happens by chance with p ≈ 3e-17, but is what
# a repeated word or a short pattern ("password" * 4: 7, bytes(range(8)) * 4: 8) gives.
MIN_DISTINCT_BYTES = 16
# Bytes a person types: 32 random bytes all land here with p = (95/256)**32 ≈ 2e-14.
_PRINTABLE_ASCII = frozenset(range(0x20, 0x7F))
_GENERATE_HINT = "generate one instead: Generate on the Advanced Settings page, or `openssl rand -base64 32`"


def weak_key_reason(key: bytes) -> str | None:
    """Why the raw `key` is guessable, or None when it looks random."""
    distinct = len(set(key))
    if distinct == 1:
        return "all its bytes are equal"
    if distinct < MIN_DISTINCT_BYTES:
        return f"only {distinct} distinct byte values"
    if _PRINTABLE_ASCII.issuperset(key):
        return "printable text only, not random bytes"
    return None


def parse_strong_key(text: str) -> bytes:
    """parse_key(), then refuse a weak key with InvalidKey naming why (never the key) and how to generate one."""
    key = parse_key(text)
    reason = weak_key_reason(key)
    if reason is not None:
        raise InvalidKey(f"Service.MessengerKey is too weak ({reason}): {_GENERATE_HINT}")
    return key
