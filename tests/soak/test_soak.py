"""Soak (bounded for CI): a real MessengerServer process under 100,000 messages and 2,000 connections per transport.

The machinery is bench/soak.py (its docstring says what is measured); `bench/soak.py --messages 1000000
--connections 10000` is the full-size run whose figures are in docs/PERFORMANCE.md. Here: the server's RSS after
the warm-up stays within RSS_BOUND_MB of the warm sample at every 10% sample, its open fds are back to the
baseline once every client has closed, and its counters agree (one handshake per connection, no rejects).
PROGET_SOAK_LONG=1 runs the full size.
"""
from __future__ import annotations

import os

import pytest

from bench.soak import RSS_BOUND_MB, report, soak
from tests.soak.support import LONG

MESSAGES = 1_000_000 if LONG else 100_000
CONNECTIONS = 10_000 if LONG else 2_000


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="samples RSS and fds from /proc")
@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_server_stays_flat_under_messages_and_connection_churn(transport: str) -> None:
    result = soak(transport, messages=MESSAGES, connections=CONNECTIONS)

    table = report([result])
    assert result.failures == [], table
    assert result.rss_growth <= RSS_BOUND_MB * 1e6, table
    assert result.sample("after").fds == result.sample("baseline").fds, table
    assert len(result.samples) == 13  # baseline, warm, every 10%, after
    assert result.stats["handshakes_ok"] == result.stats["connections_total"]
    assert result.stats["rejects"] == {}
