"""The feed pages: list and manage feeds, one feed's packages, upload and Reindex (PRG), live status as JSON.

Views parse the request and call the feeds/indexer core. Viewing needs a login; uploading what
feeds.upload.upload_permitted allows (as for twine); Reindex needs administration.reindex_feed; creating,
editing and deleting feeds need administration.change_settings (the Advanced Settings permission: whoever
may change the server's settings may change its feeds).
"""
from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.files.uploadedfile import TemporaryUploadedFile, UploadedFile
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from feeds.limits import MAX_UPLOAD_BYTES
from feeds.models import Feed
from feeds.selectors import feed_get
from feeds.services import FeedError, feed_create, feed_delete, feed_update
from feeds.upload import UploadError, package_upload, upload_permitted
from feeds.views_upload import CONTENT_FIELD, upload_reindex_request
from indexer.models import Trigger
from indexer.trigger_requests import TriggerRequest, trigger_request
from indexer.triggers import TriggerError, trigger_get
from proget_web.administration.permissions import permission_required_or_403
from proget_web.feedpages import selectors
from proget_web.feedpages.forms import FeedCreateForm, FeedSettingsForm
from proget_web.feedpages.progress import feed_indexing_progress

logger = logging.getLogger(__name__)

REINDEX_PERMISSION = "administration.reindex_feed"
MANAGE_PERMISSION = "administration.change_settings"


def _missing(request: HttpRequest, name: str) -> HttpResponse:
    return render(request, "feeds_ui/feed_missing.html", {"name": name}, status=404)


