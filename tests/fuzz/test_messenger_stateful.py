"""Stateful property tests of the messenger: many connections, honest traffic interleaved with attacks.

Two hypothesis state machines:

- `SansIOMachine` drives pairs of sans-IO `protocol.Connection`s (client and server) in memory. Rules: connect
  (a new handshake, maybe with a rotated or stale key on either side), send (a random allowlisted kind, type and
  body, either way), deliver (pending frames in order, in random chunks), replay (an already-delivered frame, or
  one of another connection), reorder two frames, reflect a frame to its sender, flip a bit, truncate, rotate the
  key, kill a connection.
- `ServerMachine` drives the real server adapter (`MessengerServer` + `ServerConnection`, fed through in-memory
  transports on a private event loop, no sockets) with sans-IO clients, so the invariants cover dispatch to the
  handlers and the server's own counters (`stats`, incl. the `rejects` Counter).

Invariants after every step: every event a receiver returned was sent by its peer, in order, exactly once (a
delivered message is never duplicated and nothing else is ever dispatched; on the server: handler calls equal
the requests delivered, exactly once, in order); every tampered, replayed, reordered or reflected frame raises
RemoteProtocolError and closes (server: REJECT on the wire, the reason counted, the transport closed); a peer
holding another key fails with KeyMismatch (client) or bad-proof (server); counters only increase.

Bounded by default (50 examples x 30 steps each, a few seconds); PROGET_FUZZ_LONG=1 runs 1,000 x 100.
"""
from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from messenger.errors import KeyMismatch, LocalProtocolError, RemoteProtocolError
from messenger.limits import MAX_FRAME_BYTES, PROTOCOL_VERSION
from messenger.messages import ERROR_CODES, MESSAGE_TYPES
from messenger.protocol import (
    REJECT,
    Cancel,
    Connection,
    ErrorReply,
    Event,
    HandshakeComplete,
    Keepalive,
    KeepaliveAck,
    Reply,
    Request,
    Role,
    State,
    StreamItem,
)
from messenger.server import MessengerServer, RequestContext, ServerLimits
from messenger.server_connection import ServerConnection
from tests.examples import examples
from tests.fuzz.support import KEY, LONG
from tests.fuzz.targets import chunked, typed

MACHINE_SETTINGS = settings(
    max_examples=1000 if LONG else examples(50),
    stateful_step_count=100 if LONG else 30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    derandomize=not LONG,
    database=None,
)
HANDSHAKE_DONE = [HandshakeComplete(version=PROTOCOL_VERSION)]
# Feeding this after a damaged frame completes whatever length its header claims (at most MAX_FRAME_BYTES).
PADDING = bytes(MAX_FRAME_BYTES + 4)
_STATE_RANK = {State.HANDSHAKING: 0, State.OPEN: 1, State.CLOSED: 2}

JSON_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
BODIES = st.dictionaries(st.text(max_size=6), JSON_VALUE, max_size=4)
IDS = st.integers(0, 2**32 - 1)
PICK = st.integers(0, 2**16)  # picks one of the current connections / frames (modulo their count)
CUTS = st.lists(st.integers(0, 4096), max_size=4)
MAX_KEYS = 4  # key rotations per run (each one ends every connection of the server machine)
MAX_PAIRS = 4  # live connections per sans-IO run: enough for cross-connection replays


def canonical(event: Event) -> object:
    """A type-aware comparable form of an event (its bodies compared with `typed`)."""
    return (type(event).__name__, *(typed(value) for value in event))


def new_key(n: int) -> bytes:
    return bytes([n]) * 32 if n else KEY


class Nonces:
    """Distinct, reproducible handshake nonces for every connection a machine makes."""

    def __init__(self) -> None:
        self._counter = itertools.count(1)

    def __call__(self, n: int) -> bytes:
        return next(self._counter).to_bytes(n, "big")


