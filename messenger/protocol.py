"""The sans-IO messenger connection: handshake state machine and frame codec (bytes in, events out).

No networking here (like h11): the asyncio adapters feed received bytes to `receive_data` and write
what `initiate`, `data_to_send`, `send_*`, `send_batch`/`seal` and `reject` return. Guarantees: no event
but HandshakeComplete before the peer proved the key; every frame is authenticated, in order and in
its own direction; the first violation closes the connection for good. Protocol v2 (negotiated in the
hellos' version byte) seals several envelopes as one batch record; a v1 peer gets one frame per envelope.
"""

import enum
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import FrozenInstanceError
from operator import itemgetter
from typing import Any, Self

from messenger import crypto
from messenger.errors import InvalidKey, KeyMismatch, LocalProtocolError, RemoteProtocolError
from messenger.limits import (
    BATCH_ITEM_PREFIX_BYTES,
    ENVELOPE_HEADER_BYTES,
    KEY_BYTES,
    KEY_HINT_BYTES,
    LENGTH_PREFIX_BYTES,
    MAGIC,
    MAX_BATCH_ENVELOPES,
    MAX_FRAME_BYTES,
    MIN_SEALED_BYTES,
    NONCE_BYTES,
    PROOF_BYTES,
    PROTOCOL_VERSION,
    PROTOCOL_VERSIONS,
    TAG_BYTES,
)
from messenger.messages import (
    BATCH_KIND,
    REQUEST_CODES,
    UNSPECIFIED,
    Kind,
    decode_envelope,
    encode_batch,
    encode_envelope,
    encode_with_body,
    error_body,
    split_batch,
)

# The one uniform wire error: MAGIC then four zero bytes (version 0, which no hello carries).
REJECT = MAGIC + bytes(4)
_HELLO_HEAD_BYTES = len(MAGIC) + 1  # MAGIC | version
# A batch record's own bytes: the tag, the batch header; each envelope adds its length prefix.
_RECORD_BASE_BYTES = TAG_BYTES + ENVELOPE_HEADER_BYTES
CLIENT_HELLO_BYTES = _HELLO_HEAD_BYTES + NONCE_BYTES
SERVER_HELLO_BYTES = _HELLO_HEAD_BYTES + NONCE_BYTES + PROOF_BYTES
CLIENT_FINISH_BYTES = PROOF_BYTES


class Role(enum.Enum):
    CLIENT = "client"
    SERVER = "server"


class State(enum.Enum):
    HANDSHAKING = "handshaking"
    OPEN = "open"
    CLOSED = "closed"


class _Stage(enum.Enum):
    """Where the handshake is (internal; `State` is the public view)."""

    NEW = enum.auto()  # client before initiate()
    AWAIT_CLIENT_HELLO = enum.auto()
    AWAIT_SERVER_HELLO = enum.auto()
    AWAIT_CLIENT_FINISH = enum.auto()
    DONE = enum.auto()


class _Event(tuple):
    """Base of the events: immutable, keyword-only, equal only to an event of the same type.

    Events are tuple subclasses rather than frozen dataclasses because one is built per received frame:
    `tuple.__new__(Request, (id, type, body))` costs a fifth of a frozen dataclass's __init__. They
    behave like the frozen, kw_only dataclasses they replace (assignment raises FrozenInstanceError).
    """

    __slots__ = ()
    _fields: tuple[str, ...] = ()

    def __new__(cls, **fields: Any) -> Self:
        if fields.keys() != set(cls._fields):
            raise TypeError(f"{cls.__name__}() takes exactly the keyword arguments {', '.join(cls._fields) or 'none'}")
        return _new_tuple(cls, [fields[name] for name in cls._fields])

    def __setattr__(self, name: str, value: object) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and tuple.__eq__(self, other)  # type: ignore[arg-type]

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash((type(self), tuple(self)))

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={value!r}" for name, value in zip(self._fields, self, strict=True))
        return f"{type(self).__name__}({fields})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), tuple(self)))


def _rebuild(cls: type[_Event], values: tuple[Any, ...]) -> _Event:
    return _new_tuple(cls, values)


_new_tuple = tuple.__new__


class HandshakeComplete(_Event):
    __slots__ = ()
    _fields = ("version",)
    version: int = property(itemgetter(0))  # type: ignore[assignment]


class Request(_Event):
    __slots__ = ()
    _fields = ("id", "type", "body")
    id: int = property(itemgetter(0))  # type: ignore[assignment]
    type: str = property(itemgetter(1))  # type: ignore[assignment]
    body: dict = property(itemgetter(2))  # type: ignore[assignment]