def _index_page(request: HttpRequest, form: FeedCreateForm | None, *, status: int = 200) -> HttpResponse:
    can_manage = request.user.has_perm(MANAGE_PERMISSION)
    return render(request, "feeds_ui/index.html", {
        "feeds": selectors.feeds_overview(),
        "can_manage": can_manage,
        "form": (form or FeedCreateForm()) if can_manage else None,
    }, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def feeds_index(request: HttpRequest) -> HttpResponse:
    """Every feed with its counts and last indexing; POST (admins) creates a feed."""
    if request.method == "GET":
        return _index_page(request, None)
    if not request.user.has_perm(MANAGE_PERMISSION):
        raise PermissionDenied(MANAGE_PERMISSION)
    form = FeedCreateForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            feed = feed_create(name=data["name"], description=data["description"], drop_path=data["drop_path"],
                               keep_latest=data["keep_latest"], dry_run=data["dry_run"])
        except FeedError as exc:
            form.add_error(None, str(exc))  # e.g. the name is taken (ignoring case), the packages root is bad
        else:
            messages.success(request, f"Feed {feed.name} created; its files go in {feed.storage_path}.")
            return redirect("feed-detail", feed=feed.name)
    return _index_page(request, form, status=400)


@login_required
@require_GET
def feed_detail(request: HttpRequest, feed: str) -> HttpResponse:
    """One feed: a page of its files (`?q=` searches project names, `?page=`), files that failed to index, how to
    use it, its reindex triggers (for users who may reindex)."""
    found = feed_get(name=feed)
    if found is None:
        return _missing(request, feed)
    triggers = selectors.feed_triggers_recent(feed=found.name)
    return render(request, "feeds_ui/detail.html", {
        "feed": found,
        "listing": selectors.feed_listing(feed=found, query=request.GET.get("q", ""), page=request.GET.get("page")),
        "triggers": triggers,
        "active": selectors.feed_reindex_active(triggers=triggers),
        "index_url": request.build_absolute_uri(reverse("feeds:simple-index", kwargs={"feed": found.name})),
        "can_reindex": request.user.has_perm(REINDEX_PERMISSION),
        "can_manage": request.user.has_perm(MANAGE_PERMISSION),
        "can_upload": upload_permitted(user=request.user, feed=found),
        "upload_field": CONTENT_FIELD,
    })


@contextmanager
def _on_disk(upload: UploadedFile) -> Iterator[Path]:
    """The uploaded file as a path for the core: Django keeps a small upload in memory, a large one in a temp file."""
    if isinstance(upload, TemporaryUploadedFile):
        yield Path(upload.temporary_file_path())
        return
    with tempfile.NamedTemporaryFile(prefix="feed-upload-") as spool:
        for chunk in upload.chunks():
            spool.write(chunk)
        spool.flush()
        yield Path(spool.name)


@require_POST
@login_required
def feed_upload(request: HttpRequest, feed: str) -> HttpResponse:
    """The feed page's upload form: store and index one package file through the twine upload's core, then go
    back to the feed page saying what happened. Users `upload_permitted` refuses get a 403.

    The body is bounded before it is read: the web server refuses a Content-Length over
    MAX_UPLOAD_REQUEST_BYTES from the headers (feeds/limits.py); the file itself is held to MAX_UPLOAD_BYTES here.
    """
    found = feed_get(name=feed)
    if found is None:
        return _missing(request, feed)
    if not upload_permitted(user=request.user, feed=found):
        raise PermissionDenied("feeds.upload_package")
    upload = request.FILES.get(CONTENT_FIELD)
    if upload is None:
        messages.error(request, "Choose a package file to upload.")
        return redirect("feed-detail", feed=found.name)
    try:
        if upload.size > MAX_UPLOAD_BYTES:
            raise UploadError(f"the file is {upload.size} bytes, over the limit of {MAX_UPLOAD_BYTES} bytes")
        with _on_disk(upload) as path:
            row = package_upload(feed=found, filename=upload.name, path=path, fields=None,
                                 uploader=request.user.get_username())
    except UploadError as exc:
        messages.error(request, f"{upload.name} not uploaded: {exc}")
    else:
        upload_reindex_request(feed=found, filename=row.filename, uploader=request.user.get_username())
        messages.success(request, f"{row.filename} uploaded to feed {found.name}.")
    finally:
        upload.close()
    return redirect("feed-detail", feed=found.name)


@require_POST
@permission_required_or_403(REINDEX_PERMISSION)
def feed_reindex(request: HttpRequest, feed: str) -> HttpResponse:
    """Write a durable reindex trigger, nudge the service, and go back to the feed page with what happened."""
    found = feed_get(name=feed)
    if found is None:
        messages.error(request, f"Feed {feed} no longer exists (it was deleted), so there is nothing to reindex.")
        return redirect("feeds-index")
    try:
        # wait=False: the nudge goes over this process's open messenger connection and the page answers at once
        outcome = trigger_request(kind=Trigger.Kind.FEED_REINDEX, target=found.name,
                                  requested_by=request.user.get_username(), wait=False)
    except TriggerError as exc:
        messages.error(request, f"Reindex of {found.name} not requested: {exc}")
    else:
        if outcome.nudged:
            messages.success(request, reindex_banner(feed=found.name, request=outcome))
        else:
            # Tagged with the trigger, so feeds.js can take the banner down once the service has run it.
            messages.warning(request, reindex_banner(feed=found.name, request=outcome),
                             extra_tags=f"queued trigger-{outcome.trigger.id}")
    return redirect("feed-detail", feed=found.name)


# What a reindex the service was told about is doing, in the user's words (no trigger ids, runner names or paths).
_REINDEX_WORDS = {
    Trigger.State.RUNNING: "started.",
    Trigger.State.DONE: "done.",
    Trigger.State.PENDING: "requested; it starts as soon as the indexer is free.",
}


def reindex_banner(*, feed: str, request: TriggerRequest) -> str:
    """One line for the page: "Reindexing demo: started." The technical detail is on the feed's trigger table."""
    if not request.nudged:
        return (f"Reindexing {feed}: queued. The service is not reachable right now; "
                "the reindex starts as soon as it is back.")
    trigger = trigger_get(trigger_id=request.trigger.id) or request.trigger
    if trigger.state == Trigger.State.FAILED:
        return f"Reindexing {feed}: failed ({trigger.result or 'no reason given'})."
    return f"Reindexing {feed}: {_REINDEX_WORDS.get(trigger.state, trigger.state)}"


@login_required
@require_GET
def feed_status(request: HttpRequest, feed: str) -> JsonResponse:
    """The feed's reindex state for feeds.js: its latest triggers and, while one runs, Feed Indexing's progress.

    The service is asked only while a trigger for this feed runs, with a 1 s limit; unreachable, the
    answer carries the trigger state from the database and `service.reachable: false` with the reason.
    """
    found = feed_get(name=feed)
    if found is None:
        return JsonResponse({"feed": feed, "error": f"no feed called {feed!r}"}, status=404)
    triggers = selectors.feed_triggers_recent(feed=found.name)
    running = any(trigger.state == Trigger.State.RUNNING for trigger in triggers)
    progress = None
    service = None
    if running:
        answer = feed_indexing_progress()
        service = {"reachable": answer.reachable, "reason": answer.reason}
        # A running trigger means Feed Indexing was started for it (a busy runner leaves triggers pending).
        if answer.running:
            progress = {"percent": answer.percent, "message": answer.message}
    response = JsonResponse({
        "feed": found.name,
        "active": selectors.feed_reindex_active(triggers=triggers),
        "triggers": [selectors.trigger_json(trigger) for trigger in triggers],
        "progress": progress,
        "service": service,
        "lastIndexedAt": found.last_indexed_at.isoformat() if found.last_indexed_at else None,
        "lastIndexResult": found.last_index_result,
    })
    response["Cache-Control"] = "no-store"
    return response


def _feed_form_initial(feed: Feed) -> dict:
    return {"description": feed.description, "drop_path": feed.drop_path,
            "keep_latest": feed.retention_keep_latest, "dry_run": feed.retention_dry_run}


@permission_required_or_403(MANAGE_PERMISSION)
@require_http_methods(["GET", "POST"])
def feed_edit(request: HttpRequest, feed: str) -> HttpResponse:
    """Change a feed's description, drop path and retention rule (not its name or folder)."""
    found = feed_get(name=feed)
    if found is None:
        return _missing(request, feed)
    form = FeedSettingsForm(request.POST if request.method == "POST" else None, initial=_feed_form_initial(found))
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            feed_update(name=found.name, description=data["description"], drop_path=data["drop_path"],
                        keep_latest=data["keep_latest"], dry_run=data["dry_run"])
        except FeedError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Feed {found.name} saved.")
            return redirect("feed-detail", feed=found.name)
    status = 400 if request.method == "POST" else 200
    return render(request, "feeds_ui/edit.html", {"feed": found, "form": form}, status=status)


@permission_required_or_403(MANAGE_PERMISSION)
@require_http_methods(["GET", "POST"])
def feed_remove(request: HttpRequest, feed: str) -> HttpResponse:
    """GET asks for confirmation; POST deletes the feed and its index. Its files stay on disk."""
    if request.method == "POST":
        try:
            deleted = feed_delete(name=feed)
        except FeedError as exc:
            messages.error(request, f"Nothing deleted: {exc}.")
        else:
            messages.success(request, f"Feed {deleted.name} deleted. Its package files stay on disk in "
                                      f"{deleted.storage_path}, to be removed or re-used by an administrator.")
        return redirect("feeds-index")
    found = feed_get(name=feed)
    if found is None:
        return _missing(request, feed)
    return render(request, "feeds_ui/delete.html", {
        "feed": found, "file_count": found.files.count(),
    })
