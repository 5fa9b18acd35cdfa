"""The API keys page's forms: create a key (name, scopes, optional expiry in days) and revoke one."""
from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.models import AbstractBaseUser

from api_keys.keys import NAME_MAX_LENGTH, owner_may
from api_keys.models import SCOPES

# The longest expiry offered: ten years. A key that should live longer should simply not expire.
MAX_EXPIRES_DAYS = 3650


class ApiKeyCreateForm(forms.Form):
    """Offers only the scopes `owner` may hand out (api_keys.keys.owner_may); api_key_create checks again."""

    name = forms.CharField(max_length=NAME_MAX_LENGTH, help_text="What the key is for, e.g. \"CI uploads\".")
    scopes = forms.MultipleChoiceField(widget=forms.CheckboxSelectMultiple,
                                       help_text="Only the scopes your own permissions allow.")
    expires_days = forms.IntegerField(required=False, min_value=1, max_value=MAX_EXPIRES_DAYS,
                                      label="Expires after (days)", help_text="Empty: never expires.")

    def __init__(self, *args: Any, owner: AbstractBaseUser, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["scopes"].choices = [(name, f"{name} — {text}") for name, text in SCOPES if owner_may(owner, name)]


class ApiKeyRevokeForm(forms.Form):
    key_id = forms.IntegerField(min_value=1)
