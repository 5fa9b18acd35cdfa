"""The administration pages: Advanced Settings (read and change), the Cluster overview with node removal
and per-node endpoint overrides.

Views only parse the request and call the administration core; GET never writes, and the
messenger key is shown by fingerprint only.
"""
from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from administration import selectors, services
from cluster.models import Node
from cluster.nodes import NodeNotRemovable
from indexer.messenger_config import KEY_SETTING
from proget_web.administration.forms import EndpointOverrideForm
from proget_web.administration.permissions import permission_required_or_403
from proget_web.web_node import web_node_settings_applied
from settings_store.registry import SettingValueError, UnknownSetting
from settings_store.selectors import settings_list

KEY_GENERATE = "generate"
KEY_SET = "set"
KEY_CONFIRMATION_NEEDED = (
    "Nothing changed: tick the confirmation first. Every node switches to the new key, "
    "and connections using the old one are closed."
)


def _setting_save(request: HttpRequest) -> services.SettingOutcome:
    """Apply one settings form; the key's two actions also need the confirmation box ticked."""
    name = request.POST.get("name", "")
    value = request.POST.get("value", "")
    actor = request.user.get_username()
    if name != KEY_SETTING:
        return services.setting_change(name=name, value=value, actor=actor)
    if request.POST.get("confirm") != "yes":
        raise SettingValueError(KEY_CONFIRMATION_NEEDED)
    if request.POST.get("action") == KEY_GENERATE:
        return services.messenger_key_generate(actor=actor)
    return services.messenger_key_set(value=value, actor=actor)


@permission_required_or_403("administration.change_settings")
@require_http_methods(["GET", "POST"])
def advanced_settings(request: HttpRequest) -> HttpResponse:
    """Every setting with its value and an in-place form; the messenger key by fingerprint; the audit trail."""
    failed: dict[str, str] = {}
    if request.method == "POST":
        try:
            outcome = _setting_save(request)
        except UnknownSetting as exc:
            failed = {"error": str(exc)}  # no row to show it next to: it goes on top of the page
            messages.error(request, failed["error"])
        except SettingValueError as exc:
            failed = {
                "name": request.POST.get("name", ""),
                "action": request.POST.get("action", KEY_SET),
                # Echo what was typed so it can be fixed, except for the secret.
                "value": "" if request.POST.get("name") == KEY_SETTING else request.POST.get("value", ""),
                "error": str(exc),
            }
        else:
            web_node_settings_applied()  # this process reads settings afresh: the page shows it applied at once
            (messages.warning if outcome.refused else messages.success)(request, str(outcome))
            return redirect("advanced-settings")  # top of the page: the outcome and the nodes applying it
    context = {
        "settings": settings_list(),
        "key_setting": KEY_SETTING,
        "key": selectors.messenger_key_state(),
        "cluster": selectors.cluster_view(),
        "changes": selectors.setting_changes_recent(),
        "failed": failed,
        "KEY_GENERATE": KEY_GENERATE,
        "KEY_SET": KEY_SET,
    }
    return render(request, "administration/advanced_settings.html", context, status=400 if failed else 200)


def _cluster_page(request: HttpRequest, *, error: str = "", status: int = 200) -> HttpResponse:
    context = {"cluster": selectors.cluster_view(), "error": error}
    return render(request, "administration/cluster.html", context, status=status)


@permission_required_or_403("administration.view_service_status")
@require_GET
def cluster(request: HttpRequest) -> HttpResponse:
    """Every registered node: role, identity, heartbeat age (stale flagged), key match, settings applied; failovers."""
    return _cluster_page(request)


@permission_required_or_403("administration.change_settings")
@require_POST
def cluster_node_remove(request: HttpRequest, node: str) -> HttpResponse:
    """Remove a stale node from the registry; a live node or the primary is refused with the reason (409)."""
    try:
        outcome = services.cluster_node_remove(name=node, actor=request.user.get_username())
    except Node.DoesNotExist:
        raise Http404(f"no node named {node!r}") from None
    except NodeNotRemovable as exc:
        return _cluster_page(request, error=f"Nothing was removed: {exc}", status=409)
    messages.success(request, outcome)
    return redirect("cluster")


@permission_required_or_403("administration.change_settings")
@require_http_methods(["GET", "POST"])
def cluster_node_endpoint(request: HttpRequest, node: str) -> HttpResponse:
    """A service node's own messenger endpoint: the form (GET), or save it and back to the Cluster page (POST)."""
    target = selectors.service_node(name=node)
    if target is None:
        raise Http404(f"no service node named {node!r}")
    form = EndpointOverrideForm(request.POST if request.method == "POST" else None,
                                initial={"endpoint": target.endpoint_override})
    if form.is_valid():
        try:
            outcome = services.endpoint_override_change(
                node=node, value=form.cleaned_data["endpoint"], actor=request.user.get_username()
            )
        except Node.DoesNotExist:  # removed since the form was shown
            raise Http404(f"no service node named {node!r}") from None
        (messages.warning if outcome.refused else messages.success)(request, outcome.message)
        return redirect("cluster")
    context = {"node": target, "form": form, "cluster_endpoint": selectors.cluster_endpoint()}
    return render(request, "administration/cluster_endpoint.html", context, status=400 if form.errors else 200)
