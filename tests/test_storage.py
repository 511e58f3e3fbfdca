"""SqliteStore against real SQLite databases (in memory and on disk)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import pytest

from bot.models import (
    ChannelKey,
    ChannelSettings,
    GenerationRecord,
    JobKind,
    JobRecord,
    JobStatus,
    ThreadKey,
    ThreadRecord,
    TurnRecord,
    TurnStatus,
)
from bot.ports import Store
from storage.sqlite import SqliteStore, load_migrations, open_store, sqlite_path_from_url

KEY = ThreadKey("slack", "T1", "C1", "1700000000.000100")


@pytest.fixture
async def store() -> AsyncIterator[SqliteStore]:
    opened = await SqliteStore.open(":memory:")
    yield opened
    await opened.close()


def _thread(n: int = 0, *, mode: str | None = None) -> ThreadRecord:
    return ThreadRecord(
        key=ThreadKey("discord", "G1", "C1", f"t{n}"),
        session_id=f"sess-{n}",
        owner_id=f"u{n}",
        created_at=1000.0 + n,
        last_used_at=1000.5 + n,
        mode=mode,  # type: ignore[arg-type]
    )


def _turn(turn_id: str, *, status: TurnStatus = TurnStatus.RUNNING, at: float = 10.0) -> TurnRecord:
    return TurnRecord(
        id=turn_id,
        key=KEY,
        user_id="U1",
        prompt="draw a cat",
        status=status,
        started_at=at,
        mode="eco",
    )


def _job(job_id: str = "job-1") -> JobRecord:
    return JobRecord(
        id=job_id,
        kind=JobKind.WORKFLOW,
        remote_id="remote-9",
        key=KEY,
        user_id="U1",
        webhook_secret="s3cret",
        status=JobStatus.RUNNING,
        created_at=50.0,
        title="upscale",
        message_id="m-1",
    )


def test_implements_store_protocol() -> None:
    for name in (n for n in dir(Store) if not n.startswith("_")):
        assert callable(getattr(SqliteStore, name, None)), name


# --- roundtrips --------------------------------------------------------------------------


async def test_thread_roundtrip_and_touch(store: SqliteStore) -> None:
    record = _thread(1, mode="eco")
    assert await store.get_thread(record.key) is None
    await store.save_thread(record)
    assert await store.get_thread(record.key) == record

    await store.touch_thread(record.key, at=2000.0)
    touched = await store.get_thread(record.key)
    assert touched is not None and touched.last_used_at == 2000.0
    assert touched.created_at == record.created_at

    replaced = ThreadRecord(record.key, "sess-new", "u9", 1.0, 2.0, None)
    await store.save_thread(replaced)
    assert await store.get_thread(record.key) == replaced


async def test_channel_defaults_and_eco(store: SqliteStore) -> None:
    key = ChannelKey("slack", "T1", "C9")
    assert await store.get_channel(key) == ChannelSettings()
    await store.set_channel_eco(key, eco=True, by="U7", at=5.0)
    assert await store.get_channel(key) == ChannelSettings(
        eco=True, changed_by="U7", changed_at=5.0
    )
    await store.set_channel_eco(key, eco=False, by="U8", at=6.0)
    assert await store.get_channel(key) == ChannelSettings(False, "U8", 6.0)
    assert await store.get_channel(ChannelKey("slack", "T1", "other")) == ChannelSettings()


async def test_turn_roundtrip_and_finish(store: SqliteStore) -> None:
    turn = _turn("turn-1")
    await store.begin_turn(turn)
    assert await store.get_turn("turn-1") == turn
    await store.finish_turn("turn-1", status=TurnStatus.DONE, at=12.5)
    finished = await store.get_turn("turn-1")
    assert finished is not None
    assert (finished.status, finished.finished_at, finished.mode) == (TurnStatus.DONE, 12.5, "eco")
    assert await store.get_turn("missing") is None


async def test_generation_roundtrip(store: SqliteStore) -> None:
    first = GenerationRecord("https://cdn/a.png", "image", "sess-1", KEY, "m1", 1.0)
    second = GenerationRecord("https://cdn/b.mp4", "video", "sess-1", KEY, None, 2.0)
    await store.add_generation(first)
    await store.add_generation(second)
    await store.add_generation(GenerationRecord("https://x", "image", "other", KEY, None, 3.0))
    assert await store.generations_for_session("sess-1") == [first, second]


async def test_job_roundtrip_and_running(store: SqliteStore) -> None:
    job = _job()
    await store.save_job(job)
    assert await store.get_job("job-1") == job
    assert await store.get_job("nope") is None
    assert await store.running_jobs() == [job]

    done = await store.finish_job(
        "job-1", status=JobStatus.SUCCEEDED, output=("https://a", "https://b"), error=None, at=60.0
    )
    assert done
    stored = await store.get_job("job-1")
    assert stored is not None
    assert stored.status is JobStatus.SUCCEEDED
    assert stored.output == ("https://a", "https://b")
    assert stored.finished_at == 60.0
    assert await store.running_jobs() == []


# --- atomic claims -----------------------------------------------------------------------


async def test_claim_event_once_then_redelivery(store: SqliteStore) -> None:
    assert await store.claim_event("slack", "Ev1", now=100.0, ttl=60.0)
    assert not await store.claim_event("slack", "Ev1", now=101.0, ttl=60.0)
    # the same id on another platform is a different event
    assert await store.claim_event("discord", "Ev1", now=101.0, ttl=60.0)


async def test_claim_event_concurrently_has_one_winner(store: SqliteStore) -> None:
    results = await asyncio.gather(
        *(store.claim_event("slack", "EvRace", now=1.0, ttl=10.0) for _ in range(20))
    )
    assert results.count(True) == 1


async def test_expired_event_reclaimed_and_purged(store: SqliteStore) -> None:
    assert await store.claim_event("slack", "old", now=0.0, ttl=10.0)
    assert await store.claim_event("slack", "fresh", now=5.0, ttl=100.0)
    assert not await store.claim_event("slack", "old", now=9.0, ttl=10.0)
    assert await store.claim_event("slack", "old", now=10.0, ttl=10.0)  # expired → reclaim
    assert not await store.claim_event("slack", "old", now=11.0, ttl=10.0)

    assert await store.purge(now=21.0) == 1  # "old" (expires 20) goes, "fresh" (105) stays
    assert await store.purge(now=21.0) == 0
    assert not await store.claim_event("slack", "fresh", now=22.0, ttl=1.0)
    assert await store.claim_event("slack", "old", now=22.0, ttl=1.0)


async def test_finish_job_only_once(store: SqliteStore) -> None:
    await store.save_job(_job("job-race"))
    results = await asyncio.gather(
        *(
            store.finish_job(
                "job-race", status=status, output=(f"out-{i}",), error=None, at=float(i)
            )
            for i, status in enumerate((JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED))
        )
    )
    assert results.count(True) == 1
    winner = results.index(True)
    stored = await store.get_job("job-race")
    assert stored is not None and stored.output == (f"out-{winner}",)
    assert not await store.finish_job(
        "job-race", status=JobStatus.FAILED, output=(), error="late", at=99.0
    )
    assert not await store.finish_job(
        "unknown", status=JobStatus.FAILED, output=(), error=None, at=1
    )


async def test_interrupt_running_turns(store: SqliteStore) -> None:
    await store.begin_turn(_turn("a", at=1.0))
    await store.begin_turn(_turn("b", at=2.0))
    await store.begin_turn(_turn("c", status=TurnStatus.DONE, at=3.0))

    interrupted = await store.interrupt_running_turns(at=50.0)
    assert [turn.id for turn in interrupted] == ["a", "b"]
    assert all(turn.status is TurnStatus.INTERRUPTED for turn in interrupted)
    assert all(turn.finished_at == 50.0 for turn in interrupted)
    assert interrupted[0].prompt == "draw a cat" and interrupted[0].key == KEY

    stored_c = await store.get_turn("c")
    assert stored_c is not None and stored_c.status is TurnStatus.DONE
    assert await store.interrupt_running_turns(at=60.0) == []


async def test_two_hundred_concurrent_writers_all_land(store: SqliteStore) -> None:
    n = 200
    await asyncio.gather(
        *(store.save_thread(_thread(i)) for i in range(n)),
        *(store.begin_turn(_turn(f"turn-{i}")) for i in range(n)),
        *(store.claim_event("discord", f"ev-{i}", now=0.0, ttl=60.0) for i in range(n)),
    )
    threads = await asyncio.gather(*(store.get_thread(_thread(i).key) for i in range(n)))
    assert threads == [_thread(i) for i in range(n)]
    turns = await asyncio.gather(*(store.get_turn(f"turn-{i}") for i in range(n)))
    assert all(turn is not None for turn in turns)
    assert len(await store.interrupt_running_turns(at=1.0)) == n
    claims = await asyncio.gather(
        *(store.claim_event("discord", f"ev-{i}", now=1.0, ttl=60.0) for i in range(n))
    )
    assert not any(claims)


# --- files, migrations, URLs -------------------------------------------------------------


async def test_data_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "bot.db"
    first = await SqliteStore.open(str(path))
    await first.save_thread(_thread(3))
    await first.set_channel_eco(KEY.channel_key, eco=True, by="U1", at=1.0)
    await first.save_job(_job())
    assert await first.claim_event("slack", "E1", now=0.0, ttl=100.0)
    await first.close()

    second = await SqliteStore.open(str(path))
    try:
        assert await second.get_thread(_thread(3).key) == _thread(3)
        assert (await second.get_channel(KEY.channel_key)).eco
        assert await second.get_job("job-1") == _job()
        assert not await second.claim_event("slack", "E1", now=1.0, ttl=100.0)
    finally:
        await second.close()


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
    assert migrations[0][0] == 1
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


async def test_open_store_from_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    memory = await open_store("sqlite://:memory:")
    await memory.save_thread(_thread(1))
    assert await memory.get_thread(_thread(1).key) == _thread(1)
    await memory.close()

    absolute = tmp_path / "abs" / "bot.db"
    store = await open_store(f"sqlite:///{absolute}")  # sqlite:////tmp/... form
    await store.close()
    assert absolute.exists()

    monkeypatch.chdir(tmp_path)
    relative = await open_store("sqlite:///rel/bot.db")
    await relative.close()
    assert (tmp_path / "rel" / "bot.db").exists()
