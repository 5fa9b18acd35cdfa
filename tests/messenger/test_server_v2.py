"""Protocol v2 over real sockets: batch records from the stream pump, v1 peers served both ways, and the
per-connection budgets counting every envelope of a batch (issue 16, item 1)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from messenger.client import MessengerClient
from messenger.limits import MAX_REQUESTS_IN_FLIGHT, MAX_STREAMS_PER_CONNECTION
from messenger.messages import TOO_MANY_STREAMS
from messenger.protocol import REJECT, Cancel, Connection, ErrorReply, Reply, Request, Role, StreamItem
from messenger.server import MessengerServer, RequestContext
from messenger.server_connection import ServerConnection
from tests.messenger.support import KEY, InFlight, eventually, run
from tests.messenger.test_server import LIMITS, expect_reject, handshake, ping, serving

ITEMS = 200
ITEM = {"p": "x" * 480}


@pytest.fixture(params=["pipe", "tcp"])
def transport(request: pytest.FixtureRequest) -> str:
    return request.param


async def flood(body: dict, context: RequestContext) -> AsyncIterator[dict]:
    for _ in range(body["count"]):
        yield ITEM


async def read_stream(peer, id: int) -> tuple[list, int]:  # noqa: ANN001 - tests.messenger.test_server.RawPeer
    """Every event up to the server's CANCEL of stream `id`, and how many frames carried them."""
    events: list = []
    frames = 0
    while Cancel(id=id) not in events:
        events += peer.conn.receive_data(await peer.read_frame())
        frames += 1
    return events, frames


@pytest.mark.parametrize("version", [1, 2])
def test_stream_items_leave_in_batch_records_to_v2_and_one_frame_each_to_v1(
    transport: str, tmp_path: Path, version: int
) -> None:
    async def main() -> None:
        async with serving(transport, tmp_path, stream_handlers={"status.subscribe": flood}) as h:
            peer = await handshake(h, version=version)
            assert peer.conn.version == version
            peer.writer.write(peer.conn.send_request(id=1, type="status.subscribe", body={"count": ITEMS}))
            events, frames = await read_stream(peer, 1)
            assert events == [Reply(id=1, body={"subscribed": True}), *[StreamItem(id=1, body=ITEM)] * ITEMS,
                              Cancel(id=1)]
            if version == 1:
                assert frames == len(events)
            else:  # a v2 peer gets what each loop tick produced sealed together: far fewer records than items
                assert frames <= ITEMS // 10
            assert h.server.stats.frames_out == len(events)  # envelopes, whatever the records

    run(main())


def test_a_batch_of_requests_counts_every_request_against_the_in_flight_cap(transport: str, tmp_path: Path) -> None:
    counter = InFlight()
    handlers = {"ping": ping, "trigger.nudge": counter.work}
    limits = dataclasses.replace(LIMITS, handler_slots=10 * MAX_REQUESTS_IN_FLIGHT)

    async def main() -> None:
        async with serving(transport, tmp_path, handlers=handlers, limits=limits) as h:
            peer = await handshake(h)
            count = 5 * MAX_REQUESTS_IN_FLIGHT
            peer.writer.write(peer.conn.send_batch(
                [Request(id=i, type="trigger.nudge", body={"n": i}) for i in range(1, count + 1)]))
            replies: list = []
            while len(replies) < count:
                replies += peer.conn.receive_data(await peer.read_frame())
            assert sorted((reply.id, reply.body["n"]) for reply in replies) == [(i, i) for i in range(1, count + 1)]
            assert counter.most == MAX_REQUESTS_IN_FLIGHT
            assert h.server.stats.frames_in == count
            await peer.ping(id=count + 1)

    run(main())