class Reply(_Event):
    __slots__ = ()
    _fields = ("id", "body")
    id: int = property(itemgetter(0))  # type: ignore[assignment]
    body: dict = property(itemgetter(1))  # type: ignore[assignment]


class ErrorReply(_Event):
    __slots__ = ()
    _fields = ("id", "message", "code")
    id: int = property(itemgetter(0))  # type: ignore[assignment]
    message: str = property(itemgetter(1))  # type: ignore[assignment]
    code: str = property(itemgetter(2))  # type: ignore[assignment]  # messenger.messages' ERROR codes


class StreamItem(_Event):
    __slots__ = ()
    _fields = ("id", "body")
    id: int = property(itemgetter(0))  # type: ignore[assignment]
    body: dict = property(itemgetter(1))  # type: ignore[assignment]


class Cancel(_Event):
    __slots__ = ()
    _fields = ("id",)
    id: int = property(itemgetter(0))  # type: ignore[assignment]


class Keepalive(_Event):
    __slots__ = ()


class KeepaliveAck(_Event):
    __slots__ = ()


Event = HandshakeComplete | Request | Reply | ErrorReply | StreamItem | Cancel | Keepalive | KeepaliveAck

_KEEPALIVE = Keepalive()
_KEEPALIVE_ACK = KeepaliveAck()
_BOTH_WAYS = frozenset({Kind.CANCEL, Kind.KEEPALIVE, Kind.KEEPALIVE_ACK})
# What each role may send; a role receives exactly what its peer may send.
_SENDS = {
    Role.CLIENT: _BOTH_WAYS | {Kind.REQUEST},
    Role.SERVER: _BOTH_WAYS | {Kind.REPLY, Kind.ERROR, Kind.STREAM},
}


def _frame_length(header: bytes) -> int:
    """The sealed length in a 4-byte frame header; RemoteProtocolError unless it is within the limits."""
    length = int.from_bytes(header, "big")
    if not MIN_SEALED_BYTES <= length <= MAX_FRAME_BYTES:
        # REJECT read as a length is ~1.35e9, far above the cap: it can never be a frame header.
        raise RemoteProtocolError("rejected" if header == MAGIC else "frame-size")
    return length


_REQUEST, _REPLY, _ERROR, _STREAM, _CANCEL, _KEEPALIVE_KIND = (
    Kind.REQUEST,
    Kind.REPLY,
    Kind.ERROR,
    Kind.STREAM,
    Kind.CANCEL,
    Kind.KEEPALIVE,
)


