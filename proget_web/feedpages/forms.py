"""The feed forms: create (with the name) and edit (without: a feed's name and folder never change).

Field rules are the model's and the service's own (feed_name_validate, absolute drop path, keep >= 0),
so a field error says exactly what `manage.py feeds create` would say.
"""
from __future__ import annotations

from pathlib import Path

from django import forms

from feeds.naming import feed_name_validate


class FeedSettingsForm(forms.Form):
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    drop_path = forms.CharField(
        required=False, max_length=1024, label="Drop path",
        help_text="An absolute folder whose new package files are imported into the feed (optional).",
    )
    keep_latest = forms.IntegerField(
        min_value=0, initial=0, label="Keep latest",
        help_text="Versions kept per project by Feed Retention; 0 keeps all.",
    )
    dry_run = forms.BooleanField(
        required=False, label="Retention dry run", help_text="Report what retention would delete, delete nothing.",
    )

    def clean_drop_path(self) -> str:
        drop_path = self.cleaned_data["drop_path"].strip()
        if drop_path and not Path(drop_path).is_absolute():
            raise forms.ValidationError(f"the drop path must be an absolute path, not {drop_path!r}")
        return drop_path


class FeedCreateForm(FeedSettingsForm):
    # No max_length here: feed_name_validate covers the length with its own, clearer message.
    name = forms.CharField(validators=[feed_name_validate], help_text="Letters, digits, '.', '_' or '-'.")

    field_order = ["name", "description", "drop_path", "keep_latest", "dry_run"]
