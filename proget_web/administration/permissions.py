"""The one access check for permission-guarded pages, for sync and async views alike.

Anonymous visitors are sent to the login page (with ?next=); a signed-in user without the
permission gets the friendly 403 page (templates/403.html, Django's handler403). Superusers pass.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

View = Callable[..., Any]


def permission_required_or_403(perm: str) -> Callable[[View], View]:
    """Decorate a view so only users holding `perm` (e.g. "administration.change_settings") reach it.

    Unlike Django's permission_required, a signed-in user without the permission is never sent back
    to the login page (which would loop); they get a 403.
    """

    def decorator(view: View) -> View:
        if iscoroutinefunction(view):

            @functools.wraps(view)
            async def async_guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
                user = await request.auser()
                if not user.is_authenticated:
                    return redirect_to_login(request.get_full_path())
                if not await user.ahas_perm(perm):
                    raise PermissionDenied(perm)
                return await view(request, *args, **kwargs)

            return async_guarded

        @functools.wraps(view)
        def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not request.user.has_perm(perm):
                raise PermissionDenied(perm)
            return view(request, *args, **kwargs)

        return guarded

    return decorator
