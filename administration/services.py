"""Changing settings and the cluster from the web and the CLI: store through the core, then tell the nodes.

Each store is one transaction; the nudge goes out only after it committed, so the service reads the
new value when it reacts. A messenger outage never fails a change. Node removals are logged; endpoint
overrides are audited like settings and bump the settings version, so the node applies them live.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from django.db import transaction

from administration.selectors import service_apply_report, stale_after_seconds
from cluster.nodes import node_endpoint_override_set, node_remove
from cluster.primary import primary_name
from indexer.messenger_config import (
    ENDPOINT_SETTING,
    KEY_SETTING,
    SERVICE_TOLD,
    SETTINGS_POLL_HINT_SECONDS,
    MessengerSettings,
    config_changed_notify,
    messenger_settings,
)
from messenger.crypto import generate_key
from messenger.endpoint import parse_endpoint
from messenger.errors import MessengerError
from settings_store.models import SettingChange
from settings_store.push import settings_push_on_commit
from settings_store.registry import setting_definition
from settings_store.selectors import settings_version
from settings_store.services import setting_set, settings_version_bump

logger = logging.getLogger(__name__)

WEB_SOURCE = "web"
# After the nudge, a save waits this long at most for the service's result (a rebind takes milliseconds).
APPLY_WAIT_SECONDS = 3.0
# How often it looks at the registry meanwhile.
APPLY_POLL_SECONDS = 0.05
# An override's audit entry is named after the setting and the node, cut to what the audit table holds.
AUDIT_NAME_MAX_LENGTH = SettingChange._meta.get_field("name").max_length


@dataclass(frozen=True, kw_only=True)
class SettingOutcome:
    name: str
    change: SettingChange | None  # None when the value was already that
    applied: str  # one line: whether the nodes apply it now
    refused: bool = False  # the service said it cannot apply it (the reason is in `applied`)

    def __str__(self) -> str:
        if self.change is None:
            return f"{self.name} unchanged."
        old, new = self.change.old_value or "default", self.change.new_value or "default"
        return f"{self.name} changed ({old} → {new}); {self.applied}."


def _settings_in_use() -> MessengerSettings | None:
    """This process's messenger settings before a change: the service still runs with these."""
    try:
        return messenger_settings()
    except MessengerError:
        return None  # broken now: the change may be the fix


def setting_change(*, name: str, value: str, actor: str, source: str = WEB_SOURCE) -> SettingOutcome:
    """Validate and store `value` ("" restores the default), then nudge the service.

    Raises UnknownSetting or SettingValueError (a message for the user) and then changes nothing.
    Not atomic on purpose: setting_set commits before the service is told to re-read.
    """
    definition = setting_definition(name)
    definition.clean(value)  # refuse before messenger_settings() may generate the key
    previous = _settings_in_use()
    change = setting_set(name=name, value=value, actor=actor, source=source)
    applied, refused = "", False
    if change is not None and definition.live:
        applied, refused = _service_told(previous=previous, version=change.version)
    elif change is not None:
        applied = "restart the nodes to apply it"
    return SettingOutcome(name=name, change=change, applied=applied, refused=refused)


def _service_told(*, previous: MessengerSettings | None, version: int, node: str | None = None) -> tuple[str, bool]:
    """Nudge the service, then wait (at most APPLY_WAIT_SECONDS) for what it says of applying `version`:
    one line for the user, and whether the service refused it."""
    told = config_changed_notify(previous=previous)
    if told != SERVICE_TOLD:
        return told, False  # not reachable: its poll applies it, and says how on the Advanced Settings page
    deadline = time.monotonic() + APPLY_WAIT_SECONDS
    while (report := service_apply_report(version=version, node=node)) is None:
        if time.monotonic() >= deadline:
            return f"the service is applying it (no answer within {APPLY_WAIT_SECONDS:g} s: see the nodes)", False
        time.sleep(APPLY_POLL_SECONDS)
    settings_push_on_commit(version=version)  # web nodes re-read where the service now serves
    if report.refused:
        return f"the service refused it: {report.problem}", True
    return SERVICE_TOLD, False


