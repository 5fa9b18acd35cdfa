"""The messenger key is generated on first use exactly once, even when two processes race for it."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import ROOT, migrate, node_env, shell

RACER = """
import os, sys, time
import django
django.setup()
from indexer.messenger_config import messenger_settings
go = sys.argv[1]
while not os.path.exists(go):
    time.sleep(0.001)
print(messenger_settings().fingerprint)
"""


@pytest.mark.slow  # two Django processes
def test_two_processes_racing_get_one_key(tmp_path: Path) -> None:
    migrate(tmp_path)
    go = tmp_path / "go"
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(go)], env=node_env(tmp_path), cwd=ROOT,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for _ in range(2)
    ]
    go.touch()
    results = [r.communicate(timeout=60) for r in racers]
    assert [r.returncode for r in racers] == [0, 0], results
    fingerprints = {out.strip() for out, _ in results}
    assert len(fingerprints) == 1, results
    audit = shell(tmp_path, "from settings_store.models import SettingChange as C;"
                  "print(C.objects.filter(name='Service.MessengerKey').count())")
    assert audit == "1"
