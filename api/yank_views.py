"""Yanking and unyanking a release through the API (PEP 592): a thin interface over feeds.yanking.

Scope `feeds:upload`: whoever may publish a release may withdraw it from resolution (it stays downloadable).
"""
from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse

from api.endpoint import ApiError, api_endpoint, request_fields, text_field
from api_keys.keys import FEEDS_UPLOAD, api_key_actor
from api_keys.models import ApiKey
from feeds.models import Feed
from feeds.selectors import feed_get
from feeds.yanking import YankError, YankOutcome, release_unyank, release_yank


def _answer(feed: str, change: Callable[[Feed], YankOutcome]) -> JsonResponse:
    """Run `change(found_feed)` and answer with its outcome; 404 for no feed or no such release, 400 otherwise."""
    found = feed_get(name=feed)
    if found is None:
        raise ApiError(f"no feed called {feed!r}", status=404)
    try:
        outcome = change(found)
    except YankError as exc:
        raise ApiError(str(exc), status=404 if exc.not_found else 400) from None
    return JsonResponse({"feed": found.name, "project": outcome.project, "version": outcome.version,
                         "yanked": outcome.yanked, "reason": outcome.reason, "files": outcome.filenames})


@api_endpoint(scopes=[FEEDS_UPLOAD], methods=["POST"])
def feed_yank_view(request: HttpRequest, *, key: ApiKey, feed: str) -> HttpResponse:
    """Yank every file of one release (`project`, `version`, optional `reason`): listed, marked, skipped by pip."""
    fields = request_fields(request)
    project, version = text_field(fields, "project"), text_field(fields, "version")
    reason = text_field(fields, "reason", required=False)
    return _answer(feed, lambda found: release_yank(
        feed=found, project=project, version=version, reason=reason, actor=api_key_actor(key)))


@api_endpoint(scopes=[FEEDS_UPLOAD], methods=["POST"])
def feed_unyank_view(request: HttpRequest, *, key: ApiKey, feed: str) -> HttpResponse:
    """Clear the yank of every file of one release (`project`, `version`)."""
    fields = request_fields(request)
    project, version = text_field(fields, "project"), text_field(fields, "version")
    return _answer(feed, lambda found: release_unyank(
        feed=found, project=project, version=version, actor=api_key_actor(key)))
