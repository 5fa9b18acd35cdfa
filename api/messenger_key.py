"""The messenger key through the settings API: it grants whatever the service does, so it needs more than a write.

Changing `Service.MessengerKey` needs the key's own scope (settings:messenger-key, 403 without it) and the
confirmation the Advanced Settings page asks for with its tick box, sent as confirm=yes (400 without it).
"""
from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from api.endpoint import ApiError, key_required, text_field
from api_keys.keys import MESSENGER_KEY
from indexer.messenger_config import KEY_SETTING

CONFIRMATION_NEEDED = (
    "Nothing changed: send confirm=yes as well. Every node switches to the new key, "
    "and connections using the old one are closed."
)


def messenger_key_change_check(request: HttpRequest, fields: dict[str, Any], *, name: str) -> None:
    """Raise ApiError 403 or 400 when setting `name` is the messenger key and its scope or confirmation is missing."""
    if name != KEY_SETTING:
        return
    key_required(request, scopes=[MESSENGER_KEY])
    if text_field(fields, "confirm", required=False) != "yes":
        raise ApiError(CONFIRMATION_NEEDED, status=400)
