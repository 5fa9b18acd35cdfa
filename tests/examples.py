"""Hypothesis example counts: in full under the default profile (`make test`), a quarter under the "check" profile
that `make check`, the fast developer loop, loads.

The profile scales the tests that keep Hypothesis's default count; `examples()` scales those that set their own.
"""
from __future__ import annotations

from hypothesis import settings

# Hypothesis's own max_examples, which the default profile keeps.
_DEFAULT_MAX_EXAMPLES = 100

settings.register_profile("check", max_examples=_DEFAULT_MAX_EXAMPLES // 4)


def examples(full: int) -> int:
    """A test's own count, `full`, scaled like the loaded profile's max_examples (at least 1)."""
    return max(1, full * settings.default.max_examples // _DEFAULT_MAX_EXAMPLES)
