"""Shared by the node-level benches: process figures from /proc, the open-files limit, percentiles, and a fresh
PostgreSQL database for a bench cluster.

No Django import here: the benches set their environment (DATABASE_URL, PROGET_DATA_DIR) before Django starts.
"""
from __future__ import annotations

import os
import resource
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from tests.processes import manage

# Migrating a fresh PostgreSQL database on a loaded 2-core machine.
MIGRATE_TIMEOUT = 180


def percentile(values: Sequence[float], fraction: float) -> float:
    """The value below which `fraction` of `values` lie (nearest rank); NaN for no values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


def rss_mb(pid: int) -> float:
    """VmRSS of process `pid` in MiB (NaN once it is gone)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return float("nan")
    for line in lines:
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def raise_nofile(needed: int) -> int:
    """Raise this process's open-files limit (inherited by its children) towards `needed`; return the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        soft = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return soft


def load_average() -> str:
    """The 1/5/15-minute load averages, for the report: the shared machine's other work shows here."""
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


@contextmanager
def fresh_database(base_url: str, *, scratch: Path, prefix: str = "proget_bench") -> Iterator[str]:
    """A new, migrated database on the PostgreSQL server of `base_url`; its URL. Dropped afterwards."""
    if not base_url.startswith(("postgres://", "postgresql://")):
        raise SystemExit(f"needs DATABASE_URL=postgresql://... (got {base_url or 'nothing'!r})")
    import psycopg
    from psycopg import sql

    name = f"{prefix}_{secrets.token_hex(6)}"
    with psycopg.connect(base_url, autocommit=True, connect_timeout=5) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        url = _with_database(base_url, name)
        manage(scratch, "migrate", "--no-input", timeout=MIGRATE_TIMEOUT, DATABASE_URL=url)
        yield url
    finally:
        with psycopg.connect(base_url, autocommit=True, connect_timeout=5) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def create_admin(data_dir: Path, password: str, **env: str) -> None:
    """A superuser `admin` with `password` in the node database at `data_dir` (or `env`'s DATABASE_URL)."""
    manage(data_dir, "shell", "--no-imports", "-c",
           "from django.contrib.auth.models import User; "
           f"User.objects.create_superuser('admin', 'admin@example.com', {password!r})", **env)
