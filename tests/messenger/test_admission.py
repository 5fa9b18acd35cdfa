"""The handshake budget's bookkeeping (pure): what a source is, and which handshake goes when there is no room."""

from __future__ import annotations

import pytest

from messenger.admission import OVER_BUDGET, OVER_SOURCE_CAP, HandshakeBudget, source_of


@pytest.mark.parametrize(("peer_ip", "source"), [
    ("10.0.0.5", "10.0.0.5"),
    ("::ffff:10.0.0.5", "10.0.0.5"),  # IPv4-mapped: the same host as its IPv4 address
    ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),  # a host or customer usually holds a whole /64
    ("2001:db8:1:2:bbbb::7", "2001:db8:1:2::/64"),
    ("fe80::1%eth0", "fe80::/64"),
    (None, None),  # a Unix socket peer
])
def test_sources(peer_ip: str | None, source: str | None) -> None:
    assert source_of(peer_ip) == source


def test_a_source_at_its_cap_loses_its_own_oldest() -> None:
    budget: HandshakeBudget[str] = HandshakeBudget(size=10, per_source=2)
    assert budget.admit("a1", "A") is None and budget.admit("b1", "B") is None and budget.admit("a2", "A") is None
    assert budget.admit("a3", "A") == ("a1", OVER_SOURCE_CAP)
    assert len(budget) == 3


def test_a_full_budget_loses_the_oldest_of_the_heaviest_source_and_unix_peers_are_one_source() -> None:
    budget: HandshakeBudget[str] = HandshakeBudget(size=4, per_source=10)
    for item, source in (("b1", "B"), ("u1", None), ("a1", "A"), ("u2", None)):
        assert budget.admit(item, source) is None
    assert budget.admit("c1", "C") == ("u1", OVER_BUDGET)  # the Unix peers hold the most
    assert budget.admit("c2", "C") == ("b1", OVER_BUDGET)  # one each now (A, B, C, unix): the oldest of all
    budget.leave("c1")
    budget.leave("c1")  # leaving twice (done, then gone) is fine
    budget.leave("never")
    assert len(budget) == 3


def test_a_budget_without_room_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one handshake"):
        HandshakeBudget(size=0, per_source=1)
