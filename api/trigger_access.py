"""Which triggers an API key may see: those its owner asked for, or every one when the owner may watch the service.

Trigger ids are sequential, so a trigger the key may not see is answered exactly like a missing one (404).
"""
from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser

from indexer.models import Trigger

# Who watches the Service Status page sees the whole queue there already; the API shows them every trigger too.
SEE_ALL_PERMISSION = "administration.view_service_status"


def requested_by_user(*, requested_by: str, username: str) -> bool:
    """Whether a trigger's `requested_by` names `username`: the user name itself (pages, uploads), or the API's
    "name (API key N)". User names hold no spaces (Django's validator), so "name " can belong to no one else."""
    return requested_by == username or requested_by.startswith(f"{username} ")


def trigger_visible(*, trigger: Trigger, owner: AbstractBaseUser) -> bool:
    """Whether the owner of an API key may see `trigger`."""
    if owner.has_perm(SEE_ALL_PERMISSION):
        return True
    return requested_by_user(requested_by=trigger.requested_by, username=owner.get_username())
