"""Choosing the simple API's response format from an `Accept` header (PEP 691), with q-values.

Pure functions: no Django. Returns None when the client accepts none of the formats (the view answers 406).
"""
from __future__ import annotations

JSON_V1 = "application/vnd.pypi.simple.v1+json"
HTML_V1 = "application/vnd.pypi.simple.v1+html"
HTML = "text/html"
# The server's order of preference when the client likes several equally: plain HTML for browsers and old tools.
OFFERED = (HTML, HTML_V1, JSON_V1)
# PEP 691's "latest" names mean the newest version we speak.
ALIASES = {
    "application/vnd.pypi.simple.latest+json": JSON_V1,
    "application/vnd.pypi.simple.latest+html": HTML_V1,
}


def _ranges(accept: str) -> list[tuple[str, float]]:
    """The media ranges of an Accept header with their q-values; malformed entries are skipped."""
    ranges = []
    for item in accept.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        media = media.lower()
        if media.count("/") != 1:
            continue
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value.strip())
                except ValueError:
                    quality = -1.0
        if 0.0 <= quality <= 1.0:
            ranges.append((ALIASES.get(media, media), quality))
    return ranges


def _quality(media: str, ranges: list[tuple[str, float]]) -> tuple[float, int]:
    """The q-value the most specific matching range gives `media`, and that specificity (2 exact … 0 */*)."""
    kind = media.split("/")[0]
    best: tuple[int, float] | None = None
    for pattern, quality in ranges:
        if pattern == media:
            specificity = 2
        elif pattern == f"{kind}/*":
            specificity = 1
        elif pattern == "*/*":
            specificity = 0
        else:
            continue
        if best is None or specificity > best[0]:
            best = (specificity, quality)
    return (best[1], best[0]) if best else (0.0, -1)


def media_type_choose(accept: str | None) -> str | None:
    """The format to answer an `Accept` header with, or None if it accepts none we offer."""
    if not accept or not accept.strip():
        return HTML
    ranges = _ranges(accept)
    scored = []
    for preference, media in enumerate(OFFERED):
        quality, specificity = _quality(media, ranges)
        if quality > 0:
            scored.append(((quality, specificity, -preference), media))
    return max(scored)[1] if scored else None
