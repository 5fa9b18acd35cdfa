"""Fixtures of the fault tests: one prepared SQLite node per session, copied into each test's own data dir."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.support import node_copy, node_prepare


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated node with the admin, the feed and a 1 s trigger poll; never run itself, only copied."""
    return node_prepare(tmp_path_factory.mktemp("faults-template"))


@pytest.fixture
def node(template: Path, tmp_path: Path) -> Path:
    """This test's own node (data dir `tmp_path`), a copy of the template."""
    return node_copy(template, tmp_path)
