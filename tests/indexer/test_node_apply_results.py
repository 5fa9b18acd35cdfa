"""What a service node reports of applying settings, and where web nodes connect because of it
(cluster.nodes.node_serving_instead): the live primary's word, the endpoint it really serves."""
from __future__ import annotations

import pytest

from cluster.lease import lease_acquire
from cluster.models import ApplyResult, Node
from cluster.nodes import ApplyOutcome, NodeIdentity, node_register, node_serving_instead, node_settings_applied

pytestmark = pytest.mark.django_db

PIPE, TAKEN = "pipe://messenger", "tcp://127.0.0.1:7000"


def _service(name: str, *, version: int, outcome: ApplyOutcome) -> None:
    node_register(identity=NodeIdentity(name=name, kind="service", ip="", endpoint="", version="1",
                                        key_fingerprint=""))
    node_settings_applied(name=name, version=version, outcome=outcome)


def test_a_refusal_is_recorded_with_its_reason_and_cleared_by_a_later_success() -> None:
    _service("svc", version=2, outcome=ApplyOutcome(serves_endpoint=PIPE, refused_endpoint=TAKEN,
                                                    problem="cannot listen on tcp://127.0.0.1:7000 (in use)"))
    row = Node.objects.get(name="svc")
    assert (row.settings_version, row.settings_result, row.refused_endpoint) == (2, ApplyResult.REFUSED, TAKEN)
    assert row.settings_problem.startswith("cannot listen")
    node_settings_applied(name="svc", version=3, outcome=ApplyOutcome(serves_endpoint=TAKEN))
    row.refresh_from_db()
    assert (row.settings_result, row.settings_problem, row.refused_endpoint) == (ApplyResult.OK, "", "")


def test_web_nodes_follow_the_live_primary_where_it_really_serves() -> None:
    _service("svc", version=2, outcome=ApplyOutcome(serves_endpoint=PIPE, refused_endpoint=TAKEN, problem="in use"))
    assert lease_acquire(node="svc", token=None, stale_seconds=30) is not None
    assert node_serving_instead(endpoint=TAKEN, version=2) == PIPE  # refused: stay where it serves
    assert node_serving_instead(endpoint=PIPE, version=2) is None  # already there
    node_settings_applied(name="svc", version=2, outcome=ApplyOutcome(serves_endpoint=PIPE))
    assert node_serving_instead(endpoint=TAKEN, version=2) is None  # applied, nothing refused: configured
    assert node_serving_instead(endpoint=TAKEN, version=3) == PIPE  # not applied yet: it still serves there


def test_without_a_live_primary_only_a_refusal_counts() -> None:
    _service("svc", version=2, outcome=ApplyOutcome(serves_endpoint=PIPE, refused_endpoint=TAKEN, problem="in use"))
    assert node_serving_instead(endpoint=TAKEN, version=5) == PIPE
    assert node_serving_instead(endpoint="tcp://127.0.0.1:7001", version=5) is None
