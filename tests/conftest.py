"""Shared fixtures for the whole suite.

`pg_database_url` / `redis_url`: the machine's real PostgreSQL and Redis (PROGET_TEST_DATABASE_URL /
PROGET_TEST_REDIS_URL, moved aside by tests/settings.py). Tests using them are skipped, with the reason,
when those are not set, and fail instead when PROGET_REQUIRE_SERVICES=1 (CI).
"""
from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest

import tests.examples  # noqa: F401 - registers the Hypothesis "check" profile before it is loaded

# PROGET_TEST_UVLOOP=1: every asyncio.run of the tests runs on uvloop (the service node's loop when installed).
if os.environ.get("PROGET_TEST_UVLOOP") == "1":
    import asyncio

    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())

# A test Redis database number of its own: flushed before and after each module that uses it.
TEST_REDIS_DB = 15


def _service_missing(reason: str) -> None:
    if os.environ.get("PROGET_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} (PROGET_REQUIRE_SERVICES=1: these tests must run here)", pytrace=False)
    pytest.skip(reason)


def _with_path(url: str, path: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, parts.fragment))


@pytest.fixture(scope="session")
def _pg_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(server URL, name) of a migrated PostgreSQL database that modules copy: one migrate per test run."""
    base = os.environ.get("PROGET_TEST_DATABASE_URL", "")
    if not base.startswith(("postgres://", "postgresql://")):
        _service_missing("PostgreSQL tests need PROGET_TEST_DATABASE_URL=postgresql://... (or DATABASE_URL)")
    import psycopg
    from psycopg import sql

    name = f"proget_tpl_{secrets.token_hex(6)}"
    try:
        admin = psycopg.connect(base, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        _service_missing(f"PostgreSQL at PROGET_TEST_DATABASE_URL is not reachable: {exc}")
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        from tests.processes import manage

        manage(tmp_path_factory.mktemp("pg-migrate"), "migrate", "--no-input", timeout=180,
               DATABASE_URL=_with_path(base, f"/{name}"))
        yield base, name
    finally:
        _pg_drop(base, name)


def _pg_drop(base: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(base, autocommit=True, connect_timeout=5) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="module")
def pg_database_url(_pg_template: tuple[str, str]) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test module (a copy of the template, dropped afterwards)."""
    import psycopg
    from psycopg import sql

    base, template = _pg_template
    name = f"proget_t_{secrets.token_hex(6)}"
    with psycopg.connect(base, autocommit=True, connect_timeout=5) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template)))
    try:
        yield _with_path(base, f"/{name}")
    finally:
        _pg_drop(base, name)


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """REDIS_URL for a Redis database number kept for tests (TEST_REDIS_DB), flushed before and after."""
    base = os.environ.get("PROGET_TEST_REDIS_URL", "")
    if not base.startswith(("redis://", "rediss://")):
        _service_missing("Redis tests need PROGET_TEST_REDIS_URL=redis://... (or REDIS_URL)")
    import redis

    url = _with_path(base, f"/{TEST_REDIS_DB}")
    client = redis.Redis.from_url(url, socket_connect_timeout=5)
    try:
        client.flushdb()
    except redis.RedisError as exc:
        _service_missing(f"Redis at PROGET_TEST_REDIS_URL is not reachable: {exc}")
    try:
        yield url
    finally:
        client.flushdb()
        client.close()

