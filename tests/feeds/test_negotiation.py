"""Choosing the simple API format from Accept headers (PEP 691), q-values included."""
from __future__ import annotations

import pytest

from feeds.negotiation import HTML, HTML_V1, JSON_V1, media_type_choose

PIP = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"


@pytest.mark.parametrize(("accept", "chosen"), [
    (None, HTML),
    ("", HTML),
    ("*/*", HTML),
    (PIP, JSON_V1),
    ("text/html, application/vnd.pypi.simple.v1+json;q=0.5", HTML),
    ("application/vnd.pypi.simple.v1+json;q=0.2, text/html;q=0.1", JSON_V1),
    ("application/vnd.pypi.simple.latest+json", JSON_V1),
    ("application/vnd.pypi.simple.latest+html", HTML_V1),
    ("application/*", HTML_V1),  # both application types tie; the server prefers HTML
    ("application/*;q=0.5, application/vnd.pypi.simple.v1+html;q=0", JSON_V1),  # the exact range wins
    ("text/html;q=0, */*;q=0.1", HTML_V1),
    ("TEXT/HTML", HTML),
    ("text/html;q=abc, application/vnd.pypi.simple.v1+json", JSON_V1),  # a malformed q drops its range
    ("text/html;q=2, application/vnd.pypi.simple.v1+json", JSON_V1),
    ("application/json", None),
    ("image/png, text/plain", None),
    ("text/html;q=0", None),
    ("garbage", None),
])
def test_media_type_choose(accept: str | None, chosen: str | None) -> None:
    assert media_type_choose(accept) == chosen
