"""The PyPI simple repository API of a feed: PEP 503 HTML and PEP 691/700 JSON, and the file downloads.

Only files that indexed without error are listed or served; a download is served from the feed's own
folder only, and only while the file is the one indexed (same size and mtime), so its ETag stays true.
A wheel's core metadata (PEP 658/714) is announced with its hash and served as `<file>.metadata` under the
same rule; yanked files (PEP 592) stay listed, marked.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable
from datetime import UTC
from html import escape
from typing import Any
from urllib.parse import quote

from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import get_conditional_response, patch_vary_headers
from django.utils.http import RFC3986_SUBDELIMS, http_date
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.http import require_safe

from feeds import negotiation
from feeds.access import feed_readable
from feeds.models import Feed, PackageFile
from feeds.naming import project_normalize
from feeds.selectors import core_metadata_get, feed_projects, package_file_get, project_file_values
from feeds.storage import FileRefused, file_locate, file_open

logger = logging.getLogger(__name__)

# The simple API version we speak (PEP 700 adds sizes, upload times and the versions list).
API_VERSION = "1.1"


def _media(request: HttpRequest) -> str | None:
    """The media type the client's Accept header prefers among ours (None when it accepts none)."""
    return negotiation.media_type_choose(request.headers.get("Accept"))


def _negotiated(
    request: HttpRequest, media: str | None, html_template: str, context: Callable[[], dict],
    json_body: Callable[[], dict],
) -> HttpResponse:
    """Answer in `media` (406 when None).

    `context` and `json_body` build the two forms; only the one asked for is built (a 1,000-file page pays
    for one format, not two).
    """
    if media is None:
        response = HttpResponse(
            f"acceptable formats: {', '.join(negotiation.OFFERED)}\n", status=406, content_type="text/plain",
        )
    elif media == negotiation.JSON_V1:
        response = JsonResponse(json_body(), content_type=media)
    else:
        response = render(request, html_template, {**context(), "api_version": API_VERSION},
                          content_type=f"{media}; charset=utf-8")
    patch_vary_headers(response, ["Accept"])
    return response


def _meta() -> dict:
    return {"api-version": API_VERSION}


@require_safe
@feed_readable
def simple_index(request: HttpRequest, *, feed: Feed) -> HttpResponse:
    """The feed's project list."""
    projects = feed_projects(feed=feed)
    # Normalised project names need no quoting: the prefix is reversed once, not once per project.
    prefix = _url_prefix("feeds:simple-project", feed=feed.name, project=PLACEHOLDER)
    return _negotiated(
        request, _media(request), "feeds/simple_index.html",
        lambda: {"feed": feed, "links": _project_links_html(prefix, projects)},
        lambda: {"meta": _meta(), "projects": [{"name": name} for name in projects]},
    )


# Stands for the last URL component when a URL pattern is reversed once for a whole page.
PLACEHOLDER = "placeholder"


def _url_prefix(view: str, **kwargs: str) -> str:
    """The URL of `view` up to its last component (which is PLACEHOLDER in kwargs)."""
    url = reverse(view, kwargs=kwargs)
    return url[: url.rindex(PLACEHOLDER)]


def _file_url(prefix: str, filename: str) -> str:
    """A file's download URL from the page's prefix, quoted as reverse() would."""
    return prefix + quote(filename, safe=RFC3986_SUBDELIMS + "/~:@")


def _project_links_html(prefix: str, projects: list[str]) -> SafeString:
    """The project list's links, one per line (escaped as in _file_links_html)."""
    return mark_safe("".join(f'<a href="{escape(prefix + name)}/">{escape(name)}</a><br>\n' for name in projects))


def _file_links_html(prefix: str, files: list[Any]) -> SafeString:
    """The project page's links, one per line, from selector rows.

    PEP 503 sha256 fragment and data-requires-python; PEP 658/714 core metadata hash under both its names (pip
    before 23.2 reads only data-dist-info-metadata); PEP 592 data-yanked with the reason.

    Built in Python, not in a template loop: every value is escaped with html.escape, which is what Django's
    escape() (and so the template's autoescape) calls, so the bytes are those the template produced.
    """
    return mark_safe("".join(  # every interpolated value is escaped right here
        f'<a href="{escape(_file_url(prefix, file.filename))}#sha256={escape(file.sha256)}"'
        f"{_requires_python_attribute(file.requires_python)}{_core_metadata_attributes(file.core_metadata_sha256)}"
        f"{_yanked_attribute(file)}>{escape(file.filename)}</a><br>\n"
        for file in files
    ))


def _requires_python_attribute(requires_python: str) -> str:
    return f' data-requires-python="{escape(requires_python)}"' if requires_python else ""


def _core_metadata_attributes(digest: str) -> str:
    """PEP 714's name and PEP 658's, for a file whose metadata we store (none for the others: nothing to serve)."""
    return f' data-core-metadata="sha256={digest}" data-dist-info-metadata="sha256={digest}"' if digest else ""


def _yanked_attribute(file: Any) -> str:
    return f' data-yanked="{escape(file.yanked_reason)}"' if file.yanked else ""


