"""Who may scrape /metrics without an API key: clients whose address is in `Metrics.AllowedIps`.

Empty (the default) allows nobody by address: a key with the metrics:read scope is then required.
Only the peer address (REMOTE_ADDR) counts; X-Forwarded-For is not trusted.
"""
from __future__ import annotations

import logging

from messenger.allowlist import ip_allowed, parse_allowed_ips
from settings_store.selectors import setting_get

logger = logging.getLogger(__name__)

ALLOWED_IPS_SETTING = "Metrics.AllowedIps"


def metrics_ip_allowed(address: str | None) -> bool:
    """Whether `address` may scrape /metrics without a key (never when the allowlist is empty)."""
    if not address:
        return False
    try:
        networks = parse_allowed_ips(str(setting_get(ALLOWED_IPS_SETTING)), setting=ALLOWED_IPS_SETTING)
    except ValueError as exc:  # validated on save; a bad row written by hand allows nobody
        logger.warning("%s is not usable: %s", ALLOWED_IPS_SETTING, exc)
        return False
    return bool(networks) and ip_allowed(address, networks)
