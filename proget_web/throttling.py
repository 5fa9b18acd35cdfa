"""Password guessing throttled by django-axes (configured in settings.py): the backend and the lockout answer.

Axes counts failed password checks (the login page, HTTP basic auth on the feeds) per user name and per client
IP; at the limit that user or IP gets 429 with Retry-After, whatever password it sends, so a locked-out right
password is answered exactly like a wrong one. API keys never pass through here: 256-bit keys cannot be guessed.
"""
from __future__ import annotations

from typing import Any

from axes.backends import AxesStandaloneBackend
from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_cool_off
from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpRequest, HttpResponse, QueryDict


class LoginThrottleBackend(AxesStandaloneBackend):
    """Axes' lockout check, for checks that come with a request (web logins and basic auth).

    A check without a request (a management command, the test client's login()) is no guess from the network:
    it passes to the next backend instead of failing as axes' own backend would.
    """

    def authenticate(self, request: HttpRequest | None, username: str | None = None, password: str | None = None,
                     **kwargs: Any) -> AbstractBaseUser | None:
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


class BasicAuthAwareHandler(AxesDatabaseHandler):
    """Axes' database handler, except that a failed HTTP basic auth does not have its body parsed to be logged.

    Axes copies the form fields of a failed login into its record. Basic-auth credentials are in a header, and the
    body of a twine upload is the package (up to 100 MiB, fields past Django's in-memory cap): parsing it would
    answer 400 instead of 401 and read the whole upload for nothing.
    """

    def user_login_failed(self, sender: object, credentials: dict, request: HttpRequest | None = None,
                          **kwargs: Any) -> None:
        if request is not None and request.headers.get("Authorization", "")[:6].lower() == "basic ":
            request.POST = QueryDict()  # nothing of the body is recorded; the request is refused anyway
        super().user_login_failed(sender, credentials, request=request, **kwargs)


def lockout_response(request: HttpRequest, *_: object) -> HttpResponse:
    """429 with Retry-After: the cool-off, after which the lockout ends (failures during it do not extend it).

    Takes axes' (request, original_response, credentials) and ignores all but the request: the same answer
    for a right and a wrong password.
    """
    cool_off = get_cool_off(request)
    seconds = int(cool_off.total_seconds()) if cool_off else 0
    response = HttpResponse(f"Too many failed logins for this user or from this address: try again in {seconds} s.\n",
                            status=429, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = str(seconds)
    return response
