"""The web node's HTTP server: daphne, changed so that no request body is ever held in memory whole.

- A request is answered from its headers alone when proget_web.request_gate refuses it (413 over the size cap,
  401 for an upload without credentials), before a byte of its body is read; stock daphne waits for all of it.
- An accepted body is spooled to a temp file by Twisted (as before), is not parsed as a form by Twisted, and
  reaches the app a chunk at a time as the app asks, instead of all at once into daphne's input queue.

Run it as `python -m proget_web.serve` with daphne's own arguments (the Procfile and the tests do).
"""
from __future__ import annotations

import asyncio
import io
import logging
from functools import partial
from typing import IO, Any

from daphne.cli import CommandLineInterface  # first: daphne.server installs the asyncio reactor Twisted needs
from daphne.http_protocol import HTTPFactory, WebRequest
from daphne.server import Server
from twisted.internet import defer
from twisted.internet.interfaces import ITCPTransport

from proget_web.request_gate import Refusal, body_refusal, header_refusal

logger = logging.getLogger(__name__)

# After a refusal the server still reads (and drops) what the client sends for this long, then aborts. Closing
# at once with unread input makes the kernel answer with a reset, which can destroy the refusal before the
# client reads it: the "lingering close" of Apache (2 s per read) and nginx.
LINGER_SECONDS = 2.0
# At shutdown, how long the cancelled tasks (requests, WebSocket consumers, the status link) get to end: a task
# that ignores its cancellation cannot hold the stop up.
STOP_SECONDS = 5.0
# How much body the app gets per message: a 100 MiB upload is a hundred messages (Django hops to a thread
# for each write once its spool is on disk), and the one chunk in flight is noise next to the process's RSS.
BODY_CHUNK_BYTES = 1024 * 1024


class BodyReceive:
    """The ASGI `receive` of one HTTP request: its body read from the spooled file a chunk per call, then
    whatever daphne queues (http.disconnect; its own empty body message is skipped)."""

    def __init__(self, *, body: IO[bytes], queue: asyncio.Queue) -> None:
        self.body: IO[bytes] | None = body
        self.queue = queue

    async def __call__(self) -> dict[str, Any]:
        if self.body is not None:
            # A read of the local spool file, as Twisted's writes to it are: on the loop, no thread.
            chunk = self.body.read(BODY_CHUNK_BYTES)
            more = len(chunk) == BODY_CHUNK_BYTES
            if not more:
                self.body.close()
                self.body = None
            return {"type": "http.request", "body": chunk, "more_body": more}
        while True:
            message = await self.queue.get()
            if message["type"] != "http.request":
                return message


class GuardedRequest(WebRequest):
    """daphne's request, refused from its headers when the gate says so, and never form-parsed by Twisted."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.refused = False
        self.received = 0  # body bytes so far: a chunked body announces no length
        self.body: IO[bytes] | None = None
        # Twisted would read a multipart body whole into memory to fill request.args, which daphne never uses.
        super().__init__(*args, parsePOSTFormSubmission=False, **kwargs)

    def gotLength(self, length: int | None) -> None:
        """All headers are in, no body yet: refuse here, or let Twisted open the body's spool file."""
        refusal = header_refusal(
            method=self.channel._command, target=self.channel._path, length=length,
            header_names={name.lower() for name, _ in self.requestHeaders.getAllRawHeaders()},
        )
        if refusal is not None:
            self._refuse(refusal)
        else:
            super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self.refused:
            return
        self.received += len(data)
        refusal = body_refusal(target=self.channel._path, received=self.received)
        if refusal is not None:
            self._refuse(refusal)
        else:
            super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if not self.refused:
            super().requestReceived(command, path, version)

    def process(self) -> Any:
        """daphne's process, but the body stays in its file for BodyReceive: daphne sees an empty one."""
        self.body, self.content = self.content, io.BytesIO()
        return super().process()

    def _refuse(self, refusal: Refusal) -> None:
        logger.info("refused %s %s before its body: %s %s", self.channel._command.decode("latin-1"),
                    self.channel._path.decode("latin-1"), refusal.status, refusal.message)
        self.refused = True
        self.requestHeaders.removeHeader(b"Expect")  # no "100 Continue" for a body that will not be read
        transport = self.channel.transport
        transport.write(refusal.response())
        if ITCPTransport.providedBy(transport):  # end of answer (FIN) now, keep dropping input a while
            transport.loseWriteConnection()
            self.channel.callLater(LINGER_SECONDS, transport.abortConnection)
        else:  # TLS cannot half-close
            self.channel.loseConnection()


class GuardedHTTPFactory(HTTPFactory):
    """daphne's HTTP factory, building GuardedRequest instead of WebRequest."""

    def buildProtocol(self, addr: Any) -> Any:
        protocol = super().buildProtocol(addr)
        protocol.requestFactory = GuardedRequest
        return protocol


class GuardedServer(Server):
    """daphne's server with GuardedHTTPFactory, and BodyReceive as each HTTP request's `receive`."""

    @property
    def http_factory(self) -> HTTPFactory:
        return self._http_factory

    @http_factory.setter
    def http_factory(self, factory: HTTPFactory) -> None:
        # Server.run builds `self.http_factory = HTTPFactory(self)`; this swaps in ours at that one place.
        self._http_factory = factory if isinstance(factory, GuardedHTTPFactory) else GuardedHTTPFactory(self)

    def create_application(self, protocol: Any, scope: dict[str, Any]) -> asyncio.Queue | None:
        """As daphne's, but a request that has a body file receives it through BodyReceive."""
        assert "application_instance" not in self.connections[protocol]
        queue: asyncio.Queue = asyncio.Queue()
        scope.setdefault("asgi", {"version": "3.0"})
        body = getattr(protocol, "body", None)
        receive = queue.get if body is None else BodyReceive(body=body, queue=queue)
        instance = self.application(scope=scope, receive=receive, send=partial(self.handle_reply, protocol))
        if protocol not in self.connections:
            return None
        self.connections[protocol]["application_instance"] = asyncio.ensure_future(
            instance, loop=asyncio.get_event_loop())
        return queue

    def kill_all_applications(self) -> defer.Deferred:
        """At shutdown: cancel the application instances, then whatever else the process runs, and wait for them.

        daphne's own raised KeyError at the first registered connection that had no application instance (with
        Status viewers open there was one such request) and so cancelled nothing: the consumers and the status
        link were left pending when the loop stopped, to be collected at interpreter exit, where closing a
        coroutine suspended in asyncio.Queue.get crashes CPython 3.11. Every SIGTERM with a Status viewer open
        ended in a segmentation fault (exit code -11), with stock daphne too.
        """
        instances = [details.get("application_instance") for details in self.connections.values()]
        logger.info("Killed %i pending application instances",
                    sum(1 for instance in instances if instance is not None and not instance.done()))
        return defer.Deferred.fromFuture(asyncio.ensure_future(_end_tasks()))


async def _end_tasks() -> None:
    """Cancel every task of the loop (application instances, the status link, its listeners), and those their ends
    start, until none is left or STOP_SECONDS are up."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STOP_SECONDS
    while (tasks := asyncio.all_tasks() - {asyncio.current_task()}) and loop.time() < deadline:
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks, timeout=deadline - loop.time())


class GuardedCommandLine(CommandLineInterface):
    """daphne's command line, running GuardedServer."""

    server_class = GuardedServer


def main() -> None:
    """`python -m proget_web.serve [daphne's arguments]`."""
    GuardedCommandLine.entrypoint()


if __name__ == "__main__":
    main()
