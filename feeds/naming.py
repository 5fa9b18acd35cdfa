"""Names of feeds and projects: which feed names are allowed, and PEP 503 project name normalisation.

A valid feed name is safe as one path component and one URL segment: no separators, no `..`, no leading dot.
"""
from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from packaging.utils import canonicalize_name

FEED_NAME_MAX_LENGTH = 64
FEED_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def feed_name_validate(name: str) -> None:
    """Raise ValidationError unless `name` is a valid feed name (it becomes a folder name and a URL segment)."""
    if not FEED_NAME_RE.fullmatch(name) or ".." in name:
        raise ValidationError(
            f"invalid feed name {name!r}: use 1-{FEED_NAME_MAX_LENGTH} letters, digits, '.', '_' or '-', "
            "starting with a letter or digit, without '..'",
            code="invalid_feed_name",
        )


def project_normalize(name: str) -> str:
    """The PEP 503 normalised form of a project name (runs of -_. become one '-', lower case)."""
    return canonicalize_name(name)
