"""A runner name may be as long as the API and the Status socket accept (RUNNER_NAME_MAX): its records and run
history are stored on PostgreSQL, which enforces column lengths (SQLite does not, so this runs there)."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.processes import manage

pytestmark = pytest.mark.slow

RECORD_A_RUN = """
from django.utils import timezone
from indexer.run_history import run_history_begin
from indexer.runner_records import runner_paused_set, runner_run_begin
from indexer.runner_requests import RUNNER_NAME_MAX

name = "R" * RUNNER_NAME_MAX
now = timezone.now()
runner_paused_set(name=name, paused=True)
runner_run_begin(name=name, started_at=now, node="svc", trigger_id=None, fencing_token=None)
run = run_history_begin(runner=name, started_at=now, node="svc", target=None, trigger_id=None, cause="schedule")
print("RECORDED", len(run.runner))
"""


def test_a_runner_name_of_the_longest_accepted_length_is_recorded_on_postgres(
    tmp_path: Path, pg_database_url: str
) -> None:
    result = manage(tmp_path, "shell", "-c", RECORD_A_RUN, check=False, DATABASE_URL=pg_database_url)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "RECORDED 200" in result.stdout
