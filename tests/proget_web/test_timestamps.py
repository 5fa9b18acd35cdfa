"""Every page shows a time one way: "2026-12-04 13:34:08 UTC" in a <time> that carries the exact instant."""
from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from django.template import Context, Template

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


def _render(value: object) -> str:
    return Template("{% load timestamps %}{% timestamp value %}").render(Context({"value": value}))


def test_a_time_is_shown_in_utc_with_seconds_and_its_zone() -> None:
    at = datetime(2026, 12, 4, 14, 34, 8, 123456, tzinfo=timezone(timedelta(hours=1)))
    assert _render(at) == '<time datetime="2026-12-04T13:34:08.123456+00:00">2026-12-04 13:34:08 UTC</time>'


def test_no_time_is_a_dash() -> None:
    assert _render(None) == "—"


def test_a_class_for_the_log_lines() -> None:
    rendered = Template('{% load timestamps %}{% timestamp value css_class="log-time" %}').render(
        Context({"value": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)}))
    assert rendered == '<time class="log-time" datetime="2026-01-02T03:04:05+00:00">2026-01-02 03:04:05 UTC</time>'


def test_no_page_formats_a_time_of_its_own() -> None:
    """A template that formats a date itself (the feed page once showed minutes only) drifts from the others."""
    own = {path.relative_to(TEMPLATES).as_posix(): re.findall(r'\|date:"[^"]*"', path.read_text())
           for path in TEMPLATES.rglob("*.html")}
    assert {name: found for name, found in own.items() if found} == {}
