"""The `store` fixture the contract suite runs against: one param per Store implementation.

A backend is a fresh, empty database (as a DATABASE_URL) plus a way to read a table back
raw; every store is opened through `storage.open_store`, as production opens it. Adding a
store means adding one entry to `BACKENDS`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bot.ports import Store
from storage import open_store
from tests.postgres import fresh_schema_url


@asynccontextmanager
async def _sqlite_database(tmp_path: Path) -> AsyncIterator[str]:
    # A file, not :memory:, so several stores ("replicas") can share it.
    yield f"sqlite:///{tmp_path / 'contract.db'}"


@asynccontextmanager
async def _postgres_database(tmp_path: Path) -> AsyncIterator[str]:
    async with fresh_schema_url() as url:
        yield url


async def _sqlite_rows(store: Any, sql: str) -> list[tuple[Any, ...]]:
    async with store._conn.execute(sql) as cursor:
        return [tuple(row) for row in await cursor.fetchall()]


async def _postgres_rows(store: Any, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in await store._pool.fetch(sql)]


@dataclass(frozen=True)
class Backend:
    database: Callable[[Path], AbstractAsyncContextManager[str]]
    rows: Callable[[Any, str], Any]


BACKENDS = [
    pytest.param(Backend(_sqlite_database, _sqlite_rows), id="sqlite"),
    pytest.param(Backend(_postgres_database, _postgres_rows), id="postgres"),
]


@dataclass
class Database:
    """One fresh database; `open()` as many stores on it as a test has replicas."""

    backend: Backend
    url: str
    opened: list[Store] = field(default_factory=list)

    async def open(self) -> Store:
        store = await open_store(self.url)
        self.opened.append(store)
        return store

    async def close(self, store: Store) -> None:
        self.opened.remove(store)
        await store.close()

    async def rows(self, store: Store, sql: str) -> list[tuple[Any, ...]]:
        """A raw SELECT (no parameters; the same SQL on every engine)."""
        result: list[tuple[Any, ...]] = await self.backend.rows(store, sql)
        return result


@pytest.fixture(params=BACKENDS)
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    async with request.param.database(tmp_path) as url:
        db = Database(request.param, url)
        try:
            yield db
        finally:
            for store in list(db.opened):
                await db.close(store)


@pytest.fixture
async def store(database: Database) -> Store:
    return await database.open()


@pytest.fixture
async def replicas(database: Database) -> list[Store]:
    """Three stores on one database, as three bot processes would open it."""
    return [await database.open() for _ in range(3)]
