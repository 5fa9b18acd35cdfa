"""The API keys page's forms: create a key (name, scopes, optional expiry in days) and revoke one."""
from __future__ import annotations

from django import forms

from api.keys import NAME_MAX_LENGTH
from api.models import SCOPES

# The longest expiry offered: ten years. A key that should live longer should simply not expire.
MAX_EXPIRES_DAYS = 3650


class ApiKeyCreateForm(forms.Form):
    name = forms.CharField(max_length=NAME_MAX_LENGTH, help_text="What the key is for, e.g. \"CI uploads\".")
    scopes = forms.MultipleChoiceField(choices=[(name, f"{name} — {text}") for name, text in SCOPES],
                                       widget=forms.CheckboxSelectMultiple)
    expires_days = forms.IntegerField(required=False, min_value=1, max_value=MAX_EXPIRES_DAYS,
                                      label="Expires after (days)", help_text="Empty: never expires.")


class ApiKeyRevokeForm(forms.Form):
    key_id = forms.IntegerField(min_value=1)
