"""What is particular to the PostgreSQL store: migrations recorded in `schema_migrations`,
applied once under an advisory lock, and both URL schemes. Skips (fails under CI=true) when
PostgreSQL is unreachable; see tests/postgres.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

import storage
from bot.models import ThreadKey, ThreadRecord
from storage.postgres import PostgresStore
from storage.records import load_migrations
from tests.postgres import fresh_schema_url

RECORD = ThreadRecord(ThreadKey("slack", "T1", "C1", "1.2"), "sess", "U1", 1.0, 2.0, "eco")


@pytest.fixture
async def url() -> AsyncIterator[str]:
    async with fresh_schema_url() as fresh:
        yield fresh


async def _open_all(url: str, count: int) -> list[PostgresStore]:
    return list(await asyncio.gather(*(PostgresStore.open(url) for _ in range(count))))


async def test_migrations_apply_once_when_replicas_start_together(url: str) -> None:
    stores = await _open_all(url, 5)
    try:
        latest = [version for version, _ in load_migrations("postgres")]
        for store in stores:
            assert await store.schema_versions() == latest
        rows = await stores[0]._pool.fetch("SELECT version FROM schema_migrations")
        assert sorted(row[0] for row in rows) == latest  # one row each, no duplicates
        assert await stores[1].migrate() == []
    finally:
        await asyncio.gather(*(store.close() for store in stores))


async def test_new_migrations_apply_and_failed_ones_roll_back(url: str) -> None:
    store = await PostgresStore.open(url)
    try:
        migrations = load_migrations("postgres")
        latest = migrations[-1][0]
        # every number from 1, none missing: a gap would be skipped by an old database
        assert [version for version, _ in migrations] == list(range(1, latest + 1))
        extra = [(latest + 1, "CREATE TABLE extra (x INTEGER);")]
        assert await store.migrate([*migrations, *extra]) == [latest + 1]
        assert await store.migrate([*migrations, *extra]) == []

        broken = [(latest + 2, "CREATE TABLE half (x INTEGER); THIS IS NOT SQL;")]
        with pytest.raises(asyncpg.PostgresSyntaxError):
            await store.migrate(broken)
        assert (await store.schema_versions())[-1] == latest + 1
        assert await store._pool.fetchval("SELECT to_regclass('half')") is None
        await store.save_thread(RECORD)  # the store still works
        assert await store.get_thread(RECORD.key) == RECORD
    finally:
        await store.close()


async def test_a_newer_schema_is_reported_not_undone(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = await PostgresStore.open(url)
    try:
        await store._pool.execute("INSERT INTO schema_migrations (version) VALUES (999)")
        assert await store.migrate() == []
        assert "newer than this release knows" in caplog.text
    finally:
        await store.close()


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
async def test_open_store_picks_postgres_for_both_schemes(url: str, scheme: str) -> None:
    opened = await storage.open_store(scheme + url.removeprefix(url.partition(":")[0]))
    try:
        assert isinstance(opened, PostgresStore)
        await opened.save_thread(RECORD)
        assert await opened.get_thread(RECORD.key) == RECORD
    finally:
        await opened.close()
