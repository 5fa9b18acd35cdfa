"""The messenger's error types.

Two protocol errors as in h11 (LocalProtocolError: we misused the protocol; RemoteProtocolError:
the peer broke it or failed authentication, with a short `reason` for counters), plus
configuration errors, the errors a client caller sees, and the refusal a request handler raises.
"""


class MessengerError(Exception):
    """Base class of every messenger error."""


class LocalProtocolError(MessengerError):
    """We misused the protocol (a bug on our side): e.g. sending before the handshake completed."""


class RemoteProtocolError(MessengerError):
    """The peer broke the protocol or failed authentication; the connection is closed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        # Short code for logs and reject counters: "bad-magic", "bad-proof", "frame-size", ...
        self.reason = reason


class KeyMismatch(RemoteProtocolError):
    """Client side: the server proved it holds a different key."""

    def __init__(self, reason: str = "key-mismatch") -> None:
        super().__init__(reason)


class InvalidKey(MessengerError, ValueError):
    """The configured Service.MessengerKey is malformed."""


class InvalidEndpoint(MessengerError, ValueError):
    """The configured Service.MessengerEndpoint is malformed."""


class MessengerUnavailable(MessengerError):
    """Could not talk to the service; `reason` is one human-readable line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RequestTimeout(MessengerUnavailable):
    """Connected, but no reply arrived in time."""


class CodedError(MessengerError):
    """An ERROR reply's content: the text for people, `code` (messenger.messages) for callers to branch on."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


class RemoteError(CodedError):
    """The service answered with an ERROR envelope."""


class RequestRefused(CodedError):
    """Raised by a request handler to refuse: the peer gets an ERROR with this text and code.

    Any other exception of a handler is answered with the code INTERNAL.
    """