# =====================================================================================================
# Sans-IO: client and server Connections against each other
# =====================================================================================================


@dataclass
class Lane:
    """One direction of one connection: what the sender sealed and how much the receiver took."""

    sender: Connection
    receiver: Connection
    frames: list[bytes] = field(default_factory=list)  # every frame sealed, in order
    sent: list[Event] = field(default_factory=list)  # the event each frame must become
    delivered: int = 0  # frames[:delivered] were fed to the receiver
    seen: list[Event] = field(default_factory=list)  # what the receiver returned

    @property
    def pending(self) -> list[bytes]:
        return self.frames[self.delivered :]


@dataclass
class Pair:
    number: int
    client: Connection
    server: Connection
    c2s: Lane
    s2c: Lane
    dead: bool = False

    def lane(self, to_server: bool) -> Lane:
        return self.c2s if to_server else self.s2c


class SansIOMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.nonces = Nonces()
        self.keys = [new_key(0)]
        self.pairs: list[Pair] = []
        self.counters: Counter[str] = Counter()
        self.last_counters: Counter[str] = Counter()
        self.last_state: dict[int, State] = {}

    # --- helpers ---

    def live(self) -> list[Pair]:
        return [pair for pair in self.pairs if not pair.dead]

    def has_live(self) -> bool:
        return bool(self.live())

    def lanes(self, pending: int = 0, delivered: int = 0) -> list[tuple[Pair, Lane]]:
        """Live lanes with at least `pending` undelivered and `delivered` delivered frames."""
        return [(pair, lane) for pair in self.live() for lane in (pair.c2s, pair.s2c)
                if len(lane.pending) >= pending and lane.delivered >= delivered]

    def has_pending(self) -> bool:
        return bool(self.lanes(pending=1))

    def has_two_pending(self) -> bool:
        return bool(self.lanes(pending=2))

    def has_sent(self) -> bool:
        return any(lane.frames for _, lane in self.lanes())

    def pick(self, index: int) -> Pair:
        live = self.live()
        return live[index % len(live)]

    def pick_lane(self, index: int, pending: int = 0, delivered: int = 0) -> tuple[Pair, Lane]:
        lanes = self.lanes(pending, delivered)
        return lanes[index % len(lanes)]

    def deliver_pending(self, lane: Lane, count: int, cuts: list[int]) -> None:
        frames = lane.pending[:count]
        if not frames:
            return
        events: list[Event] = []
        for piece in chunked(b"".join(frames), cuts):
            events += lane.receiver.receive_data(piece)
        expected = lane.sent[lane.delivered : lane.delivered + len(frames)]
        assert [canonical(e) for e in events] == [canonical(e) for e in expected]
        lane.seen += events
        lane.delivered += len(frames)
        self.counters["frames-delivered"] += len(frames)

    def attack(self, pair: Pair, lane: Lane, data: bytes, reasons: set[str]) -> None:
        """`data` reaches the receiver where it expects its next frame: it must fail and close, dispatching nothing."""
        error: RemoteProtocolError | None = None
        try:
            events = lane.receiver.receive_data(data)
            # A header that grew (bit flip) waits for the bytes it claims: once they are there, it must fail.
            assert events == [], events
            assert lane.receiver.has_partial_data or not data
            lane.receiver.receive_data(PADDING)
        except RemoteProtocolError as exc:
            error = exc
        assert error is not None, "a damaged frame was accepted"
        assert error.reason in reasons, error.reason
        assert lane.receiver.state is State.CLOSED
        with pytest.raises(RemoteProtocolError):  # closed for good: even the honest next frame is refused
            lane.receiver.receive_data(lane.pending[0] if lane.pending else b"\x00")
        with pytest.raises(LocalProtocolError):
            lane.receiver.send_keepalive()
        self.counters[f"reject:{error.reason}"] += 1
        pair.dead = True

    # --- rules ---

    @initialize()
    def first_connection(self) -> None:
        self.connect(client_age=0, server_age=0, cuts=[])

    def room(self) -> bool:
        return len(self.live()) < MAX_PAIRS

    @precondition(room)
    @rule(client_age=st.integers(0, 3), server_age=st.integers(0, 3), cuts=CUTS)
    def connect(self, client_age: int, server_age: int, cuts: list[int]) -> None:
        client_key = self.keys[-1 - min(client_age, len(self.keys) - 1)]
        server_key = self.keys[-1 - min(server_age, len(self.keys) - 1)]
        client = Connection(role=Role.CLIENT, key=client_key, random=self.nonces)
        server = Connection(role=Role.SERVER, key=server_key, random=self.nonces)
        for piece in chunked(client.initiate(), cuts):
            assert server.receive_data(piece) == []
        server_hello = server.data_to_send()
        if client_key != server_key:
            # The client sees the server proved another key; a client that would not check it cannot finish.
            with pytest.raises(KeyMismatch):
                client.receive_data(server_hello)
            assert client.state is State.CLOSED and client.data_to_send() == b""
            with pytest.raises(RemoteProtocolError, match="^bad-proof$"):
                server.receive_data(bytes(32))
            assert server.state is State.CLOSED
            self.counters["key-mismatch"] += 1
            return
        assert client.receive_data(server_hello) == HANDSHAKE_DONE
        events: list[Event] = []
        for piece in chunked(client.data_to_send(), cuts):
            events += server.receive_data(piece)
        assert events == HANDSHAKE_DONE
        assert client.state is server.state is State.OPEN
        self.pairs.append(Pair(len(self.pairs), client, server, Lane(client, server), Lane(server, client)))
        self.counters["handshakes"] += 1

    @precondition(has_live)
    @rule(pick=PICK, to_server=st.booleans(), data=st.data())
    def send(self, pick: int, to_server: bool, data: st.DataObject) -> None:
        pair = self.pick(pick)
        lane = pair.lane(to_server)
        sender = lane.sender
        kinds = ["request", "cancel", "keepalive", "ack"] if to_server else [
            "reply", "error", "stream", "cancel", "keepalive", "ack"]
        kind = data.draw(st.sampled_from(kinds), label="kind")
        id = data.draw(IDS, label="id") if kind not in ("keepalive", "ack") else 0
        if kind == "request":
            type, body = data.draw(st.sampled_from(MESSAGE_TYPES)), data.draw(BODIES)
            frame, event = sender.send_request(id=id, type=type, body=body), Request(id=id, type=type, body=body)
        elif kind == "reply":
            body = data.draw(BODIES)
            frame, event = sender.send_reply(id=id, body=body), Reply(id=id, body=body)
        elif kind == "stream":
            body = data.draw(BODIES)
            frame, event = sender.send_stream(id=id, body=body), StreamItem(id=id, body=body)
        elif kind == "error":
            message, code = data.draw(st.text(max_size=40)), data.draw(st.sampled_from(ERROR_CODES))
            frame, event = (sender.send_error(id=id, message=message, code=code),
                            ErrorReply(id=id, message=message, code=code))
        elif kind == "cancel":
            frame, event = sender.send_cancel(id=id), Cancel(id=id)
        elif kind == "keepalive":
            frame, event = sender.send_keepalive(), Keepalive()
        else:
            frame, event = sender.send_keepalive_ack(), KeepaliveAck()
        lane.frames.append(frame)
        lane.sent.append(event)
        self.counters["frames-sent"] += 1

    @precondition(has_live)
    @rule(pick=PICK, to_server=st.booleans(), count=st.integers(2, 6), data=st.data())
    def send_several(self, pick: int, to_server: bool, count: int, data: st.DataObject) -> None:
        for _ in range(count):
            self.send(pick, to_server, data)

    @precondition(has_pending)
    @rule(pick=PICK, count=st.integers(1, 5), cuts=CUTS)
    def deliver(self, pick: int, count: int, cuts: list[int]) -> None:
        _, lane = self.pick_lane(pick, pending=1)
        self.deliver_pending(lane, count, cuts)

    @precondition(has_pending)
    @rule(pick=PICK, cuts=CUTS)
    def deliver_all(self, pick: int, cuts: list[int]) -> None:
        _, lane = self.pick_lane(pick, pending=1)
        self.deliver_pending(lane, len(lane.pending), cuts)

    def has_delivered(self) -> bool:
        return bool(self.lanes(delivered=1))

    def has_other_connections(self) -> bool:
        return len(self.pairs) > 1 and self.has_live()

    @precondition(has_delivered)
    @rule(pick=PICK, frame=st.integers(0, 3))
    def replay(self, pick: int, frame: int) -> None:
        """A frame this lane already delivered, again (`frame` counts back from the last one)."""
        pair, lane = self.pick_lane(pick, delivered=1)
        self.attack(pair, lane, lane.frames[lane.delivered - 1 - frame % lane.delivered], {"bad-frame"})

    @precondition(has_other_connections)
    @rule(pick=PICK, source=PICK, frame=PICK, to_server=st.booleans())
    def replay_from_another_connection(self, pick: int, source: int, frame: int, to_server: bool) -> None:
        """Any frame recorded on another connection (alive or not), in the same direction."""
        pair = self.pick(pick)
        lane = pair.lane(to_server)
        others = [p.lane(to_server) for p in self.pairs if p is not pair and p.lane(to_server).frames]
        if not others:
            return
        recorded = others[source % len(others)].frames
        self.attack(pair, lane, recorded[frame % len(recorded)], {"bad-frame"})

    @precondition(has_two_pending)
    @rule(pick=PICK, both=st.booleans())
    def reorder(self, pick: int, both: bool) -> None:
        pair, lane = self.pick_lane(pick, pending=2)
        first, second = lane.pending[:2]
        self.attack(pair, lane, second + first if both else second, {"bad-frame"})

    @precondition(has_sent)
    @rule(pick=PICK, frame=PICK)
    def reflect(self, pick: int, frame: int) -> None:
        """A frame sent one way, fed back to its own sender (where it expects the peer's next frame)."""
        candidates = [(pair, lane) for pair, lane in self.lanes() if lane.frames]
        pair, lane = candidates[pick % len(candidates)]
        back = pair.s2c if lane is pair.c2s else pair.c2s
        self.attack(pair, back, lane.frames[frame % len(lane.frames)], {"bad-frame"})

    @precondition(has_pending)
    @rule(pick=PICK, bit=st.integers(0, 2**20))
    def flip_bit(self, pick: int, bit: int) -> None:
        pair, lane = self.pick_lane(pick, pending=1)
        frame = bytearray(lane.pending[0])
        bit %= len(frame) * 8
        frame[bit // 8] ^= 1 << (bit % 8)
        self.attack(pair, lane, bytes(frame), {"bad-frame", "frame-size"})

    @precondition(has_pending)
    @rule(pick=PICK, cut=PICK, then=st.sampled_from(["next-frames", "hang-up"]))
    def truncate(self, pick: int, cut: int, then: str) -> None:
        """A frame cut short: nothing is dispatched; what follows it (the next frames, padding) then fails it."""
        pair, lane = self.pick_lane(pick, pending=1)
        frame = lane.pending[0]
        head = frame[: 1 + cut % (len(frame) - 1)]
        assert lane.receiver.receive_data(head) == []
        assert lane.receiver.has_partial_data
        if then == "hang-up":  # the stream ends mid-frame: the peer is gone, nothing was dispatched
            pair.dead = True
            self.counters["killed"] += 1
            return
        self.attack(pair, lane, b"".join(lane.pending[1:]), {"bad-frame", "frame-size"})

    def few_keys(self) -> bool:
        return len(self.keys) < MAX_KEYS

    @precondition(few_keys)
    @rule()
    def rotate_key(self) -> None:
        """New connections use the new key (connect's ages pick it); existing sessions keep their session keys."""
        self.keys.append(new_key(len(self.keys)))
        self.counters["rotations"] += 1

    @precondition(has_live)
    @rule(pick=PICK)
    def kill(self, pick: int) -> None:
        self.pick(pick).dead = True
        self.counters["killed"] += 1

    # --- invariants ---

    @invariant()
    def delivered_exactly_once_in_order(self) -> None:
        for pair in self.pairs:
            for lane in (pair.c2s, pair.s2c):
                assert [canonical(e) for e in lane.seen] == [canonical(e) for e in lane.sent[: lane.delivered]]

    @invariant()
    def states_only_move_forward(self) -> None:
        for pair in self.pairs:
            for conn in (pair.client, pair.server):
                before = self.last_state.get(id(conn), State.HANDSHAKING)
                assert _STATE_RANK[conn.state] >= _STATE_RANK[before], (before, conn.state)
                self.last_state[id(conn)] = conn.state
            if not pair.dead:
                assert pair.client.state is pair.server.state is State.OPEN

    @invariant()
    def counters_only_increase(self) -> None:
        assert all(self.counters[name] >= count for name, count in self.last_counters.items())
        assert self.counters["frames-delivered"] == sum(len(p.c2s.seen) + len(p.s2c.seen) for p in self.pairs)
        self.last_counters = Counter(self.counters)


# =====================================================================================================
# The real server adapter (MessengerServer + ServerConnection) over in-memory transports
# =====================================================================================================

MAX_CONNECTIONS = 3
STREAM_TYPE = "status.subscribe"
REQUEST_TYPES = [t for t in MESSAGE_TYPES if t != STREAM_TYPE]


class MemoryTransport:
    """Just enough of asyncio.Transport for ServerConnection: records writes; close/abort report the loss."""

    def __init__(self, loop: asyncio.AbstractEventLoop, protocol: ServerConnection, port: int) -> None:
        self._loop = loop
        self._protocol = protocol
        self._port = port
        self.written = bytearray()
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", self._port) if name == "peername" else default

    def write(self, data: bytes) -> None:
        assert not self.closed, "write after close"
        self.written += data

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._loop.call_soon(self._protocol.connection_lost, None)

    abort = close

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def take(self) -> bytes:
        data = bytes(self.written)
        self.written.clear()
        return data


@dataclass
class Peer:
    port: int
    client: Connection
    protocol: ServerConnection
    transport: MemoryTransport
    pending: list[bytes] = field(default_factory=list)  # client frames not yet delivered
    delivered: list[bytes] = field(default_factory=list)
    sent: list[tuple[str, Any]] = field(default_factory=list)  # per pending frame: ("request", (id, type, body)), ...
    awaiting: dict[int, list[object]] = field(default_factory=dict)  # id -> the server frames still expected
    next_id: int = 1
    dead: bool = False


class ServerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.nonces = Nonces()
        self.keys = [new_key(0)]
        self.calls: list[tuple[str, int, str, object]] = []  # what the handlers saw
        self.expected_calls: list[tuple[str, int, str, object]] = []
        self.expected_rejects: Counter[str] = Counter()
        self.frames_to_server = 0
        self.frames_to_clients = 0
        self.peers: list[Peer] = []
        self.ports = itertools.count(40000)
        self.last_stats: dict[str, Any] = {}
        self.server = MessengerServer(
            key=self.keys[0],
            handlers={name: self.handler for name in REQUEST_TYPES},
            stream_handlers={STREAM_TYPE: self.stream},
            limits=ServerLimits(handshake_timeout=3600, hello_timeout=3600, frame_timeout=3600, idle_timeout=3600,
                                max_connections=MAX_CONNECTIONS),
        )

    def teardown(self) -> None:
        for peer in self.peers:
            peer.transport.close()
        self.settle()
        self.loop.close()

    # --- server side ---

    def handler(self, body: dict, context: RequestContext) -> dict:
        self.calls.append((context.peer, context.id, context.type, typed(body)))
        return {"type": context.type, "echo": body}

    def stream(self, body: dict, context: RequestContext) -> AsyncIterator[dict]:
        self.calls.append((context.peer, context.id, context.type, typed(body)))  # when subscribed, not when pumped
        return self._items(len(body) % 3)

    @staticmethod
    async def _items(count: int) -> AsyncIterator[dict]:
        for i in range(count):
            yield {"i": i}

    # --- helpers ---

    def settle(self) -> None:
        """Run the loop until the server's tasks are done and every transport loss is reported."""
        for _ in range(20):
            self.loop.run_until_complete(asyncio.sleep(0))
        for peer in self.peers:
            if not peer.dead:
                self.read_replies(peer)

    def read_replies(self, peer: Peer) -> None:
        for event in peer.client.receive_data(peer.transport.take()):
            self.frames_to_clients += 1
            id = getattr(event, "id", 0)
            expected = peer.awaiting.get(id)
            assert expected, f"unexpected {event!r}"
            assert canonical(event) == canonical(expected.pop(0))  # type: ignore[arg-type]
            if not expected:
                del peer.awaiting[id]

    def live(self) -> list[Peer]:
        return [peer for peer in self.peers if not peer.dead]

    def has_live(self) -> bool:
        return bool(self.live())

    def with_pending(self, count: int = 1) -> list[Peer]:
        return [peer for peer in self.live() if len(peer.pending) >= count]

    def has_pending(self) -> bool:
        return bool(self.with_pending())

    def has_two_pending(self) -> bool:
        return bool(self.with_pending(2))

    def can_replay(self) -> bool:
        return self.has_live() and any(peer.delivered for peer in self.peers)

    def few_keys(self) -> bool:
        return len(self.keys) < MAX_KEYS

    def pick(self, index: int) -> Peer:
        live = self.live()
        return live[index % len(live)]

    async def _accept(self, port: int) -> tuple[ServerConnection, MemoryTransport]:
        protocol = self.server._new_connection()
        transport = MemoryTransport(self.loop, protocol, port)
        protocol.connection_made(transport)  # type: ignore[arg-type]
        return protocol, transport

    def attack(self, peer: Peer, data: bytes, reasons: set[str]) -> None:
        """The server must answer REJECT, count one of `reasons`, close, and call no handler."""
        calls_before = len(self.calls)
        protocol = peer.protocol
        protocol.data_received(data)
        if not peer.transport.closed:  # a grown length waits for its bytes
            assert peer.transport.written == b""
            protocol.data_received(PADDING)
        assert peer.transport.closed
        assert peer.transport.take() == REJECT
        after = self.server.stats.rejects
        [reason] = [r for r in reasons if after[r] > self.expected_rejects[r]]
        self.expected_rejects[reason] += 1
        assert len(self.calls) == calls_before
        peer.dead = True
        self.settle()

    # --- rules ---

    @initialize()
    def first_connection(self) -> None:
        self.connect(age=0)

    def room(self) -> bool:
        return len(self.live()) < MAX_CONNECTIONS

    def full(self) -> bool:
        return len(self.live()) == MAX_CONNECTIONS

    @precondition(full)
    @rule()
    def connect_over_the_cap(self) -> None:
        self.connect(age=0)

    @precondition(room)
    @rule(age=st.integers(0, 2))
    def connect(self, age: int) -> None:
        key = self.keys[-1 - min(age, len(self.keys) - 1)]
        port = next(self.ports)
        full = len(self.server.connections) >= MAX_CONNECTIONS
        protocol, transport = self.loop.run_until_complete(self._accept(port))
        if full:
            assert transport.closed and transport.written == b""
            self.expected_rejects["connection-cap"] += 1
            self.settle()
            return
        client = Connection(role=Role.CLIENT, key=key, random=self.nonces)
        protocol.data_received(client.initiate())
        server_hello = transport.take()
        if key != self.server.key:
            with pytest.raises(KeyMismatch):
                client.receive_data(server_hello)
            transport.close()  # the client hangs up: the server counts an aborted handshake
            self.expected_rejects["handshake-aborted"] += 1
            self.settle()
            return
        assert client.receive_data(server_hello) == HANDSHAKE_DONE
        protocol.data_received(client.data_to_send())
        assert transport.written == b"" and not transport.closed
        self.peers.append(Peer(port, client, protocol, transport))

    @precondition(has_live)
    @rule(pick=PICK, kind=st.sampled_from(["request", "request", "stream", "keepalive"]),
          type=st.sampled_from(REQUEST_TYPES), body=BODIES)
    def send(self, pick: int, kind: str, type: str, body: dict) -> None:
        peer = self.pick(pick)
        if kind == "keepalive":
            peer.pending.append(peer.client.send_keepalive())
            peer.sent.append(("keepalive", None))
            return
        type = STREAM_TYPE if kind == "stream" else type
        id, peer.next_id = peer.next_id, peer.next_id + 1
        peer.pending.append(peer.client.send_request(id=id, type=type, body=body))
        peer.sent.append((kind, (id, type, body)))

    @precondition(has_live)
    @rule(pick=PICK, types=st.lists(st.sampled_from(REQUEST_TYPES + [STREAM_TYPE]), min_size=2, max_size=6),
          body=BODIES)
    def send_several(self, pick: int, types: list[str], body: dict) -> None:
        for type in types:
            self.send(pick, "stream" if type == STREAM_TYPE else "request", type, body)

    @precondition(has_live)
    @rule(pick=PICK, types=st.lists(st.sampled_from(REQUEST_TYPES + [STREAM_TYPE]), min_size=1, max_size=4),
          body=BODIES, cuts=CUTS)
    def round_trip(self, pick: int, types: list[str], body: dict, cuts: list[int]) -> None:
        """Honest traffic: a few requests (and whatever was pending), delivered in random chunks, all answered."""
        self.send_several(pick, types, body)
        peer = self.pick(pick)
        self.deliver_to(peer, len(peer.pending), cuts)

    @precondition(has_pending)
    @rule(pick=PICK, count=st.integers(1, 4), cuts=CUTS)
    def deliver(self, pick: int, count: int, cuts: list[int]) -> None:
        peers = self.with_pending()
        self.deliver_to(peers[pick % len(peers)], count, cuts)

    def deliver_to(self, peer: Peer, count: int, cuts: list[int]) -> None:
        frames, sent = peer.pending[:count], peer.sent[:count]
        if not frames:
            return
        del peer.pending[:count], peer.sent[:count]
        peer.delivered += frames
        self.frames_to_server += len(frames)
        for kind, what in sent:
            if kind == "keepalive":
                peer.awaiting.setdefault(0, []).append(KeepaliveAck())
                continue
            id, type, body = what
            self.expected_calls.append((f"127.0.0.1:{peer.port}", id, type, typed(body)))
            if kind == "stream":
                items = [StreamItem(id=id, body={"i": i}) for i in range(len(body) % 3)]
                peer.awaiting[id] = [Reply(id=id, body={"subscribed": True}), *items, Cancel(id=id)]
            else:
                peer.awaiting[id] = [Reply(id=id, body={"type": type, "echo": body})]
        for piece in chunked(b"".join(frames), cuts):
            peer.protocol.data_received(piece)
        self.settle()
        assert not peer.transport.closed

    @precondition(can_replay)
    @rule(pick=PICK, source=PICK, cross=st.booleans())
    def replay(self, pick: int, source: int, cross: bool) -> None:
        peer = self.pick(pick)
        others = [p for p in self.peers if p is not peer and p.delivered]
        if cross and others:
            recorded = others[source % len(others)].delivered
        elif peer.delivered:
            recorded = peer.delivered
        else:
            return
        self.attack(peer, recorded[source % len(recorded)], {"bad-frame"})

    @precondition(has_two_pending)
    @rule(pick=PICK)
    def reorder(self, pick: int) -> None:
        peers = self.with_pending(2)
        peer = peers[pick % len(peers)]
        self.attack(peer, peer.pending[1] + peer.pending[0], {"bad-frame"})

    @precondition(has_live)
    @rule(pick=PICK)
    def reflect(self, pick: int) -> None:
        """A frame the server sent (its KeepaliveAck), captured on the wire and fed back to it."""
        peer = self.pick(pick)
        self.deliver_to(peer, len(peer.pending), [])
        peer.protocol.data_received(peer.client.send_keepalive())
        self.frames_to_server += 1
        ack = peer.transport.take()
        assert peer.client.receive_data(ack) == [KeepaliveAck()]
        self.frames_to_clients += 1
        self.attack(peer, ack, {"bad-frame"})

    @precondition(has_pending)
    @rule(pick=PICK, bit=st.integers(0, 2**20))
    def flip_bit(self, pick: int, bit: int) -> None:
        peers = self.with_pending()
        peer = peers[pick % len(peers)]
        frame = bytearray(peer.pending[0])
        bit %= len(frame) * 8
        frame[bit // 8] ^= 1 << (bit % 8)
        self.attack(peer, bytes(frame), {"bad-frame", "frame-size"})

    @precondition(has_pending)
    @rule(pick=PICK, cut=PICK)
    def truncate(self, pick: int, cut: int) -> None:
        peers = self.with_pending()
        peer = peers[pick % len(peers)]
        frame = peer.pending[0]
        peer.protocol.data_received(frame[: 1 + cut % (len(frame) - 1)])
        assert not peer.transport.closed and peer.transport.written == b""
        self.attack(peer, b"".join(peer.pending[1:]), {"bad-frame", "frame-size"})

    @precondition(few_keys)
    @rule()
    def rotate_key(self) -> None:
        """server.set_key: new connections need the new key; every existing connection is closed (no reject)."""
        self.keys.append(new_key(len(self.keys)))
        self.server.set_key(self.keys[-1])
        for peer in self.peers:
            peer.dead = True
        self.settle()
        assert not self.server.connections

    @precondition(has_live)
    @rule(pick=PICK)
    def kill(self, pick: int) -> None:
        peer = self.pick(pick)
        peer.transport.close()
        peer.dead = True
        self.settle()

    # --- invariants ---

    @invariant()
    def handlers_saw_exactly_the_delivered_requests(self) -> None:
        assert self.calls == self.expected_calls

    @invariant()
    def every_reply_arrived(self) -> None:
        for peer in self.live():
            assert peer.awaiting == {}, peer.awaiting

    @invariant()
    def stats_match_and_only_increase(self) -> None:
        stats = self.server.stats.as_dict()
        assert stats["rejects"] == dict(+self.expected_rejects)
        assert stats["frames_in"] == self.frames_to_server
        assert stats["frames_out"] == self.frames_to_clients
        assert stats["connections_open"] == len(self.server.connections) == len(self.live())
        for name, value in self.last_stats.items():
            if name == "rejects":
                assert all(stats["rejects"].get(reason, 0) >= count for reason, count in value.items())
            elif name != "connections_open":
                assert stats[name] >= value, name
        self.last_stats = stats


TestSansIO = SansIOMachine.TestCase
TestSansIO.settings = MACHINE_SETTINGS
TestServer = ServerMachine.TestCase
TestServer.settings = MACHINE_SETTINGS
