"""A quick, bounded check of the service through the messenger, for pages that must never block on it."""
from __future__ import annotations

import time
from dataclasses import dataclass

from asgiref.sync import sync_to_async

from indexer.messenger_config import local_resolver_async, messenger_settings
from messenger.client import MessengerClient
from messenger.errors import MessengerError, MessengerUnavailable
from messenger.messages import PING

# A page render waits at most this long for the service; the messenger is non-essential.
PROBE_TIMEOUT = 1.0


@dataclass(frozen=True, kw_only=True)
class ServiceProbe:
    ok: bool
    detail: str
    rtt_ms: float | None = None
    node: str | None = None


async def service_probe() -> ServiceProbe:
    """Ping the service once; report OK with the round trip, or Error with one clear reason."""
    try:
        config = await sync_to_async(messenger_settings)()
    except MessengerError as exc:
        return ServiceProbe(ok=False, detail=f"messenger misconfigured: {exc}")
    client = MessengerClient(
        endpoint=config.endpoint, key=config.key, previous_keys=config.previous_keys, run_dir=config.run_dir,
        resolver=local_resolver_async, request_timeout=PROBE_TIMEOUT, connect_timeout=PROBE_TIMEOUT,
    )
    started = time.perf_counter()
    try:
        reply = await client.request(PING, timeout=PROBE_TIMEOUT)
    except MessengerUnavailable as exc:
        return ServiceProbe(ok=False, detail=f"not reachable: {exc.reason}")
    except MessengerError as exc:
        return ServiceProbe(ok=False, detail=f"error: {exc}")
    finally:
        await client.close()
    rtt_ms = (time.perf_counter() - started) * 1000
    return ServiceProbe(ok=True, detail="running", rtt_ms=round(rtt_ms, 2), node=reply.get("node"))