class Connection:
    """One end of one messenger connection."""

    def __init__(
        self,
        *,
        role: Role,
        key: bytes,
        previous_keys: Sequence[bytes] = (),
        random: Callable[[int], bytes] = os.urandom,
        version: int = PROTOCOL_VERSION,
    ) -> None:
        """`previous_keys` (SERVER only): retired keys still accepted, from a client whose key hint names one.

        `version`: the newest protocol version to speak. A client offers exactly it (and is refused by a server
        that does not speak it); a server speaks every known version up to it, answering in the client's.
        """
        if version not in PROTOCOL_VERSIONS:
            raise LocalProtocolError(f"unknown protocol version {version!r}")
        for raw in (key, *previous_keys):
            if len(raw) != KEY_BYTES:
                raise InvalidKey(f"the messenger key must be {KEY_BYTES} raw bytes (see crypto.parse_key)")
        if previous_keys and role is not Role.SERVER:
            raise LocalProtocolError("only a server accepts previous keys")
        self.state = State.HANDSHAKING
        self._role = role
        self._key = key
        self._previous_keys = tuple(previous_keys)
        self._random = random
        self._stage = _Stage.NEW if role is Role.CLIENT else _Stage.AWAIT_CLIENT_HELLO
        self._buffer = bytearray()  # received bytes of an incomplete handshake message or frame
        self._outgoing = bytearray()  # handshake bytes for data_to_send()
        self._sends = _SENDS[role]
        peer_sends = _SENDS[Role.SERVER if role is Role.CLIENT else Role.CLIENT]
        self._receives = peer_sends
        self._client_hello = b""  # client: kept for the transcript
        self._session_keys: crypto.SessionKeys | None = None  # server: between ServerHello and ClientFinish
        self._expected_client_proof = b""
        self._sealer: crypto.Sealer | None = None
        self._opener: crypto.Opener | None = None
        self._error: RemoteProtocolError | None = None
        self._max_version = version
        self.version: int | None = None  # the negotiated version, once the hellos agreed on one
        self._batches = False  # v2: batch records may be sent and received

    # --- handshake ---

    def initiate(self) -> bytes:
        """CLIENT only, once: return the ClientHello to send."""
        if self._stage is not _Stage.NEW:
            raise LocalProtocolError("initiate() is for a new client connection only")
        random_part = self._nonce(NONCE_BYTES - KEY_HINT_BYTES)
        self._client_hello = MAGIC + bytes([self._max_version]) + random_part + crypto.key_hint(self._key, random_part)
        self._stage = _Stage.AWAIT_SERVER_HELLO
        return self._client_hello

    def data_to_send(self) -> bytes:
        """Return (and forget) the handshake bytes queued by receive_data; b"" when there are none."""
        if not self._outgoing:
            return b""
        data = bytes(self._outgoing)
        self._outgoing.clear()
        return data

    def reject(self) -> bytes:
        """Close the connection and return the REJECT bytes to write before closing the transport."""
        self._close()
        return REJECT

    @property
    def key(self) -> bytes:
        """The key this connection authenticates with (a server's: the one the client's hint named, once known)."""
        return self._key

    @property
    def has_partial_data(self) -> bool:
        """True while bytes of an incomplete handshake message or frame are buffered."""
        return bool(self._buffer)

    # --- receiving ---

    def receive_data(self, data: bytes) -> list[Event]:
        """Feed received bytes; return the events they completed (maybe none).

        Raises RemoteProtocolError (KeyMismatch on a client whose server proved another key); the
        connection is then CLOSED and every later call raises again.
        """
        if self._opener is None:  # handshaking, or closed
            return self._receive_buffered(data)
        buffer = self._buffer
        if buffer:
            # A frame is in progress: collect bytes (amortised O(1)) until it is complete, then parse
            # one immutable copy, so a trickle of bytes costs O(n) in all.
            buffer += data
            available = len(buffer)
            if available < LENGTH_PREFIX_BYTES:
                return []
            try:
                length = _frame_length(buffer[:LENGTH_PREFIX_BYTES])
            except RemoteProtocolError as exc:
                self._fail(exc)
                raise
            if available < LENGTH_PREFIX_BYTES + length:
                return []
            data = bytes(buffer)
            buffer.clear()
        elif type(data) is not bytes:
            data = bytes(data)  # we keep views of it: it must not change under us
        try:
            return self._receive_frames(data)
        except RemoteProtocolError as exc:
            self._fail(exc)
            raise

    def _receive_frames(self, data: bytes) -> list[Event]:
        """Open the whole frames at the start of `data` (nothing buffered); buffer the rest."""
        size = len(data)
        length = int.from_bytes(data[:LENGTH_PREFIX_BYTES], "big")
        if length == size - LENGTH_PREFIX_BYTES and MIN_SEALED_BYTES <= length <= MAX_FRAME_BYTES:
            # The common case: exactly one whole frame.
            plaintext = self._opener.open(data[:LENGTH_PREFIX_BYTES], data[LENGTH_PREFIX_BYTES:])  # type: ignore[union-attr]
            if plaintext[0] != BATCH_KIND:
                return [self._event(plaintext)]
            return self._batch_events(plaintext)
        view = memoryview(data)  # frames are sliced without copying
        events: list[Event] = []
        pos = 0
        while size - pos >= LENGTH_PREFIX_BYTES:
            body_start = pos + LENGTH_PREFIX_BYTES
            end = body_start + _frame_length(data[pos:body_start])
            if end > size:
                break
            self._open_into(events, view[pos:body_start], view[body_start:end])
            pos = end
        if pos < size:
            self._buffer += view[pos:]
        return events

    def _receive_buffered(self, data: bytes) -> list[Event]:
        if self.state is State.CLOSED:
            if self._error is None:
                raise LocalProtocolError("the connection is closed")
            raise self._error.__class__(self._error.reason)
        if self._stage is _Stage.NEW:
            raise LocalProtocolError("call initiate() before receive_data()")
        buffer = self._buffer
        buffer += data
        events: list[Event] = []
        pos = 0
        try:
            while True:
                if self.state is State.OPEN:
                    end = self._frame_end(buffer, pos)
                    if end is None:
                        break
                    body_start = pos + LENGTH_PREFIX_BYTES
                    self._open_into(events, buffer[pos:body_start], buffer[body_start:end])
                else:
                    end = self._receive_handshake(buffer, pos, events)
                    if end is None:
                        break
                pos = end
        except RemoteProtocolError as exc:
            self._fail(exc)
            raise
        del buffer[:pos]
        return events

    @staticmethod
    def _frame_end(buffer: bytearray, pos: int) -> int | None:
        """Check the length prefix at `pos` as soon as it is there; return the frame's end once it is all there."""
        if len(buffer) - pos < LENGTH_PREFIX_BYTES:
            return None
        end = pos + LENGTH_PREFIX_BYTES + _frame_length(buffer[pos : pos + LENGTH_PREFIX_BYTES])
        return end if end <= len(buffer) else None

    def _open_into(self, events: list[Event], header: bytes, sealed: bytes) -> None:
        """Open one frame and add its event (or a batch record's events) to `events`."""
        plaintext = self._opener.open(header, sealed)  # type: ignore[union-attr]
        if plaintext[0] != BATCH_KIND:
            events.append(self._event(plaintext))
        else:
            events += self._batch_events(plaintext)

    def _batch_events(self, plaintext: bytes) -> list[Event]:
        """The events of a batch record, in order; a v1 connection refuses it as it refuses any unknown kind."""
        if not self._batches:
            raise RemoteProtocolError("bad-message")
        return [self._event(envelope) for envelope in split_batch(plaintext)]

    def _event(self, plaintext: bytes) -> Event:
        kind, id, type, body = decode_envelope(plaintext)
        if kind not in self._receives:  # a kind only our own role sends
            raise RemoteProtocolError("bad-message")
        if kind is _REPLY:
            return _new_tuple(Reply, (id, body))
        if kind is _STREAM:
            return _new_tuple(StreamItem, (id, body))
        if kind is _REQUEST:
            return _new_tuple(Request, (id, type, body))
        if kind is _ERROR:
            # An older peer's ERROR carries no code: UNSPECIFIED stands for it.
            return _new_tuple(ErrorReply, (id, body["error"], body.get("code", UNSPECIFIED)))  # type: ignore[union-attr]
        if kind is _CANCEL:
            return _new_tuple(Cancel, (id,))
        return _KEEPALIVE if kind is _KEEPALIVE_KIND else _KEEPALIVE_ACK

    def _receive_handshake(self, buffer: bytearray, pos: int, events: list[Event]) -> int | None:
        """Consume one handshake message at `pos` if it is all there; return where it ends."""
        available = len(buffer) - pos
        if self._stage is _Stage.AWAIT_CLIENT_FINISH:
            if available < CLIENT_FINISH_BYTES:
                return None
            end = pos + CLIENT_FINISH_BYTES
            self._on_client_finish(bytes(buffer[pos:end]))
            events.append(HandshakeComplete(version=self.version))
            return end
        # Both hellos start MAGIC | version: check them as they arrive, not after the whole hello.
        self._check_hello_head(bytes(buffer[pos : pos + _HELLO_HEAD_BYTES]))
        if self._role is Role.SERVER:
            if available < CLIENT_HELLO_BYTES:
                return None
            end = pos + CLIENT_HELLO_BYTES
            self._on_client_hello(bytes(buffer[pos:end]))
            return end
        if available < SERVER_HELLO_BYTES:
            return None
        end = pos + SERVER_HELLO_BYTES
        self._on_server_hello(bytes(buffer[pos:end]))
        events.append(HandshakeComplete(version=self.version))
        return end

    def _check_hello_head(self, head: bytes) -> None:
        if head[: len(MAGIC)] != MAGIC[: len(head)]:
            raise RemoteProtocolError("bad-magic")
        if len(head) < _HELLO_HEAD_BYTES:
            return
        version = head[-1]
        if self._role is Role.CLIENT:  # the server must answer in the version we offered
            spoken = version == self._max_version
        else:
            spoken = version in PROTOCOL_VERSIONS and version <= self._max_version
        if not spoken:
            if self._role is Role.CLIENT and head == REJECT[:_HELLO_HEAD_BYTES]:
                raise RemoteProtocolError("rejected")
            raise RemoteProtocolError("unknown-version")

    def _on_client_hello(self, hello: bytes) -> None:
        if self._previous_keys:
            self._key = self._hinted_key(hello[_HELLO_HEAD_BYTES:])
        self.version = hello[len(MAGIC)]  # checked by _check_hello_head: one this server speaks
        server_head = MAGIC + bytes([self.version]) + self._nonce(NONCE_BYTES)
        keys = crypto.derive_session_keys(self._key, hello[_HELLO_HEAD_BYTES:], server_head[_HELLO_HEAD_BYTES:])
        transcript = hello + server_head
        self._outgoing += server_head + crypto.proof(keys.server_proof, b"server", transcript)
        self._expected_client_proof = crypto.proof(keys.client_proof, b"client", transcript)
        self._session_keys = keys
        self._stage = _Stage.AWAIT_CLIENT_FINISH

    def _on_client_finish(self, client_proof: bytes) -> None:
        if not crypto.proofs_equal(client_proof, self._expected_client_proof):
            raise RemoteProtocolError("bad-proof")
        keys = self._session_keys
        assert keys is not None  # set with the expected proof
        self._start_frames(send_key=keys.s2c, receive_key=keys.c2s)

    def _on_server_hello(self, hello: bytes) -> None:
        server_head = hello[: _HELLO_HEAD_BYTES + NONCE_BYTES]
        client_nonce = self._client_hello[_HELLO_HEAD_BYTES:]
        keys = crypto.derive_session_keys(self._key, client_nonce, server_head[_HELLO_HEAD_BYTES:])
        transcript = self._client_hello + server_head
        expected = crypto.proof(keys.server_proof, b"server", transcript)
        if not crypto.proofs_equal(hello[len(server_head) :], expected):
            raise KeyMismatch()
        self._outgoing += crypto.proof(keys.client_proof, b"client", transcript)
        self.version = self._max_version
        self._start_frames(send_key=keys.c2s, receive_key=keys.s2c)

    def _start_frames(self, *, send_key: bytes, receive_key: bytes) -> None:
        self._sealer = crypto.Sealer(send_key)
        self._opener = crypto.Opener(receive_key)
        self._stage = _Stage.DONE
        self.state = State.OPEN
        self._batches = self.version is not None and self.version >= 2
        self._session_keys = None
        self._expected_client_proof = b""

    def _hinted_key(self, client_nonce: bytes) -> bytes:
        """The accepted key the client's hint names; the current key when it names none (the proof then fails).

        Every key is checked, so the time taken does not tell which one matched.
        """
        random_part, hint = client_nonce[:-KEY_HINT_BYTES], client_nonce[-KEY_HINT_BYTES:]
        named = [key for key in (self._key, *self._previous_keys)
                 if crypto.proofs_equal(crypto.key_hint(key, random_part), hint)]
        return named[0] if named else self._key

    def _nonce(self, size: int) -> bytes:
        nonce = self._random(size)
        if len(nonce) != size:
            raise LocalProtocolError(f"random({size}) returned {len(nonce)} bytes")
        return nonce

    def _fail(self, error: RemoteProtocolError) -> None:
        self._error = error
        self._close()

    def _close(self) -> None:
        self.state = State.CLOSED
        self._stage = _Stage.DONE
        self._buffer.clear()
        self._outgoing.clear()
        self._sealer = self._opener = None

    # --- sending ---

    # The body-carrying sends take a fast path when the connection is open and the role may send the
    # kind; otherwise they go through _send, which raises the right LocalProtocolError.

    def send_request(self, *, id: int, type: str, body: dict) -> bytes:
        code = REQUEST_CODES.get(type)
        if code is None or self._sealer is None or self._role is not Role.CLIENT:
            return self._send(Kind.REQUEST, id, type, body)
        return self._seal(_REQUEST, encode_with_body(_REQUEST, id, code, body))

    def send_reply(self, *, id: int, body: dict) -> bytes:
        if self._sealer is None or self._role is not Role.SERVER:
            return self._send(Kind.REPLY, id, None, body)
        return self._seal(_REPLY, encode_with_body(_REPLY, id, 0, body))

    def send_error(self, *, id: int, message: str, code: str) -> bytes:
        return self._send(Kind.ERROR, id, None, error_body(message, code=code))

    def send_stream(self, *, id: int, body: dict) -> bytes:
        if self._sealer is None or self._role is not Role.SERVER:
            return self._send(Kind.STREAM, id, None, body)
        return self._seal(_STREAM, encode_with_body(_STREAM, id, 0, body))

    def send_cancel(self, *, id: int) -> bytes:
        return self._send(Kind.CANCEL, id, None, None)

    def send_keepalive(self) -> bytes:
        return self._send(Kind.KEEPALIVE, 0, None, None)

    def send_keepalive_ack(self) -> bytes:
        return self._send(Kind.KEEPALIVE_ACK, 0, None, None)

    def send_batch(self, events: Iterable[Event]) -> bytes:
        """The bytes that send `events` in order: v2 seals them into as few batch records as fit, v1 one frame each."""
        return self.seal([self.encode(event) for event in events])

    def encode(self, event: Event) -> bytes:
        """The checked envelope of one event to send (not HandshakeComplete), for `seal`; nothing is sent yet.

        Raises LocalProtocolError as the send_* methods do (wrong role or state, not JSON, too big).
        """
        kind = type(event)
        if kind is StreamItem and self._sealer is not None and self._role is Role.SERVER:  # the stream pump's hot path
            return _fits(_STREAM, encode_with_body(_STREAM, event[0], 0, event[1]))
        fields = _ENVELOPE_FIELDS.get(kind)
        if fields is None:
            raise LocalProtocolError(f"cannot send {event!r}")
        wire_kind, id, type_, body = fields(event)
        self._check_send(wire_kind)
        return _fits(wire_kind, encode_envelope(wire_kind, id, type_, body))

    def seal(self, envelopes: Sequence[bytes]) -> bytes:
        """Seal envelopes from `encode`, in order: v2 packs them into as few batch records as fit (each under
        MAX_FRAME_BYTES and MAX_BATCH_ENVELOPES); v1, or a lone envelope, gets one plain frame each."""
        if len(envelopes) == 1:
            return self._seal_envelope(envelopes[0])
        if not envelopes:
            return b""
        if not self._batches:
            return b"".join([self._seal_envelope(envelope) for envelope in envelopes])
        records = []
        group: list[bytes] = []
        size = _RECORD_BASE_BYTES
        for envelope in envelopes:
            cost = BATCH_ITEM_PREFIX_BYTES + len(envelope)
            if group and (size + cost > MAX_FRAME_BYTES or len(group) == MAX_BATCH_ENVELOPES):
                records.append(self._seal_group(group))
                group, size = [], _RECORD_BASE_BYTES
            group.append(envelope)
            size += cost
        records.append(self._seal_group(group))
        return b"".join(records)

    def _seal_group(self, group: list[bytes]) -> bytes:
        return self._seal_envelope(group[0] if len(group) == 1 else encode_batch(group))

    def _seal_envelope(self, envelope: bytes) -> bytes:
        if self._sealer is None:
            raise LocalProtocolError(f"cannot send: the connection is {self.state.value}")
        return self._seal_checked(envelope)

    def _check_send(self, kind: Kind) -> None:
        if self._sealer is None:  # it exists exactly while OPEN
            raise LocalProtocolError(f"cannot send {kind.name}: the connection is {self.state.value}")
        if kind not in self._sends:
            raise LocalProtocolError(f"a {self._role.value} does not send {kind.name}")

    def _send(self, kind: Kind, id: int, type: str | None, body: dict | None) -> bytes:
        self._check_send(kind)
        return self._seal(kind, encode_envelope(kind, id, type, body))

    def _seal(self, kind: Kind, envelope: bytes) -> bytes:
        return self._seal_checked(_fits(kind, envelope))

    def _seal_checked(self, envelope: bytes) -> bytes:
        try:
            return self._sealer.seal_frame(envelope)  # type: ignore[union-attr]
        except LocalProtocolError:  # nonce counter exhausted: this connection is done
            self._close()
            raise


def _fits(kind: Kind, envelope: bytes) -> bytes:
    """`envelope`, unless sealing it alone would exceed MAX_FRAME_BYTES (LocalProtocolError)."""
    if len(envelope) + TAG_BYTES > MAX_FRAME_BYTES:
        raise LocalProtocolError(f"{kind.name} of {len(envelope) + TAG_BYTES} bytes exceeds MAX_FRAME_BYTES")
    return envelope


# How each sendable event becomes an envelope: (kind, id, message type, body).
_ENVELOPE_FIELDS: dict[type, Callable[[Any], tuple[Kind, int, str | None, dict | None]]] = {
    Request: lambda event: (Kind.REQUEST, event[0], event[1], event[2]),
    Reply: lambda event: (Kind.REPLY, event[0], None, event[1]),
    ErrorReply: lambda event: (Kind.ERROR, event[0], None, error_body(event[1], code=event[2])),
    StreamItem: lambda event: (Kind.STREAM, event[0], None, event[1]),
    Cancel: lambda event: (Kind.CANCEL, event[0], None, None),
    Keepalive: lambda event: (Kind.KEEPALIVE, 0, None, None),
    KeepaliveAck: lambda event: (Kind.KEEPALIVE_ACK, 0, None, None),
}
