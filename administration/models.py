"""The administration permissions: a table-less model whose only job is to own them.

Grant them to users or groups in the Django admin; superusers hold them all.
"""
from __future__ import annotations

from django.db import models

# (codename, description) — referenced as "administration.<codename>".
PERMISSIONS = (
    ("view_service_status", "Can view the Service Status and Cluster pages"),
    ("change_settings", "Can view and change Advanced Settings"),
    ("control_service", "Can run, pause and restart the service's task runners"),
    ("reindex_feed", "Can reindex a feed"),
)


class AdministrationPermission(models.Model):
    """No rows, no table: `managed = False` and no default add/change/delete/view permissions."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = PERMISSIONS
