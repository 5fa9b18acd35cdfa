"""Who may read a feed: everyone when Feeds.AnonymousRead is on, else users who log in (HTTP basic auth).

The check runs before the feed is looked up, so an anonymous client cannot tell which feeds exist.
"""
from __future__ import annotations

import base64
import binascii
import functools
from collections.abc import Callable

from django.contrib.auth import authenticate
from django.contrib.auth.models import AbstractBaseUser
from django.http import Http404, HttpRequest, HttpResponse

from api_keys.keys import BASIC_USER, FEEDS_READ, request_key_scopes, token_split
from feeds.models import Feed
from feeds.selectors import feed_get
from settings_store.selectors import setting_get

BASIC_REALM = 'Basic realm="feeds", charset="UTF-8"'

FeedView = Callable[..., HttpResponse]


def basic_auth_user(request: HttpRequest) -> AbstractBaseUser | None:
    """The active user whose name and password the request's Authorization header carries, or None.

    Credentials that are an API key (user `api`, or a password with the key prefix) are never a password: they
    are left to the key check (api_keys.keys), which costs one SHA-256, not a password hash (PBKDF2, ~300 ms) per
    request. A password goes through authenticate(), where django-axes counts failures and locks out.
    """
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        username, sep, password = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    if not sep or username == BASIC_USER or token_split(password) is not None:
        return None
    user = authenticate(request, username=username, password=password)
    return user if user is not None and user.is_active else None


def may_read(request: HttpRequest) -> bool:
    """Whether this request may read feeds."""
    if setting_get("Feeds.AnonymousRead") or request.user.is_authenticated:
        return True
    return basic_auth_user(request) is not None or FEEDS_READ in request_key_scopes(request)


def feed_readable(view: FeedView) -> FeedView:
    """Decorate a view taking `feed` (a name): check read access (401), then pass the Feed (404 if none)."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: object, feed: str, **kwargs: object) -> HttpResponse:
        if not may_read(request):
            response = HttpResponse("authentication required\n", status=401, content_type="text/plain")
            response["WWW-Authenticate"] = BASIC_REALM
            return response
        found: Feed | None = feed_get(name=feed)
        if found is None:
            raise Http404(f"no feed called {feed!r}")
        return view(request, *args, feed=found, **kwargs)

    return wrapper
