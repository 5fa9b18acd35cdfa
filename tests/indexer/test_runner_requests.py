"""One rule for a runner name a caller sends, whoever the caller (the Status page's socket, the JSON API)."""
from __future__ import annotations

import pytest

from indexer.models import Trigger
from indexer.runner_requests import RUNNER_NAME_MAX, runner_name_valid


@pytest.mark.parametrize(("name", "valid"), [
    ("Feed Indexing", True), ("x" * RUNNER_NAME_MAX, True), ("x" * (RUNNER_NAME_MAX + 1), False),
    ("", False), ("   ", False), (None, False), (42, False), (["Feed Indexing"], False),
])
def test_a_runner_name_is_a_non_blank_string_that_fits_the_record(name: object, valid: bool) -> None:
    assert runner_name_valid(name) is valid


def test_the_cap_is_what_a_runs_trigger_holds() -> None:
    assert Trigger._meta.get_field("target").max_length == RUNNER_NAME_MAX