def test_a_batch_of_subscribes_gets_at_most_the_stream_cap(transport: str, tmp_path: Path) -> None:
    async def endless(body: dict, context: RequestContext) -> AsyncIterator[dict]:
        yield {"snapshot": True}
        await asyncio.Event().wait()

    async def main() -> None:
        async with serving(transport, tmp_path, stream_handlers={"status.subscribe": endless}) as h:
            peer = await handshake(h)
            count = 3 * MAX_STREAMS_PER_CONNECTION
            peer.writer.write(peer.conn.send_batch(
                [Request(id=i, type="status.subscribe", body={}) for i in range(1, count + 1)]))
            answers: dict[type, list] = {Reply: [], ErrorReply: [], StreamItem: []}
            while len(answers[Reply]) + len(answers[ErrorReply]) < count:
                for event in peer.conn.receive_data(await peer.read_frame()):
                    answers[type(event)].append(event)
            assert [reply.id for reply in answers[Reply]] == list(range(1, MAX_STREAMS_PER_CONNECTION + 1))
            assert all("too many streams" in error.message and error.code == TOO_MANY_STREAMS
                       for error in answers[ErrorReply])
            assert len(answers[ErrorReply]) == count - MAX_STREAMS_PER_CONNECTION

    run(main())


def test_an_empty_batch_record_is_rejected_and_counted(transport: str, tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(transport, tmp_path) as h:
            peer = await handshake(h)
            peer.writer.write(peer.conn._seal_envelope(bytes([8, 0, 0, 0, 0, 0])))  # authentic, but holds nothing
            await expect_reject(peer.reader)
            await eventually(lambda: h.server.stats.rejects["bad-message"] == 1)
            await h.assert_ping_works()

    run(main())


def test_a_v1_client_is_served_by_a_v2_server(transport: str, tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(transport, tmp_path, stream_handlers={"status.subscribe": flood}) as h:
            client = MessengerClient(endpoint=h.endpoint, key=KEY, run_dir=h.run_dir, protocol_version=1)
            try:
                assert (await client.request("ping", {"n": 1}))["pong"] is True
                [conn] = h.server.connections
                assert conn._conn.version == 1
                async with client.subscribe("status.subscribe", {"count": 50}) as items:
                    assert [item async for item in items] == [ITEM] * 50
            finally:
                await client.close()

    run(main())


def test_a_v2_client_falls_back_to_v1_with_a_v1_server(transport: str, tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(transport, tmp_path, stream_handlers={"status.subscribe": flood},
                           protocol_version=1) as h:
            client = h.client()
            try:
                assert (await client.request("ping", {"n": 1}))["pong"] is True
                assert h.server.stats.rejects["unknown-version"] == 1  # the v2 hello, refused as v1 code does
                [conn] = h.server.connections
                assert conn._conn.version == 1
                async with client.subscribe("status.subscribe", {"count": 50}) as items:
                    assert [item async for item in items] == [ITEM] * 50
            finally:
                await client.close()

    run(main())


class RecordingTransport:
    """A transport that keeps what is written (the server connection driven by hand, no socket)."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default

    def get_write_buffer_size(self) -> int:
        return 0

    def close(self) -> None:
        self.closed = True

    abort = close

    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...


def test_a_protocol_error_while_a_batch_waits_to_be_sealed_still_answers_reject() -> None:
    """A stream's items wait (unsealed) for the end of the loop tick; a bad frame arriving first must not find the
    connection unable to seal them: the peer gets REJECT and the transport is closed."""

    async def main() -> None:
        server = MessengerServer(key=KEY, handlers={"ping": ping}, limits=LIMITS)
        transport = RecordingTransport()
        server_side = ServerConnection(server)
        server_side.connection_made(transport)  # type: ignore[arg-type]
        client = Connection(role=Role.CLIENT, key=KEY)
        server_side.data_received(client.initiate())
        client.receive_data(b"".join(transport.written))
        server_side.data_received(client.data_to_send())
        assert server_side.authenticated
        server_side._out = [server_side._conn.encode(StreamItem(id=1, body={"i": 1}))]  # a pump's queued item
        server_side.data_received(b"\x00\x00\x00\x01" + bytes(40))  # a frame length below the minimum
        assert transport.written[-1] == REJECT and transport.closed
        assert server.stats.rejects["frame-size"] == 1
        server_side.connection_lost(None)

    run(main())
