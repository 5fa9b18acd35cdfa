"""Every size, time and count limit of the messenger, each with the reason for its value.

Pure constants: importing this module has no side effects and imports nothing.
"""

# --- wire format (changing any of these is a new protocol version) ---

# The newest protocol version this code speaks; a client sends it in its ClientHello and the server answers with
# the same version if it speaks it. v2 adds batch records (several envelopes sealed as one frame).
PROTOCOL_VERSION = 2
# Every version this code speaks (an explicit allowlist): a v1 peer is still served, with one frame per envelope.
PROTOCOL_VERSIONS = frozenset({1, 2})
# Starts both hellos and REJECT, so stray traffic (HTTP, TLS, a port scan) fails on the first bytes.
MAGIC = b"PGMS"
# Raw key length: AES-256 and HMAC-SHA256 both want 32 bytes.
KEY_BYTES = 32
# Per-side handshake nonce: 256 bits, so two connections never derive the same session keys.
NONCE_BYTES = 32
# The client's nonce is random(16) | key hint(16): 128 random bits (with the server's 256, fresh keys per
# connection) and a tag that tells a server accepting several keys (during a rotation) which one the client holds.
KEY_HINT_BYTES = 16
# HMAC-SHA256 output length; proofs are sent untruncated.
PROOF_BYTES = 32
# AES-GCM authentication tag length (the full, strongest tag size).
TAG_BYTES = 16
# Big-endian length prefix in front of every sealed frame.
LENGTH_PREFIX_BYTES = 4
# Envelope header: kind(1) | id(4) | code(1).
ENVELOPE_HEADER_BYTES = 6
# v2 batch record: each envelope in it is preceded by its length (4 bytes, big-endian), as frames are.
BATCH_ITEM_PREFIX_BYTES = 4
# Envelopes in one v2 batch record: a status batch is at most 500 events and a stream pump seals what one loop
# tick produced (a WRITE_BATCH_BYTES worth), so 4,096 is ample; it bounds the events one 1 MiB record becomes.
MAX_BATCH_ENVELOPES = 4096
# Smallest possible sealed frame: a tag and an empty-bodied envelope; anything shorter is junk.
MIN_SEALED_BYTES = TAG_BYTES + ENVELOPE_HEADER_BYTES
# Cap on one sealed frame: a status snapshot is a few KiB, so 1 MiB is ample and bounds memory per peer.
MAX_FRAME_BYTES = 1024 * 1024
# The GCM nonce carries an 8-byte counter; reusing a nonce would break GCM, so a direction stops here.
NONCE_COUNTER_LIMIT = 2**64

# --- deadlines (seconds) ---

# Absolute deadline for the whole handshake: it is 3 small messages, even across a WAN.
HANDSHAKE_TIMEOUT = 5.0
# A frame in progress must complete within this (slowloris): 1 MiB takes far less on any real link.
FRAME_TIMEOUT = 10.0
# A connection with no traffic at all (not even keepalives) for this long is dead; close it.
IDLE_TIMEOUT = 60.0
# Keepalive period: a quarter of IDLE_TIMEOUT, so three can be lost before the peer gives up.
KEEPALIVE_INTERVAL = 15.0
# A request that gets no reply in this long fails; the messenger is non-essential, callers fall back.
REQUEST_TIMEOUT = 5.0
# Connecting to a live service on a LAN takes milliseconds; longer means it is down or unreachable.
CONNECT_TIMEOUT = 2.0
# First reconnect delay: quick enough to ride over a service restart unnoticed.
RECONNECT_BACKOFF_MIN = 0.1
# Longest reconnect delay (doubling from the minimum): a down service is not hammered.
RECONNECT_BACKOFF_MAX = 10.0
# Longest delay for `tcp://*:PORT`, which follows the primary: each attempt resolves it again, so after a
# failover the new primary is reached within this long (one registry read per attempt, nothing hammered).
FAILOVER_BACKOFF_MAX = 2.0
# A client connected with a previous key (the service had not applied the new one yet) tries the current key
# this often, so it has moved long before the previous key's grace ends (Service.MessengerKeyGraceSeconds).
KEY_UPGRADE_INTERVAL = 1.0

# --- counts ---

# Concurrent connections the server accepts: web processes each hold one or two; extras are refused.
MAX_CONNECTIONS = 256

# --- keyless peers (before the handshake completes); see "Threat model" in docs/messenger.md ---

# A client sends its ClientHello the moment it connects, so it arrives within half a round trip; one not here
# within a second is an idle connector (a port scan, a lock-out attempt), not a slow link.
HELLO_TIMEOUT = 1.0
# Connections still handshaking, all sources together (OpenSSH's MaxStartups): a handshake takes a round trip or
# two, so this covers every web process of a cluster reconnecting at once. Beyond it the source holding the most
# loses its oldest handshake; the rest of MAX_CONNECTIONS is thereby reserved for peers that proved the key.
MAX_HANDSHAKING = 64
# Handshaking connections from one source (an IPv4 address, an IPv6 /64): a host's web processes need a handful;
# beyond it that source's own oldest handshake is dropped, so one address cannot take the whole budget.
MAX_HANDSHAKING_PER_SOURCE = 16
# An IPv6 source is counted by its /64: a single host or customer usually holds a whole /64.
IPV6_SOURCE_PREFIX = 64
# Once its key's grace ended, a connection may finish the requests it has in flight for this long, then it is
# closed: no client waits longer than REQUEST_TIMEOUT for a reply anyway.
RETIRE_TIMEOUT = REQUEST_TIMEOUT

# --- what a peer can make the server log ---

# Rejects are logged once per source and reason when they start, then summarised once per interval: an attack
# shows within a minute, and a sustained one costs a line per minute per source and reason, not one per connection.
REJECT_LOG_INTERVAL = 60.0
# (source, reason) pairs followed at once; rejects from further sources are summed up as "other sources", so
# an attacker with many addresses (an IPv6 /64) cannot buy log lines with them either.
REJECT_LOG_MAX_KEYS = 16
# Text a peer supplied (a runner name inside an error) is cut to this many characters before it is logged.
MAX_LOGGED_PEER_TEXT = 200

# --- per-connection budgets (one authenticated peer must not take the service from the others) ---

# Streams open at once on one connection: a web process holds one status.subscribe (two for a moment while
# it resubscribes); 4 leaves room for that and a diagnostic client, and bounds what one peer makes the
# service hold and snapshot. A subscribe beyond it gets an ERROR reply.
MAX_STREAMS_PER_CONNECTION = 4
# Requests of one connection being handled at once: a web process sends a handful (actions, probes). Further
# requests wait unread (reading pauses) until one finishes, so one peer holds at most this many jobs in the
# service's shared database thread, and every other connection's job waits behind at most this many of its.
MAX_REQUESTS_IN_FLIGHT = 16
# Request handlers running at once across all connections (messenger.fair): the service's handlers do their
# database work on one shared thread, so more only lengthen its queue; with 8, a request of a newcomer waits
# for one handler of each connection ahead of it in the rotation, not for everything a flooding peer queued.
HANDLER_SLOTS = 8
# Bytes the service holds for a peer that does not read (replies already under way when backpressure began):
# 4 max-size frames. A peer that lets more pile up is not reading at all; it is disconnected.
MAX_OUTPUT_BUFFER_BYTES = 4 * MAX_FRAME_BYTES
