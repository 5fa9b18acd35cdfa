"""session_user(): the user a session stands for now, as Django's get_user decides it, without writing the session."""
from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from django.test import Client

from proget_web.session_sockets import session_user

pytestmark = pytest.mark.django_db


def signed_in(user: User) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def test_a_live_session_stands_for_its_user_and_a_logged_out_one_for_nobody() -> None:
    user = User.objects.create_user("operator", password="pw")
    client = Client()
    client.force_login(user)
    session = client.cookies["sessionid"].value
    assert session_user(session) == user
    client.post("/accounts/logout/")
    assert session_user(session) is None
    assert session_user("no-such-session") is None


def test_a_session_under_a_retired_secret_key_stands_and_is_not_cycled(settings: Any) -> None:
    """During a SECRET_KEY rotation a socket cannot hand out a new cookie: the session must stay as it is."""
    user = User.objects.create_user("operator", password="pw")
    session = signed_in(user)
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "rotated-" + "k" * 50
    assert session_user(session) == user
    assert Session.objects.filter(session_key=session).exists()
    settings.SECRET_KEY_FALLBACKS = []
    assert session_user(session) is None
