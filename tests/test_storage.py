"""What is particular to each engine and to `storage.open_store`; what every store promises
is in tests/contract/."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiosqlite
import pytest

import storage
from bot.models import ThreadKey, ThreadRecord, TurnRecord, TurnStatus
from bot.ports import Store
from storage.sqlite import SqliteStore, load_migrations, open_store, sqlite_path_from_url

KEY = ThreadKey("slack", "T1", "C1", "1700000000.000100")


@pytest.fixture
async def store() -> AsyncIterator[SqliteStore]:
    opened = await SqliteStore.open(":memory:")
    yield opened
    await opened.close()


def _thread(n: int = 0) -> ThreadRecord:
    return ThreadRecord(
        key=ThreadKey("discord", "G1", "C1", f"t{n}"),
        session_id=f"sess-{n}",
        owner_id=f"u{n}",
        created_at=1000.0 + n,
        last_used_at=1000.5 + n,
    )


# --- SQLite: files, pragmas, migrations --------------------------------------------------


async def test_file_db_uses_wal(tmp_path: Path) -> None:
    store = await SqliteStore.open(str(tmp_path / "wal.db"))
    try:
        async with store._conn.execute("PRAGMA journal_mode") as cursor:
            assert tuple(await cursor.fetchone() or ()) == ("wal",)
        async with store._conn.execute("PRAGMA foreign_keys") as cursor:
            assert tuple(await cursor.fetchone() or ()) == (1,)
    finally:
        await store.close()


async def test_migrations_set_user_version_and_are_idempotent(tmp_path: Path) -> None:
    migrations = load_migrations()
    latest = migrations[-1][0]
    # every number from 1, none missing: a gap would be skipped by an old database
    assert [version for version, _ in migrations] == list(range(1, latest + 1))
    path = str(tmp_path / "m.db")

    store = await SqliteStore.open(path)
    assert await store.schema_version() == latest
    assert await store.migrate() == []  # nothing pending
    await store.close()

    again = await SqliteStore.open(path)  # re-open applies nothing (would fail on CREATE TABLE)
    try:
        assert await again.schema_version() == latest
        extra = [(latest + 1, "CREATE TABLE extra (x INTEGER);")]
        assert await again.migrate([*migrations, *extra]) == [latest + 1]
        assert await again.schema_version() == latest + 1
        assert await again.migrate([*migrations, *extra]) == []
    finally:
        await again.close()


async def test_failed_migration_rolls_back(store: SqliteStore) -> None:
    version = await store.schema_version()
    broken = [(version + 1, "CREATE TABLE half (x INTEGER); THIS IS NOT SQL;")]
    with pytest.raises(aiosqlite.Error):
        await store.migrate(broken)
    assert await store.schema_version() == version
    async with store._conn.execute("SELECT name FROM sqlite_master WHERE name='half'") as cur:
        assert await cur.fetchone() is None
    await store.save_thread(_thread(1))  # the store still works
    assert await store.get_thread(_thread(1).key) == _thread(1)


async def test_a_first_release_database_upgrades_in_place(tmp_path: Path) -> None:
    """A file made by the first release (schema 1) keeps its rows; they have no owner."""
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(load_migrations()[0][1] + "\nPRAGMA user_version = 1;")
        conn.execute(
            "INSERT INTO turns (id, platform, workspace, channel, thread, user_id, prompt, "
            "status, mode, started_at) VALUES ('t', 'slack', 'T1', 'C1', "
            "'1700000000.000100', 'U1', 'hi', 'running', 'eco', 5.0)"
        )
    conn.close()
    store = await SqliteStore.open(str(path))
    try:
        assert await store.schema_version() == load_migrations()[-1][0]
        assert await store.get_turn("t") == TurnRecord(
            "t", KEY, "U1", "hi", TurnStatus.RUNNING, 5.0, None, "eco", None
        )
        interrupted = await store.interrupt_running_turns(at=9.0, stale_before=1.0)
        assert [turn.id for turn in interrupted] == ["t"]
    finally:
        await store.close()


# --- SQLite URLs -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///eachsense-bot.db", "eachsense-bot.db"),
        ("sqlite:///data/bot.db", "data/bot.db"),
        ("sqlite:////var/lib/bot/bot.db", "/var/lib/bot/bot.db"),
        ("sqlite://:memory:", ":memory:"),
        ("sqlite:///:memory:", ":memory:"),
    ],
)
def test_sqlite_path_from_url(url: str, path: str) -> None:
    assert sqlite_path_from_url(url) == path


@pytest.mark.parametrize(
    "url", ["postgres://db/bot", "sqlite:bot.db", "sqlite://host/bot.db", "sqlite:///"]
)
def test_sqlite_path_from_url_rejects(url: str) -> None:
    with pytest.raises(ValueError):
        sqlite_path_from_url(url)


@pytest.mark.parametrize("opener", [storage.open_store, open_store], ids=["storage", "sqlite"])
async def test_open_store_from_urls(
    opener: Callable[[str], Awaitable[Store]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`storage.open_store`, and `storage.sqlite.open_store` kept as an alias."""
    open_url = opener
    memory = await open_url("sqlite://:memory:")
    assert isinstance(memory, SqliteStore)
    await memory.save_thread(_thread(1))
    assert await memory.get_thread(_thread(1).key) == _thread(1)
    await memory.close()

    absolute = tmp_path / "abs" / "bot.db"
    store = await open_url(f"sqlite:///{absolute}")  # sqlite:////tmp/... form
    await store.close()
    assert absolute.exists()

    monkeypatch.chdir(tmp_path)
    relative = await open_url("sqlite:///rel/bot.db")
    await relative.close()
    assert (tmp_path / "rel" / "bot.db").exists()


# --- storage.open_store ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("mysql://admin:hunter2@db/bot", "mysql:"),
        ("MySQL://admin:hunter2@db/bot", "mysql:"),
        ("hunter2", "a value without a scheme"),
        ("", "a value without a scheme"),
        ("//admin:hunter2@db/bot", "a value without a scheme"),
    ],
)
async def test_open_store_rejects_unknown_schemes_without_the_password(
    url: str, shown: str
) -> None:
    with pytest.raises(ValueError) as caught:
        await storage.open_store(url)
    message = str(caught.value)
    assert "hunter2" not in message and "admin" not in message
    assert message.endswith(f"not {shown}")
    assert "sqlite://" in message and "postgresql://" in message


def test_url_scheme() -> None:
    assert storage.url_scheme("postgres://u:p@h/db") == "postgres"
    assert storage.url_scheme("PostgreSQL://h/db") == "postgresql"
    assert storage.url_scheme("sqlite://:memory:") == "sqlite"
    assert storage.url_scheme("no scheme here") == ""
