"""`bot.ports.Store` on SQLite (aiosqlite): the embedded default.

One connection does everything. aiosqlite runs every call on one worker thread, so calls never
overlap; the connection is in autocommit mode and every write that must be exactly-once is a
single statement, which SQLite makes atomic (that is what `claim_event`, `finish_job`,
`interrupt_running_turns`, `take_over_jobs` and the leases rely on, also across processes
sharing the file). The only multi-statement transactions are the migrations and
`take_quota` (`storage.sqlite_operators`), and a lock keeps single-statement writes from
landing inside one of them.

The schema lives in numbered `storage/migrations/sqlite/NNNN_name.sql` files, applied in
order, each in its own transaction, and tracked by `PRAGMA user_version`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import aiosqlite

from bot.models import (
    BudgetRefusal,
    ChannelKey,
    ChannelSettings,
    GenerationRecord,
    JobRecord,
    JobStatus,
    ThreadKey,
    ThreadRecord,
    ThreadSummary,
    TurnRecord,
    TurnStatus,
)
from storage import records
from storage.records import (
    CHANNEL_COLUMNS,
    GENERATION_COLUMNS,
    JOB_COLUMNS,
    TURN_COLUMNS,
    key_params,
)
from storage.sqlite_operators import SqliteOperators

log = logging.getLogger(__name__)

MEMORY = ":memory:"
_BUSY_TIMEOUT_MS = 5000
_WAL_ATTEMPTS = 50
_RUNNING = str(TurnStatus.RUNNING)
# The owner of a row is dead if it never beat or last beat before the cut-off (the second ?).
_OWNER_STALE = (
    "(owner IS NULL OR NOT EXISTS (SELECT 1 FROM replicas "
    "WHERE replicas.id = owner AND replicas.seen_at >= ?))"
)


def load_migrations() -> list[tuple[int, str]]:
    """Every SQLite migration shipped with the package as (version, sql), lowest first."""
    return records.load_migrations("sqlite")


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
    """Open (creating and migrating if needed) the store behind a `sqlite:` `DATABASE_URL`.
    Kept for callers written before `storage.open_store` picked the engine by scheme."""
    return await SqliteStore.open(sqlite_path_from_url(database_url))


class SqliteStore(SqliteOperators):
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
        the database at the last good version. Another process opening the same new file at
        the same moment may apply a version first; that one is then skipped, not an error."""
        pending = load_migrations() if migrations is None else list(migrations)
        applied: list[int] = []
        async with self._lock:
            current = await self.schema_version()
            _warn_if_newer(current, pending)
            for version, sql in pending:
                if version <= current:
                    continue
                if await self._apply(version, sql):
                    applied.append(version)
                current = max(version, await self.schema_version())
        if applied:
            log.info("applied database migrations %s", applied)
        return applied

    async def _apply(self, version: int, sql: str) -> bool:
        """Run one migration; False if another process had already applied it."""
        try:
            await self._conn.executescript(
                f"BEGIN IMMEDIATE;\n{sql}\n;PRAGMA user_version = {int(version)};\nCOMMIT;"
            )
        except sqlite3.Error:
            if self._conn.in_transaction:
                await self._conn.execute("ROLLBACK")
            # BEGIN IMMEDIATE waited for the other process's migration; ours then failed on
            # its tables. The version it left says whether that is all that happened.
            if await self.schema_version() >= version:
                return False
            raise
        except BaseException:
            if self._conn.in_transaction:
                await self._conn.execute("ROLLBACK")
            raise
        return True

    # --- threads ----------------------------------------------------------------------------

    async def get_thread(self, key: ThreadKey) -> ThreadRecord | None:
        row = await self._one(
            "SELECT session_id, owner_id, mode, created_at, last_used_at FROM threads "
            "WHERE platform=? AND workspace=? AND channel=? AND thread=?",
            key_params(key),
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
            mode=records.mode_or_none(mode),
        )

    async def save_thread(self, record: ThreadRecord) -> None:
        await self._write(
            "INSERT OR REPLACE INTO threads (platform, workspace, channel, thread, session_id, "
            "owner_id, mode, created_at, last_used_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                *key_params(record.key),
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
            (at, *key_params(key)),
        )

    async def add_generation(self, record: GenerationRecord) -> None:
        await self._write(
            f"INSERT INTO generations ({GENERATION_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            records.generation_params(record),
        )

    async def get_generation(self, generation_id: str) -> GenerationRecord | None:
        row = await self._one(
            f"SELECT {GENERATION_COLUMNS} FROM generations WHERE generation_id=?",
            (generation_id,),
        )
        return None if row is None else records.generation_from_row(row)

    # --- channels ---------------------------------------------------------------------------

    async def get_channel(self, key: ChannelKey) -> ChannelSettings:
        row = await self._one(
            f"SELECT {CHANNEL_COLUMNS} FROM channels "
            "WHERE platform=? AND workspace=? AND channel=?",
            (key.platform, key.workspace, key.channel),
        )
        return records.channel_from_row(row)

    async def set_channel_eco(self, key: ChannelKey, *, eco: bool, by: str, at: float) -> None:
        await self._write(
            "INSERT INTO channels (platform, workspace, channel, eco, changed_by, changed_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (platform, workspace, channel) DO UPDATE SET "
            "eco=excluded.eco, changed_by=excluded.changed_by, changed_at=excluded.changed_at",
            (key.platform, key.workspace, key.channel, int(eco), by, at),
        )

    async def set_channel_web_search(
        self, key: ChannelKey, *, web_search: bool | None, by: str, at: float
    ) -> None:
        await self._set_channel(
            "web_search", None if web_search is None else int(web_search), key, by=by, at=at
        )

    async def set_channel_safety(
        self, key: ChannelKey, *, enabled: bool, by: str, at: float
    ) -> None:
        await self._set_channel("safety_checker", int(enabled), key, by=by, at=at)

    async def _set_channel(
        self, column: str, value: Any, key: ChannelKey, *, by: str, at: float
    ) -> None:
        """One upsert of one setting column (a name from this module, never from input)."""
        await self._write(
            f"INSERT INTO channels (platform, workspace, channel, {column}, changed_by, "
            "changed_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (platform, workspace, channel) "
            f"DO UPDATE SET {column}=excluded.{column}, changed_by=excluded.changed_by, "
            "changed_at=excluded.changed_at",
            (key.platform, key.workspace, key.channel, value, by, at),
        )

    # --- turns ------------------------------------------------------------------------------

    async def begin_turn(self, record: TurnRecord) -> None:
        await self._write(
            f"INSERT OR REPLACE INTO turns ({TURN_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            records.turn_params(record),
        )

    async def finish_turn(self, turn_id: str, *, status: TurnStatus, at: float) -> None:
        await self._write(
            "UPDATE turns SET status=?, finished_at=? WHERE id=? AND status=?",
            (str(status), at, turn_id, _RUNNING),
        )
        await self._write("DELETE FROM stop_requests WHERE turn_id=?", (turn_id,))

    async def get_turn(self, turn_id: str) -> TurnRecord | None:
        row = await self._one(f"SELECT {TURN_COLUMNS} FROM turns WHERE id=?", (turn_id,))
        return None if row is None else records.turn_from_row(row)

    async def interrupt_running_turns(
        self, *, at: float, stale_before: float | None = None, replica_id: str | None = None
    ) -> list[TurnRecord]:
        """One `UPDATE ... RETURNING`, so a turn that finishes concurrently (or that another
        process interrupts) is either returned here as interrupted or not at all."""
        sql = "UPDATE turns SET status=?, finished_at=? WHERE status=?"
        params: list[Any] = [str(TurnStatus.INTERRUPTED), at, _RUNNING]
        if stale_before is not None:
            sql += f" AND (owner IS ? OR {_OWNER_STALE})"
            params += [replica_id, stale_before]
        rows = await self._write_returning(f"{sql} RETURNING {TURN_COLUMNS}", params)
        turns = [records.turn_from_row(row) for row in rows]
        turns.sort(key=lambda turn: (turn.started_at, turn.id))
        return turns

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

    async def purge_events(self, *, now: float) -> int:
        return await self._write("DELETE FROM events WHERE expires_at <= ?", (now,))

    # --- jobs -------------------------------------------------------------------------------

    async def save_job(self, record: JobRecord) -> None:
        await self._write(
            f"INSERT OR REPLACE INTO jobs ({JOB_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            records.job_params(record, json.dumps(list(record.output))),
        )

    async def get_job(self, job_id: str) -> JobRecord | None:
        row = await self._one(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id=?", (job_id,))
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
            (str(status), json.dumps(list(output)), error, at, job_id, _RUNNING),
        )
        return changed == 1

    async def running_jobs(self) -> list[JobRecord]:
        rows = await self._all(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE status=? ORDER BY created_at, id", (_RUNNING,)
        )
        return [_job_from_row(row) for row in rows]

    # --- replicas ---------------------------------------------------------------------------

    async def heartbeat(self, replica_id: str, *, at: float) -> None:
        await self._write(
            "INSERT INTO replicas (id, seen_at) VALUES (?, ?) "
            "ON CONFLICT (id) DO UPDATE SET seen_at=excluded.seen_at",
            (replica_id, at),
        )

    async def take_over_jobs(
        self, replica_id: str, *, stale_before: float, at: float
    ) -> list[JobRecord]:
        """The caller beats first, so the jobs it takes are not stale the moment it has them;
        the take-over itself is one `UPDATE ... RETURNING`."""
        await self.heartbeat(replica_id, at=at)
        rows = await self._write_returning(
            f"UPDATE jobs SET owner=? WHERE status=? AND {_OWNER_STALE} RETURNING {JOB_COLUMNS}",
            (replica_id, _RUNNING, stale_before),
        )
        jobs = [_job_from_row(row) for row in rows]
        jobs.sort(key=lambda job: (job.created_at, job.id))
        return jobs

    async def request_stop(self, turn_id: str, *, at: float) -> bool:
        """One statement that records the request only while the turn runs; a second click
        keeps the first request's time and still says True."""
        changed = await self._write(
            "INSERT INTO stop_requests (turn_id, requested_at) SELECT ?, ? "
            "WHERE EXISTS (SELECT 1 FROM turns WHERE id=? AND status=?) "
            "ON CONFLICT (turn_id) DO UPDATE SET requested_at=stop_requests.requested_at",
            (turn_id, at, turn_id, _RUNNING),
        )
        return changed == 1

    async def stop_requested(self, turn_ids: Iterable[str]) -> set[str]:
        wanted = json.dumps(list(turn_ids))
        rows = await self._all(
            "SELECT turn_id FROM stop_requests WHERE turn_id IN (SELECT value FROM json_each(?))",
            (wanted,),
        )
        return {row[0] for row in rows}

    # --- leases -----------------------------------------------------------------------------

    async def take_token(self, name: str, *, rate: float, burst: float, now: float) -> float:
        rows = await self._write_returning(
            "INSERT INTO budgets (name, tokens, at) VALUES (?, ? - 1, ?) "
            "ON CONFLICT (name) DO UPDATE SET "
            # refill for the time passed (never backwards), up to the burst, then take one
            "tokens = min(excluded.tokens + 1, "
            "budgets.tokens + max(0, excluded.at - budgets.at) * ?) - 1, "
            "at = max(budgets.at, excluded.at) RETURNING tokens",
            (name, burst, now, rate),
        )
        return _wait_for(float(rows[0][0]), rate)

    async def block_budget(
        self, name: str, *, rate: float, burst: float, now: float, until: float
    ) -> None:
        # refill to `now` as take_token would, then owe what refills by `until`
        await self._write(
            "INSERT INTO budgets (name, tokens, at) VALUES (?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET "
            "tokens = min(min(?, budgets.tokens + max(0, excluded.at - budgets.at) * ?), "
            "excluded.tokens), at = max(budgets.at, excluded.at)",
            (name, -max(0.0, until - now) * rate, now, burst, rate),
        )

    async def record_refusal(self, refusal: BudgetRefusal) -> None:
        r = refusal
        await self._write(
            "INSERT INTO budget_refusals (name, source, rate, ceiling, until_at, at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
            "source=excluded.source, rate=excluded.rate, ceiling=excluded.ceiling, "
            "until_at=excluded.until_at, at=excluded.at",
            (r.name, r.source, r.rate, r.ceiling, r.until, r.at),
        )

    async def refusals_since(self, at: float) -> list[BudgetRefusal]:
        rows = await self._all(
            "SELECT name, source, rate, ceiling, until_at, at FROM budget_refusals "
            "WHERE at > ? ORDER BY at",
            (at,),
        )
        return [BudgetRefusal(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]

    async def acquire_lease(self, name: str, holder: str, *, ttl: float, now: float) -> bool:
        """One upsert that takes a free or expired lease or renews the holder's own; the
        changed-row count says whether it did."""
        changed = await self._write(
            "INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET holder=excluded.holder, "
            "expires_at=excluded.expires_at "
            "WHERE leases.holder=excluded.holder OR leases.expires_at <= ?",
            (name, holder, now + ttl, now),
        )
        return changed == 1

    async def release_lease(self, name: str, holder: str) -> bool:
        changed = await self._write("DELETE FROM leases WHERE name=? AND holder=?", (name, holder))
        return changed == 1

    async def count_leases(self, prefix: str, *, now: float) -> int:
        # substr, not LIKE: LIKE ignores ASCII case and treats % and _ in ids as wildcards.
        row = await self._one(
            "SELECT count(*) FROM leases WHERE substr(name, 1, length(?)) = ? AND expires_at > ?",
            (prefix, prefix, now),
        )
        return int(row[0])

    # --- history ----------------------------------------------------------------------------

    async def recent_threads(
        self, platform: str, workspace: str, user_id: str, *, limit: int
    ) -> list[ThreadSummary]:
        who = (platform, workspace, user_id)
        rows = await self._all(records.recent_threads_sql("?"), (*who, *who, max(0, limit)))
        return [records.summary_from_row(row) for row in rows]

    async def turn_counts(
        self, platform: str, workspace: str, user_id: str, *, since: Sequence[float]
    ) -> list[int]:
        cutoffs = list(since)
        if not cutoffs:
            return []
        row = await self._one(
            records.turn_counts_sql("?", len(cutoffs)),
            (*cutoffs, platform, workspace, user_id, min(cutoffs)),
        )
        return [int(value) for value in row]

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
    await conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
    await _enable_wal(conn)
    await conn.execute("PRAGMA synchronous=NORMAL")
    await conn.execute("PRAGMA foreign_keys=ON")


async def _enable_wal(conn: aiosqlite.Connection) -> None:
    """Switch to WAL, retrying while another process switches the same new file: SQLite
    answers that race with SQLITE_BUSY at once instead of waiting out the busy timeout."""
    for _ in range(_WAL_ATTEMPTS - 1):
        try:
            await conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as err:
            if err.sqlite_errorcode != sqlite3.SQLITE_BUSY:
                raise
        await asyncio.sleep(_BUSY_TIMEOUT_MS / 1000 / _WAL_ATTEMPTS)
    await conn.execute("PRAGMA journal_mode=WAL")


def _warn_if_newer(current: int, migrations: Sequence[tuple[int, str]]) -> None:
    latest = max((version for version, _ in migrations), default=0)
    if current > latest:
        log.warning(
            "database schema version %d is newer than this release knows (%d)", current, latest
        )


def _job_from_row(row: Sequence[Any]) -> JobRecord:
    return records.job_from_row(row, json.loads(row[14] or "[]"))


def _wait_for(tokens: float, rate: float) -> float:
    """A bucket left below zero: the caller's token comes due once the debt is refilled."""
    return 0.0 if tokens >= 0 else -tokens / rate
