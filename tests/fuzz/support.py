"""Shared pieces of the fuzz tests: fixed keys and nonces, the seed corpus, run sizes and a per-example hang guard.

Everything here is deterministic: a connection pair built with `open_pair()` always derives the same session
keys, so the frames stored in fuzz/corpus/ (made by tests/fuzz/make_corpus.py) open on it.
"""
from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from hypothesis import HealthCheck, settings

from messenger import crypto
from messenger.limits import KEY_HINT_BYTES, MAGIC, NONCE_BYTES, PROTOCOL_VERSION
from messenger.protocol import Connection, Role, State
from tests.examples import examples as scaled

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "fuzz" / "corpus"

KEY = bytes(range(32))
CLIENT_NONCE_BYTE = 0x01
SERVER_NONCE_BYTE = 0x02
# The package every metadata seed describes (its file names below match its metadata).
PACKAGE_NAME = "tiny"
PACKAGE_VERSION = "1.0"
PACKAGE_FILENAMES = {
    "whl": f"{PACKAGE_NAME}-{PACKAGE_VERSION}-py3-none-any.whl",
    "tar.gz": f"{PACKAGE_NAME}-{PACKAGE_VERSION}.tar.gz",
    "zip": f"{PACKAGE_NAME}-{PACKAGE_VERSION}.zip",
}

# PROGET_FUZZ_LONG=1: a long run (minutes) instead of the bounded CI run (seconds).
LONG = os.environ.get("PROGET_FUZZ_LONG") == "1"
# A single example that takes longer than this is a hang (the inputs are small: real work takes milliseconds).
EXAMPLE_TIME_LIMIT = 10.0


def fixed_random(byte: int) -> Callable[[int], bytes]:
    """A `random` for Connection that always returns the same nonce: fixed session keys, reproducible frames."""
    return lambda n: bytes([byte]) * n


def session_keys() -> crypto.SessionKeys:
    """The session keys of every `open_pair()` connection (the client's nonce: its random part, then the key hint)."""
    random_part = bytes([CLIENT_NONCE_BYTE]) * (NONCE_BYTES - KEY_HINT_BYTES)
    return crypto.derive_session_keys(KEY, random_part + crypto.key_hint(KEY, random_part),
                                      bytes([SERVER_NONCE_BYTE]) * NONCE_BYTES)


def client_flight(*, version: int = PROTOCOL_VERSION) -> tuple[bytes, bytes]:
    """(ClientHello, ClientFinish) of the fixed client against a fixed-nonce server: a valid whole client handshake."""
    client = Connection(role=Role.CLIENT, key=KEY, random=fixed_random(CLIENT_NONCE_BYTE), version=version)
    server = new_server()
    hello = client.initiate()
    server.receive_data(hello)
    client.receive_data(server.data_to_send())
    return hello, client.data_to_send()


def new_server() -> Connection:
    """A server Connection in HANDSHAKING with the fixed key and nonce."""
    return Connection(role=Role.SERVER, key=KEY, random=fixed_random(SERVER_NONCE_BYTE))


def open_pair() -> tuple[Connection, Connection]:
    """(client, server), both OPEN, with the fixed session keys."""
    client = Connection(role=Role.CLIENT, key=KEY, random=fixed_random(CLIENT_NONCE_BYTE))
    server = new_server()
    server.receive_data(client.initiate())
    client.receive_data(server.data_to_send())
    server.receive_data(client.data_to_send())
    assert client.state is server.state is State.OPEN
    return client, server


def client_hello_head() -> bytes:
    return MAGIC + bytes([PROTOCOL_VERSION])


def corpus(folder: str) -> list[Path]:
    """The seed files of one corpus folder, sorted (README files excluded)."""
    return sorted(p for p in (CORPUS / folder).iterdir() if p.is_file() and not p.name.startswith("README"))


def corpus_bytes(folder: str) -> list[bytes]:
    return [path.read_bytes() for path in corpus(folder)]


def fuzz_settings(examples: int, long_examples: int | None = None) -> settings:
    """Hypothesis settings for a fuzz test: `examples` in CI (fewer under `make check`), many more with
    PROGET_FUZZ_LONG=1.

    No hypothesis deadline (a loaded 2-core runner makes it flaky); `hang_guard` bounds each example instead.
    """
    return settings(
        max_examples=(long_examples or examples * 100) if LONG else scaled(examples),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
        derandomize=not LONG,  # CI runs the same examples every time; the long run explores
        database=None,
    )


class Hang(BaseException):
    """An example ran too long (a BaseException, so no `except Exception` in the code under test swallows it)."""


@contextmanager
def hang_guard(seconds: float = EXAMPLE_TIME_LIMIT) -> Iterator[None]:
    """Fail an example that runs longer than `seconds` (SIGALRM; main thread only, else a no-op)."""
    def _raise_hang(signum: int, frame: object) -> None:
        raise Hang(f"one example ran longer than {seconds:g} s")

    try:
        previous = signal.signal(signal.SIGALRM, _raise_hang)
    except ValueError:  # not the main thread
        yield
        return
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
