"""The service node's main loop: serves the messenger until SIGTERM/SIGINT, then shuts down cleanly.

Signal handlers only set the stop event; shutdown closes the messenger and removes its socket file.
"""
from __future__ import annotations

import asyncio
import logging
import signal
import time

from django.conf import settings

import proget_web
from messenger.config import MessengerSettings
from messenger.server import MessengerServer, RequestContext

logger = logging.getLogger(__name__)


class ServiceNode:
    """One service node: owns the messenger server and answers its requests."""

    def __init__(self, *, messenger: MessengerSettings) -> None:
        self.messenger = messenger
        self.started_at = time.time()
        self._stop = asyncio.Event()
        self.server = MessengerServer(
            key=messenger.key,
            handlers={"ping": self.ping},
            allowed_ips=messenger.allowed_ips,
        )

    async def ping(self, body: dict, ctx: RequestContext) -> dict:
        """Who answers: node name, version, uptime and key fingerprint."""
        return {
            "node": settings.NODE_NAME,
            "version": proget_web.__version__,
            "uptime": round(time.time() - self.started_at, 3),
            "fingerprint": self.messenger.fingerprint,
        }

    def stop(self) -> None:
        """Ask the node to shut down (safe to call from a signal handler)."""
        self._stop.set()

    async def run(self) -> None:
        """Serve until stop() is called."""
        await self.server.start(
            self.messenger.endpoint, run_dir=self.messenger.run_dir, any_host=settings.NODE_IP or "0.0.0.0"
        )
        logger.info(
            "service node %s listening on %s (key %s)",
            settings.NODE_NAME, self.server.address, self.messenger.fingerprint,
        )
        try:
            await self._stop.wait()
        finally:
            logger.info("service node %s stopping", settings.NODE_NAME)
            await self.server.close()


async def serve(messenger: MessengerSettings) -> None:
    """Run a service node with SIGTERM/SIGINT wired to a graceful stop."""
    node = ServiceNode(messenger=messenger)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, node.stop)
    await node.run()
