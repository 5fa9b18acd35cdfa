"""The Cluster page's endpoint override form: one node's own Service.MessengerEndpoint, blank for the cluster's.

Django's CharField refuses NUL characters and over-long text; the endpoint rules are the messenger's own
(parse_endpoint), so a field error says exactly what `manage.py settings set` would say.
"""
from __future__ import annotations

from django import forms

from cluster.models import ENDPOINT_MAX_LENGTH
from messenger.endpoint import parse_endpoint
from messenger.errors import InvalidEndpoint


class EndpointOverrideForm(forms.Form):
    endpoint = forms.CharField(
        required=False, max_length=ENDPOINT_MAX_LENGTH, label="Messenger endpoint of this node",
        help_text="pipe://NAME, tcp://HOST:PORT or tcp://*:PORT; leave empty to use the cluster-wide endpoint.",
    )

    def clean_endpoint(self) -> str:
        """The endpoint in canonical form, or "" for the cluster-wide one."""
        text = self.cleaned_data["endpoint"]
        if not text:
            return ""
        try:
            return str(parse_endpoint(text))
        except InvalidEndpoint as exc:
            raise forms.ValidationError(str(exc)) from None
