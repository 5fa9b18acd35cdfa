"""Users and groups in the browser: Django's admin, limited to auth's User and Group, under /admin/.

Why Django's admin and not a page of ours: it already does everything asked (create, deactivate, reset a password
with the password validators, grant permissions and groups, search, filters, a per-object history) and is what a
Django administrator expects. What is ours:

- the site only registers User and Group, so no model with a secret (API key hashes, the messenger key) is shown;
- one login page for the whole site: /admin/login/ is not routed, anonymous visitors go to /accounts/login/;
- a signed-in user who may not manage users gets the site's friendly 403, not the admin's login form;
- the user list shows each user's groups and effective administration permissions (direct, via groups, superuser).

Admin-only: active staff holding at least one auth permission, and superusers; within the admin, Django's own
model permissions (auth.add_user, auth.change_user, ...) decide what each may do.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import AnonymousUser, Group, User
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern

from administration.models import PERMISSIONS

ADMINISTRATION_CODENAMES = tuple(codename for codename, _ in PERMISSIONS)


def may_manage_users(user: User | AnonymousUser) -> bool:
    """Whether `user` may open the user and group pages: an active superuser, or active staff with auth permissions."""
    if not user.is_active:
        return False
    return user.is_superuser or (user.is_staff and user.has_module_perms("auth"))


class UsersAdminSite(admin.AdminSite):
    site_header = "Users and groups"
    site_title = "Users and groups"
    index_title = "Users and groups"
    site_url = "/"
    # The catch-all route has no name (every route must have one for tests/security); unknown paths simply 404.
    final_catch_all_view = False

    def has_permission(self, request: HttpRequest) -> bool:
        return may_manage_users(request.user)

    def admin_view(self, view: Callable[..., Any], cacheable: bool = False) -> Callable[..., HttpResponse]:
        """Django's wrapper (never_cache, csrf_protect), with the site's login page and friendly 403 in front."""
        inner = super().admin_view(view, cacheable)

        @functools.wraps(inner)  # keeps csrf_exempt and the like visible to the resolver
        def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not self.has_permission(request):
                raise PermissionDenied("may not manage users")
            return inner(request, *args, **kwargs)

        return guarded

    def get_urls(self) -> list[URLPattern]:
        """Django's admin routes without its own login form: one login page (and its checks) for the whole site."""
        return [pattern for pattern in super().get_urls() if getattr(pattern, "name", "") != "login"]


class NamedRoutesOnly:
    """Drop Django's unnamed pre-1.9 redirect (<id>/ → <id>/change/): every route stays named and classified."""

    def get_urls(self) -> list[URLPattern]:
        return [pattern for pattern in super().get_urls() if pattern.name]  # type: ignore[misc]


class ManagedUserAdmin(NamedRoutesOnly, UserAdmin):
    list_display = ("username", "is_active", "is_staff", "is_superuser", "group_names", "administration_rights")
    list_filter = ("is_active", "is_staff", "is_superuser", "groups")
    readonly_fields = ("last_login", "date_joined")

    def get_queryset(self, request: HttpRequest) -> QuerySet[User]:
        return super().get_queryset(request).prefetch_related(
            "groups__permissions__content_type", "user_permissions__content_type")

    @admin.display(description="Groups")
    def group_names(self, user: User) -> str:
        return ", ".join(sorted(group.name for group in user.groups.all())) or "—"

    @admin.display(description="Administration rights")
    def administration_rights(self, user: User) -> str:
        """The four administration permissions `user` holds, directly, through a group, or as a superuser."""
        return ", ".join(effective_administration_permissions(user)) or "—"


def effective_administration_permissions(user: User) -> list[str]:
    """Codenames of the administration permissions `user` holds (from prefetched groups and permissions)."""
    if not user.is_active:
        return []
    if user.is_superuser:
        return list(ADMINISTRATION_CODENAMES)
    held = {(p.content_type.app_label, p.codename) for p in user.user_permissions.all()}
    held |= {(p.content_type.app_label, p.codename) for g in user.groups.all() for p in g.permissions.all()}
    return [codename for codename in ADMINISTRATION_CODENAMES if ("administration", codename) in held]


class ManagedGroupAdmin(NamedRoutesOnly, GroupAdmin):
    pass


site = UsersAdminSite(name="admin")
site.register(User, ManagedUserAdmin)
site.register(Group, ManagedGroupAdmin)
