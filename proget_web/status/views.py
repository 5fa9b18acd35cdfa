"""The Service Status page: a server-rendered skeleton that status.js fills from the WebSocket.

It never talks to the service itself, so it renders at once whether the service is up or not.
"""
from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from indexer.service import LOG_LEVEL_SETTING
from proget_web.administration.permissions import permission_required_or_403
from proget_web.status.consumers import CONTROL_PERMISSION, VIEW_PERMISSION
from proget_web.status.routing import STATUS_SOCKET_PATH
from settings_store.selectors import setting_get

HISTORY_URL_NAME = "RUNNER"


@permission_required_or_403(VIEW_PERMISSION)
def service_status(request: HttpRequest) -> HttpResponse:
    return render(request, "status/service.html", {
        "can_control": request.user.has_perm(CONTROL_PERMISSION),
        "socket_path": "/" + STATUS_SOCKET_PATH,
        # Each runner's name links to its run history; status.js puts the URL-encoded name in place of RUNNER.
        "history_url": reverse("runner-history", kwargs={"name": HISTORY_URL_NAME}),
        # The log filter can only hide lines: what the service keeps is this setting's level and above.
        "log_level_setting": LOG_LEVEL_SETTING,
        "service_log_level": setting_get(LOG_LEVEL_SETTING),
    })
