"""`bot.ports.Store` on SQLite (aiosqlite): the embedded default.

One connection does everything. aiosqlite runs every call on one worker thread, so calls never
overlap; the connection is in autocommit mode and every write is a single statement, which
SQLite makes atomic (that is what `claim_event` and `finish_job` rely on, also across
processes sharing the file). The only multi-statement transactions are the migrations, and a
lock keeps single-statement writes from landing inside one of them.

The schema lives in numbered `storage/migrations/NNNN_name.sql` files, applied in order, each
in its own transaction, and tracked by `PRAGMA user_version`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import aiosqlite

from bot.models import (
    ChannelKey,
    ChannelSettings,
    GenerationRecord,
    JobKind,
    JobRecord,
    JobStatus,
    Mode,
    ThreadKey,
    ThreadRecord,
    TurnRecord,
    TurnStatus,
)

log = logging.getLogger(__name__)

MEMORY = ":memory:"
_MIGRATION_NAME = re.compile(r"^(\d+)_[\w-]+\.sql$")
_BUSY_TIMEOUT_MS = 5000

_TURN_COLUMNS = (
    "id, platform, workspace, channel, thread, user_id, prompt, status, mode, "
    "started_at, finished_at"
)
_JOB_COLUMNS = (
    "id, kind, remote_id, platform, workspace, channel, thread, user_id, webhook_secret, "
    "status, title, message_id, created_at, finished_at, output, error"
)


def load_migrations() -> list[tuple[int, str]]:
    """Every migration shipped with the package as (version, sql), lowest version first."""
    found: list[tuple[int, str]] = []
    for entry in (resources.files("storage") / "migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.read_text(encoding="utf-8")))
    found.sort()
    versions = [version for version, _ in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration numbers: {versions}")
    return found


def sqlite_path_from_url(database_url: str) -> str:
    """The file behind a `sqlite:` URL: `sqlite:///relative.db` (relative to the working
    directory), `sqlite:////abs/path.db`, or `sqlite://:memory:` (also `sqlite:///:memory:`)."""
    if not database_url.startswith("sqlite:"):
        raise ValueError("only sqlite:// DATABASE_URLs are supported")
    rest = database_url.removeprefix("sqlite:")
    if not rest.startswith("//"):
        raise ValueError(f"not a sqlite URL: {database_url!r} (expected sqlite:///file.db)")
    rest = rest.removeprefix("//")
    if rest in (MEMORY, "/" + MEMORY):
        return MEMORY
    if not rest.startswith("/"):
        # sqlite://host/... has no meaning for a local file; say so rather than guess.
        raise ValueError(f"not a sqlite URL: {database_url!r} (expected sqlite:///file.db)")
    path = rest.removeprefix("/")
    if not path:
        raise ValueError(f"no file in DATABASE_URL {database_url!r}")
    return path


async def open_store(database_url: str) -> SqliteStore:
    """Open (creating and migrating if needed) the store behind `DATABASE_URL`."""
    return await SqliteStore.open(sqlite_path_from_url(database_url))


class SqliteStore:
    """Durable bot state in one SQLite file. Build it with `await SqliteStore.open(path)`."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: str) -> SqliteStore:
        """Connect, set the pragmas and apply pending migrations. `":memory:"` gives a private
        in-memory database (handy in tests); a file path gets its parent directories made."""
        if path != MEMORY:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        conn = await aiosqlite.connect(path, isolation_level=None)
        try:
            await _configure(conn)
            store = cls(conn)
            await store.migrate()
        except BaseException:
            await conn.close()
            raise
        return store

    async def close(self) -> None:
        await self._conn.close()

    # --- schema -----------------------------------------------------------------------------

    async def schema_version(self) -> int:
        row = await self._one("PRAGMA user_version")
        return int(row[0]) if row else 0

    async def migrate(self, migrations: Sequence[tuple[int, str]] | None = None) -> list[int]:
        """Apply every migration newer than `PRAGMA user_version`; return the versions applied.
        Each runs in its own transaction together with the version bump, so a failure leaves
        the database at the last good version."""
        pending = load_migrations() if migrations is None else list(migrations)
        applied: list[int] = []
        async with self._lock:
            current = await self.schema_version()
            latest = max((version for version, _ in pending), default=0)
            if current > latest:
                log.warning(
                    "database schema version %d is newer than this release knows (%d)",
                    current,
                    latest,
                )
            for version, sql in pending:
                if version <= current:
                    continue
                await self._apply(version, sql)
                applied.append(version)
                current = version
        if applied:
            log.info("applied database migrations %s", applied)
        return applied

    async def _apply(self, version: int, sql: str) -> None:
        try:
            await self._conn.executescript(
                f"BEGIN IMMEDIATE;\n{sql}\n;PRAGMA user_version = {int(version)};\nCOMMIT;"
            )
        except BaseException:
            if self._conn.in_transaction:
                await self._conn.execute("ROLLBACK")
            raise

    # --- threads ----------------------------------------------------------------------------

    async def get_thread(self, key: ThreadKey) -> ThreadRecord | None:
        row = await self._one(
            "SELECT session_id, owner_id, mode, created_at, last_used_at FROM threads "
            "WHERE platform=? AND workspace=? AND channel=? AND thread=?",
            _key_params(key),
        )
        if row is None:
            return None
        session_id, owner_id, mode, created_at, last_used_at = row
        return ThreadRecord(
            key=key,
            session_id=session_id,
            owner_id=owner_id,
            created_at=created_at,
            last_used_at=last_used_at,
            mode=_mode_or_none(mode),
        )

    async def save_thread(self, record: ThreadRecord) -> None:
        await self._write(
            "INSERT OR REPLACE INTO threads (platform, workspace, channel, thread, session_id, "
            "owner_id, mode, created_at, last_used_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                *_key_params(record.key),
                record.session_id,
                record.owner_id,
                record.mode,
                record.created_at,
                record.last_used_at,
            ),
        )

    async def touch_thread(self, key: ThreadKey, *, at: float) -> None:
        await self._write(
            "UPDATE threads SET last_used_at=? "
            "WHERE platform=? AND workspace=? AND channel=? AND thread=?",
            (at, *_key_params(key)),
        )

    # --- channels ---------------------------------------------------------------------------

    async def get_channel(self, key: ChannelKey) -> ChannelSettings:
        row = await self._one(
            "SELECT eco, changed_by, changed_at FROM channels "
            "WHERE platform=? AND workspace=? AND channel=?",
            (key.platform, key.workspace, key.channel),
        )
        if row is None:
            return ChannelSettings()
        return ChannelSettings(eco=bool(row[0]), changed_by=row[1], changed_at=row[2])

    async def set_channel_eco(self, key: ChannelKey, *, eco: bool, by: str, at: float) -> None:
        await self._write(
            "INSERT INTO channels (platform, workspace, channel, eco, changed_by, changed_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (platform, workspace, channel) DO UPDATE SET "
            "eco=excluded.eco, changed_by=excluded.changed_by, changed_at=excluded.changed_at",
            (key.platform, key.workspace, key.channel, int(eco), by, at),
        )

    # --- turns ------------------------------------------------------------------------------

    async def begin_turn(self, record: TurnRecord) -> None:
        await self._write(
            f"INSERT OR REPLACE INTO turns ({_TURN_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.id,
                *_key_params(record.key),
                record.user_id,
                record.prompt,
                str(record.status),
                record.mode,
                record.started_at,
                record.finished_at,
            ),
        )

    async def finish_turn(self, turn_id: str, *, status: TurnStatus, at: float) -> None:
        await self._write(
            "UPDATE turns SET status=?, finished_at=? WHERE id=?", (str(status), at, turn_id)
        )

    async def get_turn(self, turn_id: str) -> TurnRecord | None:
        row = await self._one(f"SELECT {_TURN_COLUMNS} FROM turns WHERE id=?", (turn_id,))
        return None if row is None else _turn_from_row(row)

    async def interrupt_running_turns(self, *, at: float) -> list[TurnRecord]:
        """One `UPDATE ... RETURNING`, so a turn that finishes concurrently is either returned
        as interrupted or keeps its own status, never both."""
        rows = await self._write_returning(
            f"UPDATE turns SET status=?, finished_at=? WHERE status=? RETURNING {_TURN_COLUMNS}",
            (str(TurnStatus.INTERRUPTED), at, str(TurnStatus.RUNNING)),
        )
        turns = [_turn_from_row(row) for row in rows]
        turns.sort(key=lambda turn: (turn.started_at, turn.id))
        return turns

    # --- generations ------------------------------------------------------------------------

    async def add_generation(self, record: GenerationRecord) -> None:
        await self._write(
            "INSERT INTO generations (url, media_type, session_id, platform, workspace, "
            "channel, thread, message_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.url,
                record.media_type,
                record.session_id,
                *_key_params(record.key),
                record.message_id,
                record.created_at,
            ),
        )

    async def generations_for_session(self, session_id: str) -> list[GenerationRecord]:
        """Every file generated in a session, oldest first (not part of `Store`; for tools)."""
        rows = await self._all(
            "SELECT url, media_type, session_id, platform, workspace, channel, thread, "
            "message_id, created_at FROM generations WHERE session_id=? ORDER BY id",
            (session_id,),
        )
        return [
            GenerationRecord(
                url=row[0],
                media_type=row[1],
                session_id=row[2],
                key=ThreadKey(row[3], row[4], row[5], row[6]),
                message_id=row[7],
                created_at=row[8],
            )
            for row in rows
        ]

    # --- events -----------------------------------------------------------------------------

    async def claim_event(self, platform: str, event_id: str, *, now: float, ttl: float) -> bool:
        """A single upsert: it inserts a new id, or takes over a row whose time ran out, and
        otherwise changes nothing, so the changed-row count says who won."""
        changed = await self._write(
            "INSERT INTO events (platform, event_id, expires_at) VALUES (?, ?, ?) "
            "ON CONFLICT (platform, event_id) DO UPDATE SET expires_at=excluded.expires_at "
            "WHERE events.expires_at <= ?",
            (platform, event_id, now + ttl, now),
        )
        return changed == 1

    async def purge(self, *, now: float) -> int:
        """Forget event ids whose time ran out; return how many went."""
        return await self._write("DELETE FROM events WHERE expires_at <= ?", (now,))

    # --- jobs -------------------------------------------------------------------------------

    async def save_job(self, record: JobRecord) -> None:
        await self._write(
            f"INSERT OR REPLACE INTO jobs ({_JOB_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.id,
                str(record.kind),
                record.remote_id,
                *_key_params(record.key),
                record.user_id,
                record.webhook_secret,
                str(record.status),
                record.title,
                record.message_id,
                record.created_at,
                record.finished_at,
                json.dumps(list(record.output)),
                record.error,
            ),
        )

    async def get_job(self, job_id: str) -> JobRecord | None:
        row = await self._one(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id=?", (job_id,))
        return None if row is None else _job_from_row(row)

    async def finish_job(
        self,
        job_id: str,
        *,
        status: JobStatus,
        output: tuple[str, ...],
        error: str | None,
        at: float,
    ) -> bool:
        changed = await self._write(
            "UPDATE jobs SET status=?, output=?, error=?, finished_at=? WHERE id=? AND status=?",
            (str(status), json.dumps(list(output)), error, at, job_id, str(JobStatus.RUNNING)),
        )
        return changed == 1

    async def running_jobs(self) -> list[JobRecord]:
        rows = await self._all(
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE status=? ORDER BY created_at, id",
            (str(JobStatus.RUNNING),),
        )
        return [_job_from_row(row) for row in rows]

    # --- plumbing ---------------------------------------------------------------------------

    async def _write(self, sql: str, params: Iterable[Any] = ()) -> int:
        """Run one write statement; return how many rows it changed."""
        async with self._lock, self._conn.execute(sql, tuple(params)) as cursor:
            return cursor.rowcount

    async def _write_returning(self, sql: str, params: Iterable[Any] = ()) -> list[Any]:
        async with self._lock, self._conn.execute(sql, tuple(params)) as cursor:
            return list(await cursor.fetchall())

    async def _one(self, sql: str, params: Iterable[Any] = ()) -> Any:
        async with self._conn.execute(sql, tuple(params)) as cursor:
            return await cursor.fetchone()

    async def _all(self, sql: str, params: Iterable[Any] = ()) -> list[Any]:
        async with self._conn.execute(sql, tuple(params)) as cursor:
            return list(await cursor.fetchall())


async def _configure(conn: aiosqlite.Connection) -> None:
    """WAL lets readers in other processes work while we write; NORMAL sync is safe with WAL
    (a power cut can lose the last commits, never corrupt the file); the busy timeout makes a
    second process wait for the write lock instead of failing at once."""
    await conn.execute("PRAGMA journal_mode=WAL")
    await conn.execute("PRAGMA synchronous=NORMAL")
    await conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
    await conn.execute("PRAGMA foreign_keys=ON")


def _key_params(key: ThreadKey) -> tuple[str, str, str, str]:
    return (key.platform, key.workspace, key.channel, key.thread)


def _mode_or_none(value: str | None) -> Mode | None:
    if value == "eco":
        return "eco"
    if value == "max":
        return "max"
    return None


def _turn_from_row(row: Sequence[Any]) -> TurnRecord:
    return TurnRecord(
        id=row[0],
        key=ThreadKey(row[1], row[2], row[3], row[4]),
        user_id=row[5],
        prompt=row[6],
        status=TurnStatus(row[7]),
        mode=_mode_or_none(row[8]) or "max",
        started_at=row[9],
        finished_at=row[10],
    )


def _job_from_row(row: Sequence[Any]) -> JobRecord:
    return JobRecord(
        id=row[0],
        kind=JobKind(row[1]),
        remote_id=row[2],
        key=ThreadKey(row[3], row[4], row[5], row[6]),
        user_id=row[7],
        webhook_secret=row[8],
        status=JobStatus(row[9]),
        title=row[10],
        message_id=row[11],
        created_at=row[12],
        finished_at=row[13],
        output=tuple(json.loads(row[14] or "[]")),
        error=row[15],
    )
