"""`{% timestamp value %}`: every page shows a time the same way, "2026-12-04 13:34:08 UTC" (status.js and feeds.js
render live times in this format too), in a <time> element that carries the exact ISO 8601 instant."""
from __future__ import annotations

from datetime import UTC, datetime

from django import template
from django.utils.dateformat import format as date_format
from django.utils.html import format_html
from django.utils.safestring import SafeString

register = template.Library()

DISPLAY = "Y-m-d H:i:s"  # always in UTC (settings.TIME_ZONE), named after it


@register.simple_tag
def timestamp(value: datetime | None, empty: str = "—", css_class: str = "") -> SafeString | str:
    """The <time> element for `value` (with class `css_class` if given), or `empty` when there is none."""
    if value is None:
        return empty
    utc = value.astimezone(UTC) if value.tzinfo else value
    if css_class:
        return format_html('<time class="{}" datetime="{}">{} UTC</time>', css_class, utc.isoformat(),
                           date_format(utc, DISPLAY))
    return format_html('<time datetime="{}">{} UTC</time>', utc.isoformat(), date_format(utc, DISPLAY))