def messenger_key_set(*, value: str, actor: str) -> SettingOutcome:
    """Replace the messenger key with `value`: base64 of 32 random bytes (empty or weak is refused by the core)."""
    return setting_change(name=KEY_SETTING, value=value, actor=actor)


def messenger_key_generate(*, actor: str) -> SettingOutcome:
    """Replace the messenger key with a freshly generated one."""
    return setting_change(name=KEY_SETTING, value=generate_key(), actor=actor)


@transaction.atomic
def cluster_node_remove(*, name: str, actor: str, source: str = WEB_SOURCE) -> str:
    """Remove stale node `name` from the registry and log who did; one line for the user.

    Its endpoint override goes with it, audited under a new settings version: if the node is alive after all,
    it applies the cluster-wide endpoint, as its registry row (registered again) then says.
    Raises Node.DoesNotExist, or NodeNotRemovable (alive, or holding the primary lease) with the reason.
    """
    node = node_remove(name=name, stale_after_seconds=stale_after_seconds())
    if node.endpoint_override:
        _override_audit(node=name, old=node.endpoint_override, new="", actor=actor, source=source)
    logger.warning("%s removed %s node %s (ip %s, last heartbeat %s) from the registry",
                   actor, node.kind, name, node.ip or "-", node.heartbeat_at.isoformat(timespec="seconds"))
    return f"Node {name} removed. If it is still running, it registers again with its next heartbeat."


def endpoint_override_audit_name(node: str) -> str:
    """The audit trail's name for node `node`'s endpoint override."""
    return f"{ENDPOINT_SETTING}@{node}"[:AUDIT_NAME_MAX_LENGTH]


def _override_audit(*, node: str, old: str, new: str, actor: str, source: str) -> None:
    """Record an override change in the settings audit trail under a new settings version (nodes re-read)."""
    SettingChange.objects.create(name=endpoint_override_audit_name(node), old_value=old, new_value=new,
                                 changed_by=actor, source=source, version=settings_version_bump())


@dataclass(frozen=True)
class OverrideOutcome:
    message: str  # one line for the user
    refused: bool = False  # the node said it cannot apply it (the reason is in `message`)


def endpoint_override_change(*, node: str, value: str, actor: str, source: str = WEB_SOURCE) -> OverrideOutcome:
    """Set service node `node`'s own messenger endpoint ("" restores the cluster-wide one); what happened.

    Validated (InvalidEndpoint), stored in canonical form with an audit entry under a new settings version, in
    one transaction; then the node is nudged if it is the primary, and otherwise notices by polling.
    Raises Node.DoesNotExist when no service node has that name.
    """
    text = str(parse_endpoint(value)) if value.strip() else ""
    nudge = node == primary_name()  # a standby is not reachable through the messenger: it polls
    previous = _settings_in_use() if nudge else None
    with transaction.atomic():
        old = node_endpoint_override_set(name=node, value=text)
        if old is None:
            return OverrideOutcome(f"The endpoint of {node} is unchanged.")
        _override_audit(node=node, old=old, new=text, actor=actor, source=source)
    logger.info("endpoint override of %s changed by %s via %s: %r -> %r", node, actor, source, old, text)
    refused = False
    if nudge:
        applied, refused = _service_told(previous=previous, version=settings_version(), node=node)
    else:
        applied = f"it applies it within {SETTINGS_POLL_HINT_SECONDS} s"
    if refused:
        return OverrideOutcome(f"{node} keeps its endpoint: {applied}.", refused=True)
    target = f"its own endpoint {text}" if text else "the cluster-wide endpoint"
    return OverrideOutcome(f"{node} now uses {target}; {applied}.")
