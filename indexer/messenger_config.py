"""The messenger's configuration as the nodes (web and service) read it from Advanced Settings: the Django glue
the messenger package itself does without.

The key is generated on first use, once for the whole cluster; malformed values raise the
messenger's own InvalidKey / InvalidEndpoint with one clear line, never a fallback.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import logging
import threading
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from messenger.allowlist import IPNetwork, parse_allowed_ips
from messenger.client import call
from messenger.crypto import RetiredKey, generate_key, key_fingerprint, parse_key
from messenger.endpoint import Endpoint, parse_endpoint
from messenger.errors import MessengerError
from messenger.messages import CONFIG_CHANGED
from settings_store.models import RetiredValue, SettingValue
from settings_store.registry import setting_definition
from settings_store.selectors import settings_version
from settings_store.services import setting_get_or_init

ENDPOINT_SETTING = "Service.MessengerEndpoint"
KEY_SETTING = "Service.MessengerKey"
ALLOWED_IPS_SETTING = "Service.MessengerAllowedIps"
KEY_GRACE_SETTING = "Service.MessengerKeyGraceSeconds"
logger = logging.getLogger(__name__)

# How often a service node polls for settings changes it was not told about (indexer.service).
SETTINGS_POLL_HINT_SECONDS = 5
# What config_changed_notify says when the service got the nudge (the caller may wait for its result).
SERVICE_TOLD = "the service applies it now"


@dataclass(frozen=True, kw_only=True)
class MessengerSettings:
    endpoint: Endpoint
    key: bytes = dataclasses.field(repr=False)  # never in a repr, a log line or an error report
    # Keys replaced less than Service.MessengerKeyGraceSeconds ago, newest first: still accepted until then.
    retired_keys: tuple[RetiredKey, ...] = dataclasses.field(repr=False, default=())
    allowed_ips: tuple[IPNetwork, ...]
    run_dir: Path

    @property
    def fingerprint(self) -> str:
        return key_fingerprint(self.key)

    @property
    def previous_keys(self) -> tuple[bytes, ...]:
        """The retired keys a client tries, newest first, when the service still holds an older key."""
        return tuple(retired.key for retired in self.retired_keys)


@sensitive_variables("key_text")
def messenger_settings(*, serving: bool = False) -> MessengerSettings:
    """Read (and on first use, create the key for) the messenger settings of this cluster.

    `serving`: for the service node itself, the endpoint it is told to serve. Otherwise (the web side) the endpoint
    the service really serves: the old one until it says it moved, or the one it stayed on after refusing the
    configured one (a port in use).
    """
    stored = dict(
        SettingValue.objects.filter(
            name__in=[ENDPOINT_SETTING, ALLOWED_IPS_SETTING, KEY_GRACE_SETTING]
        ).values_list("name", "value")
    )
    key_text = setting_get_or_init(name=KEY_SETTING, factory=generate_key)
    try:
        allowed_ips = parse_allowed_ips(stored.get(ALLOWED_IPS_SETTING, ""))
    except ValueError as exc:
        raise MessengerError(str(exc)) from None
    endpoint = parse_endpoint(_endpoint_text(stored))
    return MessengerSettings(
        endpoint=endpoint if serving else _served_instead(endpoint),
        key=parse_key(key_text),
        retired_keys=_retired_keys(key_text, stored.get(KEY_GRACE_SETTING, "")),
        allowed_ips=allowed_ips,
        run_dir=Path(settings.DATA_DIR) / "run",
    )


@sensitive_variables("key_text", "value")
def _retired_keys(key_text: str, grace_text: str) -> tuple[RetiredKey, ...]:
    """The keys replaced within the grace (Service.MessengerKeyGraceSeconds), newest first, each with its end."""
    definition = setting_definition(KEY_GRACE_SETTING)
    try:
        grace = int(definition.parse(grace_text) if grace_text else definition.default)
    except ValueError as exc:  # stored around the validation
        raise MessengerError(str(exc)) from None
    if grace <= 0:
        return ()
    rows = RetiredValue.objects.filter(
        name=KEY_SETTING, retired_at__gt=timezone.now() - timedelta(seconds=grace)
    ).order_by("-retired_at").values_list("value", "retired_at")
    return tuple(
        RetiredKey(key=parse_key(value), until=retired_at.timestamp() + grace)
        for value, retired_at in rows
        if value.strip() != key_text.strip()
    )


def _endpoint_text(stored: dict[str, str]) -> str:
    """This node's own endpoint override (set on the Cluster page) when it has one, else the cluster-wide value."""
    from cluster.nodes import node_endpoint_override  # the registry lives in the indexer app

    return node_endpoint_override(name=settings.NODE_NAME) or stored.get(ENDPOINT_SETTING, "")


