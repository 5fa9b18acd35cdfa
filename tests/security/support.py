"""Helpers of the security tests: every HTTP route and WebSocket route of the web node, read from the resolvers.

Routes are collected, never listed by hand, so a page added later is covered by every test here; a route
with a URL parameter this module has no sample value for fails loudly (add one to SAMPLE_KWARGS).
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.urls.resolvers import RegexPattern, RoutePattern

ROOT = Path(__file__).resolve().parents[2]

# A value for each URL parameter name used by a route. FEED is created by the `feed` fixture; the others
# name things that do not exist (a project, a file, a trigger, a node), which every view must handle without a 500.
FEED = "main"
SAMPLE_KWARGS: dict[str, object] = {
    "feed": FEED,
    "project": "pkg-a",
    "filename": "pkg_a-1.0-py3-none-any.whl",
    "name": "Feed Indexing",
    "action": "run",
    "trigger_id": 1,
    "run_id": 999999,
    "path": "no-such-endpoint",
    "node": "no-such-node",
    # The users admin (/admin/): the auth app's pages, a user or group and a content type that do not exist.
    "app_label": "auth",
    "object_id": 999999,
    "id": 999999,
    "content_type_id": 999999,
}


@dataclass(frozen=True)
class Route:
    name: str
    path: str  # a concrete path for this route, with SAMPLE_KWARGS filled in
    pattern: str  # the route as declared, for messages
    view: Callable[..., Any]

    @property
    def csrf_exempt(self) -> bool:
        return bool(getattr(self.view, "csrf_exempt", False))

    def __str__(self) -> str:
        return f"{self.name} ({self.path})"


def _parameter_names(pattern: URLPattern) -> list[str]:
    if isinstance(pattern.pattern, RoutePattern):
        return list(pattern.pattern.converters)
    if isinstance(pattern.pattern, RegexPattern):
        return list(pattern.pattern.regex.groupindex)
    raise AssertionError(f"unknown pattern type {type(pattern.pattern).__name__} for {pattern}")


def _walk(patterns: list, namespace: str = "", prefix: str = "") -> Iterator[tuple[str, str, URLPattern]]:
    for entry in patterns:
        if isinstance(entry, URLResolver):
            inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            yield from _walk(entry.url_patterns, inner, prefix + str(entry.pattern))
        else:
            yield namespace, prefix + str(entry.pattern), entry


def http_routes() -> list[Route]:
    """Every route of ROOT_URLCONF, with a concrete path (routes must be named: reverse() builds the path)."""
    routes = []
    for namespace, declared, pattern in _walk(get_resolver().url_patterns):
        assert pattern.name, f"route {declared!r} has no name: name it so the security tests can reach it"
        missing = [name for name in _parameter_names(pattern) if name not in SAMPLE_KWARGS]
        assert not missing, f"route {pattern.name!r} ({declared!r}) needs a sample value for {missing} in SAMPLE_KWARGS"
        kwargs = {name: SAMPLE_KWARGS[name] for name in _parameter_names(pattern)}
        routes.append(Route(name=namespace + pattern.name, path=reverse(namespace + pattern.name, kwargs=kwargs),
                            pattern=declared, view=pattern.callback))
    assert len({route.name for route in routes}) == len(routes), "two routes share a name"
    return routes


def websocket_paths() -> list[str]:
    """The path of every WebSocket route (proget_web.routing), as a browser would open it."""
    from proget_web.routing import websocket_urlpatterns

    paths = []
    for pattern in websocket_urlpatterns:
        assert isinstance(pattern.pattern, RoutePattern) and not pattern.pattern.converters, (
            f"WebSocket route {pattern.pattern} has parameters: teach tests/security/support.py to fill them")
        paths.append("/" + str(pattern.pattern))
    return paths


def template_files() -> list[Path]:
    """Every HTML template of the project: templates/ and each app's templates/ folder (not .venv)."""
    folders = [ROOT / "templates", *(p for p in ROOT.glob("*/templates") if p.is_dir()),
               *(p for p in ROOT.glob("*/*/templates") if p.is_dir())]
    files = sorted({f for folder in folders if ".venv" not in folder.parts for f in folder.rglob("*.html")})
    assert files, "no templates found"
    return files


# What the CSP forbids in markup: script elements with a body (or without src), event-handler attributes,
# style attributes and elements, javascript: URLs. Tags are matched without crossing a '<' or '>'.
_TAG = re.compile(r"<([a-zA-Z][a-zA-Z0-9-]*)\b([^<>]*)>", re.S)
_SCRIPT = re.compile(r"<script\b([^>]*)>(.*?)</script\s*>", re.S | re.I)
_HANDLER = re.compile(r"(?:^|\s)on[a-z]+\s*=", re.I)
_STYLE_ATTR = re.compile(r"(?:^|\s)style\s*=", re.I)


def csp_violations(markup: str) -> list[str]:
    """Inline code or style in `markup` that the site's CSP would block; each with its line number."""
    found = []

    def line(at: int) -> int:
        return markup.count("\n", 0, at) + 1

    for match in _SCRIPT.finditer(markup):
        attributes, body = match.group(1), match.group(2)
        if body.strip():
            found.append(f"line {line(match.start())}: inline <script> body")
        if not re.search(r"(?:^|\s)src\s*=", attributes):
            found.append(f"line {line(match.start())}: <script> without src")
    for match in _TAG.finditer(markup):
        tag, attributes = match.group(1).lower(), match.group(2)
        if tag == "style":
            found.append(f"line {line(match.start())}: inline <style> element")
        if _HANDLER.search(attributes):
            found.append(f"line {line(match.start())}: event-handler attribute in <{tag}>")
        if _STYLE_ATTR.search(attributes):
            found.append(f"line {line(match.start())}: style attribute in <{tag}>")
        if "javascript:" in attributes.lower():
            found.append(f"line {line(match.start())}: javascript: URL in <{tag}>")
    return found
