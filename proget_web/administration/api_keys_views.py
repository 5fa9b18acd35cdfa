"""The API keys page (/administration/api-keys): create a key (shown once), list keys with their last use, revoke.

An interface only: it parses the forms and calls api_keys.keys. The key is in one response, marked no-store, and
nowhere else (not in the session, not in a redirect, not in the log).
"""
from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from api_keys.keys import ApiKeyError, IssuedKey, api_key_create, api_key_revoke, api_keys_list
from proget_web.administration.api_key_forms import ApiKeyCreateForm, ApiKeyRevokeForm
from proget_web.administration.permissions import permission_required_or_403

ACTION_CREATE = "create"
ACTION_REVOKE = "revoke"


@permission_required_or_403("administration.change_settings")
@require_http_methods(["GET", "POST"])
def api_keys_page(request: HttpRequest) -> HttpResponse:
    """List keys; POST action=create shows the new key once (scopes within the creator's own), action=revoke."""
    form = ApiKeyCreateForm(owner=request.user)
    issued: IssuedKey | None = None
    if request.method == "POST" and request.POST.get("action") == ACTION_REVOKE:
        revoke = ApiKeyRevokeForm(request.POST)
        key = api_key_revoke(key_id=revoke.cleaned_data["key_id"]) if revoke.is_valid() else None
        if key is None:
            messages.error(request, "No such API key.")
        else:
            messages.success(request, f"API key {key.id} ({key.name}) revoked: it is refused from now on.")
        return redirect("api-keys")
    if request.method == "POST":
        form = ApiKeyCreateForm(request.POST, owner=request.user)
        if form.is_valid():
            days = form.cleaned_data["expires_days"]
            try:
                issued = api_key_create(
                    name=form.cleaned_data["name"], owner=request.user, scopes=form.cleaned_data["scopes"],
                    expires_at=timezone.now() + timedelta(days=days) if days else None,
                )
            except ApiKeyError as exc:
                form.add_error(None, str(exc))
            else:
                form = ApiKeyCreateForm(owner=request.user)
    context = {"form": form, "issued": issued, "keys": api_keys_list(), "now": timezone.now(),
               "ACTION_CREATE": ACTION_CREATE, "ACTION_REVOKE": ACTION_REVOKE}
    response = render(request, "administration/api_keys.html", context, status=400 if form.errors else 200)
    if issued is not None:
        response["Cache-Control"] = "no-store"  # the key is in this page: no cache may keep it
    return response
