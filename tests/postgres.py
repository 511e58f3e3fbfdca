"""A fresh PostgreSQL schema per test, found through `TEST_DATABASE_URL`.

Each test gets its own schema (dropped afterwards), so tests, and test runs in other
checkouts, never see each other's rows. When the server cannot be reached the tests skip with
one line saying how to run them; under `CI=true` they fail instead, so a CI run never passes
without having tested PostgreSQL.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import pytest

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
_CONNECT_TIMEOUT = 3.0
_problem: dict[str, str | None] = {}  # URL → why it is unreachable (None: reachable)


def base_url() -> str:
    return os.environ.get("TEST_DATABASE_URL") or DEFAULT_URL


def with_search_path(url: str, schema: str) -> str:
    """`url` with its connections' search_path set to `schema` (asyncpg passes unknown query
    parameters on as server settings)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "search_path"]
    query.append(("search_path", schema))
    return urlunsplit(parts._replace(query=urlencode(query)))


def _where(url: str) -> str:
    """Host, port and database of `url`, without user or password, for messages."""
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path}"


async def _unreachable(url: str) -> str | None:
    if url not in _problem:
        try:
            conn = await asyncpg.connect(url, timeout=_CONNECT_TIMEOUT)
        except (OSError, asyncpg.PostgresError, TimeoutError) as err:
            _problem[url] = f"{type(err).__name__}: {err}"
        else:
            await conn.close()
            _problem[url] = None
    return _problem[url]


async def require_postgres() -> str:
    """The base URL, or skip (fail under CI=true) when PostgreSQL cannot be reached."""
    url = base_url()
    problem = await _unreachable(url)
    if problem is not None:
        message = (
            f"PostgreSQL at {_where(url)} is unreachable ({problem}); to run these tests "
            f"start it or set TEST_DATABASE_URL=postgresql://user@host:port/database"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return url


@asynccontextmanager
async def fresh_schema_url() -> AsyncIterator[str]:
    """A DATABASE_URL whose connections use a new, empty schema; dropped on exit."""
    url = await require_postgres()
    schema = f"test_{uuid.uuid4().hex[:16]}"
    await _execute(url, f'CREATE SCHEMA "{schema}"')
    try:
        yield with_search_path(url, schema)
    finally:
        await _execute(url, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


async def _execute(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url, timeout=_CONNECT_TIMEOUT)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()
