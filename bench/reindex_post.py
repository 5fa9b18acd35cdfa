"""What one feed-page Reindex POST costs the web process, and how much of it the nudge is: profile, not estimate.

In one process, on a temp data dir (SQLite), with a messenger server standing in for the service (it answers
`trigger.nudge` at once): a signed-in Django test client POSTs /feeds/bench/reindex --posts times per path,
alternating the paths in rounds, and drops the flash-message cookie after each (the page a browser loads next
consumes it). The paths differ only in how the trigger's nudge travels:

- one-shot (the reference, what the page did before): a new messenger connection, handshake and event loop per
  nudge, waiting for the reply (`trigger_request(wait=True)`);
- long-lived (the page now): the nudge is handed to this process's open connection (indexer.nudges), not awaited.

Prints ms per POST (p50, p99) per path and their ratio, then the profile of the long-lived path grouped by layer.

    .venv/bin/python bench/reindex_post.py [--posts 300] [--rounds 3]
"""
from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

SCRATCH = tempfile.mkdtemp(prefix="bench-reindex-post-")
os.chmod(SCRATCH, 0o700)
os.environ.update(PROGET_DATA_DIR=SCRATCH, DJANGO_SETTINGS_MODULE="proget_web.settings", PROGET_LOG_LEVEL="ERROR")

import django  # noqa: E402

django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402

from bench.nodes import percentile  # noqa: E402
from feeds.services import feed_create  # noqa: E402
from indexer.messenger_config import messenger_settings  # noqa: E402
from indexer.trigger_requests import trigger_request  # noqa: E402
from messenger.server import MessengerServer, RequestContext  # noqa: E402
from proget_web.feedpages import views as feed_views  # noqa: E402

FEED = "bench"
PATHS = {"one-shot": True, "long-lived": False}  # path -> trigger_request's `wait`
# Where the long-lived path's time goes, by the file a function lives in (first match wins).
LAYERS = [("trigger core: queue + nudge (indexer, messenger)", ("/indexer/", "/messenger/", "asyncio/")),
          ("feed lookup (feeds)", ("/feeds/",)),
          ("ORM and SQLite", ("django/db/", "sqlite3")),
          ("sessions, auth, permissions", ("contrib/sessions", "contrib/auth", "administration/permissions", "axes")),
          ("CSRF, messages, other middleware", ("middleware", "contrib/messages", "whitenoise", "proget_web/")),
          ("Django request handling", ("django/core/", "django/http/", "django/urls/", "django/utils/")),
          ("test client (not in a server)", ("django/test/",)),
          ("C calls: sqlite3, the nudge's hand-off, getattr...", ("~",))]


async def _nudge(body: dict, ctx: RequestContext) -> dict:
    return {"outcomes": [f"trigger {body['id']} started"]}


def _serve() -> None:
    """The stand-in service, on an event loop of its own thread."""
    config = messenger_settings()
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()

    async def start() -> None:
        server = MessengerServer(key=config.key, handlers={"trigger.nudge": _nudge})
        await server.start(config.endpoint, run_dir=config.run_dir)

    asyncio.run_coroutine_threadsafe(start(), loop).result()


def _post_as(client: Client, wait: bool) -> float:
    """One Reindex POST whose view nudges with `wait`; seconds it took."""
    feed_views.trigger_request = lambda **kwargs: trigger_request(**{**kwargs, "wait": wait})
    try:
        started = time.perf_counter()
        response = client.post(f"/feeds/{FEED}/reindex")
        took = time.perf_counter() - started
    finally:
        feed_views.trigger_request = trigger_request
    if response.status_code != 302:
        raise SystemExit(f"the POST answered {response.status_code}")
    client.cookies.pop("messages", None)
    return took


def _layers(profile: cProfile.Profile) -> list[tuple[str, float]]:
    """Own (not cumulative) time per layer, so nothing is counted twice."""
    totals: dict[str, float] = {}
    for (filename, _, _), (_, _, own, _, _) in pstats.Stats(profile).stats.items():  # type: ignore[attr-defined]
        layer = next((name for name, parts in LAYERS if any(part in filename for part in parts)), "everything else")
        totals[layer] = totals.get(layer, 0.0) + own
    return sorted(totals.items(), key=lambda item: -item[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=300, help="POSTs per path per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    User.objects.create_superuser("admin", password="bench")
    feed_create(name=FEED)
    _serve()
    client = Client(HTTP_HOST="localhost")
    client.login(username="admin", password="bench")
    times: dict[str, list[float]] = {path: [] for path in PATHS}
    for wait in PATHS.values():  # warm-up: connections, caches
        for _ in range(20):
            _post_as(client, wait)
    for _ in range(args.rounds):
        for path, wait in PATHS.items():
            times[path] += [_post_as(client, wait) * 1000 for _ in range(args.posts)]
    for path, values in times.items():
        print(f"{path:>10}: {len(values)} POSTs, p50 {statistics.median(values):.2f} ms, "
              f"p99 {percentile(values, 0.99):.2f} ms")
    ratio = statistics.median(times["long-lived"]) / statistics.median(times["one-shot"])
    print(f"long-lived / one-shot p50: {ratio:.2f}x; load average {os.getloadavg()[0]:.2f}")
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(args.posts):
        _post_as(client, False)
    profile.disable()
    layers = _layers(profile)
    total = sum(seconds for _, seconds in layers)
    print(f"long-lived path, own time by layer (profiled, {args.posts} POSTs):")
    for name, seconds in layers:
        print(f"  {name:<40} {seconds / total:6.1%}")


if __name__ == "__main__":
    main()