def _file_json(prefix: str, file: Any) -> dict:
    entry = {
        "filename": file.filename,
        "url": _file_url(prefix, file.filename),
        "hashes": {"sha256": file.sha256},
        "size": file.size,
        "upload-time": file.uploaded_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    }
    if file.requires_python:
        entry["requires-python"] = file.requires_python
    if file.core_metadata_sha256:  # PEP 714's key only: pip 22.3-23.1 fail on PEP 658's "dist-info-metadata" in JSON
        entry["core-metadata"] = {"sha256": file.core_metadata_sha256}
    if file.yanked:  # PEP 691: true, or the reason when there is one
        entry["yanked"] = file.yanked_reason or True
    return entry


# The columns each form of the project page reads (besides version and filename).
HTML_FIELDS = ("sha256", "requires_python", "core_metadata_sha256", "yanked", "yanked_reason")
JSON_FIELDS = (*HTML_FIELDS, "size", "uploaded_at")


@require_safe
@feed_readable
def simple_project(request: HttpRequest, *, feed: Feed, project: str) -> HttpResponse:
    """One project's files; a non-normalised name redirects (301) to the normalised URL."""
    normalized = project_normalize(project)
    if normalized != project:
        return redirect("feeds:simple-project", feed=feed.name, project=normalized, permanent=True)
    media = _media(request)
    fields = JSON_FIELDS if media == negotiation.JSON_V1 else HTML_FIELDS
    files = project_file_values(feed=feed, project=project, fields=fields)
    if not files:
        raise Http404(f"no project {project!r} in feed {feed.name!r}")
    prefix = _url_prefix("feeds:download", feed=feed.name, filename=PLACEHOLDER)
    return _negotiated(
        request, media, "feeds/simple_project.html",
        lambda: {"feed": feed, "project": project, "links": _file_links_html(prefix, files)},
        lambda: {"meta": _meta(), "name": project,
                 "versions": list(dict.fromkeys(file.version for file in files)),  # files come sorted by version
                 "files": [_file_json(prefix, file) for file in files]},
    )


def _conditional(request: HttpRequest, *, digest: str, mtime_ns: int) -> tuple[dict[str, str], HttpResponse | None]:
    """The validator headers (ETag from `digest`, Last-Modified), and the answer when the request's conditions
    end it (304 Not Modified carrying the validators, or 412 Precondition Failed), else None."""
    etag = f'"{digest}"'
    modified = mtime_ns // 1_000_000_000
    validators = {"ETag": etag, "Last-Modified": http_date(modified)}
    conditional = get_conditional_response(
        request, etag=etag, last_modified=modified, response=HttpResponse(headers=validators),
    )
    return validators, (None if conditional.status_code == 200 else conditional)


def _unchanged_or_404(*, feed: Feed, file: PackageFile, status: os.stat_result) -> None:
    """Raise 404 unless the stored file is the one indexed: else its hashes (ETag, metadata) would be wrong."""
    if (status.st_size, status.st_mtime_ns) != (file.size, file.mtime_ns):
        raise Http404(f"file {file.filename!r} changed since it was indexed")


def _unavailable(feed: Feed, filename: str, exc: Exception) -> Http404:
    logger.warning("feed %s: cannot serve %s: %s", feed.name, filename, exc)
    return Http404(f"file {filename!r} is not available")


@require_safe
@feed_readable
def download(request: HttpRequest, *, feed: Feed, filename: str) -> HttpResponse:
    """A package file, streamed, with its sha256 as ETag (304 when the client has it)."""
    file = package_file_get(feed=feed, filename=filename)
    if file is None:
        raise Http404(f"no file {filename!r} in feed {feed.name!r}")
    validators, conditional = _conditional(request, digest=file.sha256, mtime_ns=file.mtime_ns)
    if conditional is not None:
        return conditional
    try:
        path, _ = file_locate(root=feed.storage.resolve(), name=file.filename)
        stream, status = file_open(path=path)
    except (FileRefused, OSError) as exc:
        raise _unavailable(feed, filename, exc) from None
    try:
        _unchanged_or_404(feed=feed, file=file, status=status)
    except Http404:
        stream.close()
        raise
    return FileResponse(
        stream, content_type="application/octet-stream", as_attachment=True, filename=filename, headers=validators,
    )


@require_safe
@feed_readable
def core_metadata(request: HttpRequest, *, feed: Feed, filename: str) -> HttpResponse:
    """PEP 658: a wheel's METADATA as stored at indexing (404 for sdists and rows not yet backfilled)."""
    file = core_metadata_get(feed=feed, filename=filename)
    if file is None:
        raise Http404(f"no core metadata for {filename!r} in feed {feed.name!r}")
    validators, conditional = _conditional(request, digest=file.core_metadata_sha256, mtime_ns=file.mtime_ns)
    if conditional is not None:
        return conditional
    try:
        _, status = file_locate(root=feed.storage.resolve(), name=file.filename)
    except (FileRefused, OSError) as exc:
        raise _unavailable(feed, filename, exc) from None
    _unchanged_or_404(feed=feed, file=file, status=status)
    # Core metadata is UTF-8 (indexing refuses anything else); the bytes are exactly the wheel's METADATA.
    return HttpResponse(bytes(file.core_metadata), content_type=CORE_METADATA_TYPE, headers=validators)


CORE_METADATA_TYPE = "text/plain; charset=utf-8"