def _served_instead(endpoint: Endpoint) -> Endpoint:
    """Where a web node connects when told `endpoint`: where the service really serves (cluster.nodes)."""
    from cluster.nodes import node_serving_instead  # the registry lives in the indexer app

    served = node_serving_instead(endpoint=str(endpoint), version=settings_version())
    return parse_endpoint(served) if served else endpoint


def _primary_address() -> str | None:
    from django.db import close_old_connections

    from cluster.primary import primary_address  # the registry lives in the indexer app

    close_old_connections()  # the resolver thread's connection may have outlived CONN_MAX_AGE or a DB restart
    return primary_address()


# Django refuses ORM calls inside an event loop: a loop's lookup runs on this one worker thread (one database
# connection per process) and the loop awaits it, never blocks on it.
_resolver_thread = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="messenger-resolver")
# A connect attempt waits this long at most for the lookup, then falls back to this machine.
RESOLVE_TIMEOUT = 2.0
_lookup_lock = threading.Lock()
_lookup: concurrent.futures.Future[str | None] | None = None  # the lookup under way, shared by every caller
_last_address: str | None = None  # what the last resolve answered (None: no resolve yet)


def _fallback() -> str:
    return settings.NODE_IP or "127.0.0.1"


def _answer(address: str | None) -> str:
    global _last_address
    _last_address = address or _fallback()
    return _last_address


def local_resolver() -> str:
    """Resolve `tcp://*:PORT` to the primary service node's registered IP (cluster.primary); synchronous code only.

    Falls back to this machine (PROGET_NODE_IP, else loopback) only while no lease holder has registered
    an IP, or the database cannot be read. Inside an event loop use local_resolver_async (this would block it).
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise MessengerError("local_resolver() would block the event loop: use local_resolver_async")
    try:
        address = _primary_address()
    except Exception as exc:
        logger.warning("cannot look up the primary service node (%s); trying this machine", exc)
        address = None
    return _answer(address)


async def local_resolver_async() -> str:
    """local_resolver for a MessengerClient: awaits the lookup (at most RESOLVE_TIMEOUT), never blocks the loop.

    Called on every connect attempt, so a web node that lost its connection reaches the new primary after a
    failover without a restart. Concurrent attempts share one lookup, so a stalled database never piles them up.
    """
    global _lookup
    with _lookup_lock:
        if _lookup is None or _lookup.done():
            _lookup = _resolver_thread.submit(_primary_address)
        lookup = asyncio.wrap_future(_lookup)
    try:
        # shield: a caller that gives up must not cancel the lookup the others share
        address = await asyncio.wait_for(asyncio.shield(lookup), RESOLVE_TIMEOUT)
    except Exception as exc:
        logger.warning("cannot look up the primary service node (%s); trying this machine",
                       exc or f"no answer within {RESOLVE_TIMEOUT:g} s")
        address = None
    return _answer(address)


def last_resolved_address() -> str:
    """Where `tcp://*:PORT` pointed at the last resolve (this machine before any): for display, never a lookup."""
    return _last_address or _fallback()


def service_call(
    type: str, *, body: dict | None = None, timeout: float, config: MessengerSettings | None = None
) -> dict:
    """One request to the service from synchronous code, with this cluster's settings (or `config`)."""
    config = config or messenger_settings()
    return call(endpoint=config.endpoint, key=config.key, previous_keys=config.previous_keys, run_dir=config.run_dir,
                resolver=local_resolver_async, type=type, body=body, timeout=timeout)


def config_changed_notify(*, previous: MessengerSettings | None, timeout: float = 2.0) -> str:
    """Tell the service that settings changed; return one line saying whether it applies them now.

    The service still runs with the settings it had, so the nudge goes out with `previous` first
    (the old key and endpoint), then with the new ones. If neither answers, its poll notices.
    """
    attempts = [previous] if previous is not None else []
    with contextlib.suppress(MessengerError):
        attempts.append(messenger_settings())
    reason = "no usable messenger settings"
    for config in dict.fromkeys(attempts):
        try:
            service_call(CONFIG_CHANGED, timeout=timeout, config=config)
            return SERVICE_TOLD
        except MessengerError as exc:
            reason = getattr(exc, "reason", str(exc))
    return f"the service will apply it within {SETTINGS_POLL_HINT_SECONDS} s (not reachable now: {reason})"
