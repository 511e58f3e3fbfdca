"""`bot.ports.Store` on PostgreSQL (asyncpg): the store for several replicas.

Every exactly-once effect is one statement whose condition PostgreSQL checks again on the
newest version of a row after waiting for a concurrent writer of it (READ COMMITTED): event
claims and leases are `INSERT ... ON CONFLICT DO UPDATE ... WHERE <free or expired>
RETURNING`, finishing a job is `UPDATE ... WHERE status='running' RETURNING`. The two
multi-row sweeps (`interrupt_running_turns`, `take_over_jobs`) also hold a transaction-level
advisory lock, so replicas sweeping at once go one after the other: their row locks cannot
deadlock, and the second sees the first's heartbeat and new owners.

The schema lives in numbered `storage/migrations/postgres/NNNN_name.sql` files, each applied
in its own transaction and recorded in `schema_migrations`, under a session advisory lock so
two replicas starting at once apply each migration once. The connection's `search_path`
picks the schema (`?search_path=name` in the URL, which asyncpg passes on as a setting).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import asyncpg

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
from storage.postgres_operators import PostgresOperators
from storage.records import (
    CHANNEL_COLUMNS,
    GENERATION_COLUMNS,
    JOB_COLUMNS,
    TURN_COLUMNS,
    key_params,
)

log = logging.getLogger(__name__)

_RUNNING = str(TurnStatus.RUNNING)
# Keys per schema, so databases that host several bots (or test schemas) do not wait on
# each other.
_MIGRATION_KEY = "hashtext('eachsense-bot migrations ' || current_schema())"
_SWEEP_KEY = "hashtext('eachsense-bot sweeps ' || current_schema())"
_KEY_WHERE = "platform=$1 AND workspace=$2 AND channel=$3 AND thread=$4"
# The owner of a row is dead if it never beat or last beat before the cut-off ($n).
_OWNER_STALE = (
    "(owner IS NULL OR NOT EXISTS (SELECT 1 FROM replicas "
    "WHERE replicas.id = owner AND replicas.seen_at >= ${n}))"
)


def _placeholders(count: int) -> str:
    return ", ".join(f"${i}" for i in range(1, count + 1))


def _upsert(table: str, columns: str, key: str) -> str:
    """`INSERT` that replaces every non-key column of an existing row (SQLite's
    `INSERT OR REPLACE` for one unique key)."""
    names = [name.strip() for name in columns.split(",")]
    keys = {name.strip() for name in key.split(",")}
    updates = ", ".join(f"{name}=EXCLUDED.{name}" for name in names if name not in keys)
    return (
        f"INSERT INTO {table} ({columns}) VALUES ({_placeholders(len(names))}) "
        f"ON CONFLICT ({key}) DO UPDATE SET {updates}"
    )


_THREAD_COLUMNS = (
    "platform, workspace, channel, thread, session_id, owner_id, mode, created_at, last_used_at"
)
_SAVE_THREAD = _upsert("threads", _THREAD_COLUMNS, "platform, workspace, channel, thread")
_BEGIN_TURN = _upsert("turns", TURN_COLUMNS, "id")
_SAVE_JOB = _upsert("jobs", JOB_COLUMNS, "id")
# ids order byte-wise, as in SQLite, whatever the database's collation
_RECENT_THREADS = records.recent_threads_sql("$", collate='COLLATE "C"')


class PostgresStore(PostgresOperators):
    """Durable bot state in PostgreSQL. Build it with `await PostgresStore.open(url)`."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @classmethod
    async def open(
        cls, database_url: str, *, min_size: int = 1, max_size: int = 10
    ) -> PostgresStore:
        """Connect a pool and apply pending migrations."""
        pool = await asyncpg.create_pool(database_url, min_size=min_size, max_size=max_size)
        try:
            store = cls(pool)
            await store.migrate()
        except BaseException:
            await pool.close()
            raise
        return store

    async def close(self) -> None:
        await self._pool.close()

    # --- schema -----------------------------------------------------------------------------

    async def schema_versions(self) -> list[int]:
        """The migrations recorded in `schema_migrations`, lowest first."""
        rows = await self._pool.fetch("SELECT version FROM schema_migrations ORDER BY version")
        return [int(row[0]) for row in rows]

    async def migrate(self, migrations: Sequence[tuple[int, str]] | None = None) -> list[int]:
        """Apply every migration not in `schema_migrations`; return the versions applied.
        Each runs in one transaction with its record, so a failure changes nothing."""
        pending = records.load_migrations("postgres") if migrations is None else migrations
        async with self._pool.acquire() as conn:
            await conn.execute(f"SELECT pg_advisory_lock({_MIGRATION_KEY})")
            try:
                applied = await _apply_pending(conn, pending)
            finally:
                await conn.execute(f"SELECT pg_advisory_unlock({_MIGRATION_KEY})")
        if applied:
            log.info("applied database migrations %s", applied)
        return applied

    # --- threads ----------------------------------------------------------------------------

    async def get_thread(self, key: ThreadKey) -> ThreadRecord | None:
        row = await self._pool.fetchrow(
            f"SELECT session_id, owner_id, mode, created_at, last_used_at FROM threads "
            f"WHERE {_KEY_WHERE}",
            *key_params(key),
        )
        if row is None:
            return None
        return ThreadRecord(
            key=key,
            session_id=row[0],
            owner_id=row[1],
            created_at=row[3],
            last_used_at=row[4],
            mode=records.mode_or_none(row[2]),
        )

    async def save_thread(self, record: ThreadRecord) -> None:
        await self._pool.execute(
            _SAVE_THREAD,
            *key_params(record.key),
            record.session_id,
            record.owner_id,
            record.mode,
            record.created_at,
            record.last_used_at,
        )

    async def touch_thread(self, key: ThreadKey, *, at: float) -> None:
        await self._pool.execute(
            f"UPDATE threads SET last_used_at=$5 WHERE {_KEY_WHERE}", *key_params(key), at
        )

    async def add_generation(self, record: GenerationRecord) -> None:
        await self._pool.execute(
            f"INSERT INTO generations ({GENERATION_COLUMNS}) VALUES ({_placeholders(11)})",
            *records.generation_params(record),
        )

    async def get_generation(self, generation_id: str) -> GenerationRecord | None:
        row = await self._pool.fetchrow(
            f"SELECT {GENERATION_COLUMNS} FROM generations WHERE generation_id=$1",
            generation_id,
        )
        return None if row is None else records.generation_from_row(row)

    # --- channels ---------------------------------------------------------------------------

    async def get_channel(self, key: ChannelKey) -> ChannelSettings:
        row = await self._pool.fetchrow(
            f"SELECT {CHANNEL_COLUMNS} FROM channels "
            "WHERE platform=$1 AND workspace=$2 AND channel=$3",
            key.platform,
            key.workspace,
            key.channel,
        )
        return records.channel_from_row(row)

    async def set_channel_eco(self, key: ChannelKey, *, eco: bool, by: str, at: float) -> None:
        await self._pool.execute(
            "INSERT INTO channels (platform, workspace, channel, eco, changed_by, changed_at) "
            "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (platform, workspace, channel) "
            "DO UPDATE SET eco=EXCLUDED.eco, changed_by=EXCLUDED.changed_by, "
            "changed_at=EXCLUDED.changed_at",
            key.platform,
            key.workspace,
            key.channel,
            eco,
            by,
            at,
        )

    async def set_channel_web_search(
        self, key: ChannelKey, *, web_search: bool | None, by: str, at: float
    ) -> None:
        await self._set_channel("web_search", web_search, key, by=by, at=at)

    async def set_channel_safety(
        self, key: ChannelKey, *, enabled: bool, by: str, at: float
    ) -> None:
        await self._set_channel("safety_checker", enabled, key, by=by, at=at)

    async def _set_channel(
        self, column: str, value: bool | None, key: ChannelKey, *, by: str, at: float
    ) -> None:
        """One upsert of one setting column (a name from this module, never from input)."""
        await self._pool.execute(
            f"INSERT INTO channels (platform, workspace, channel, {column}, changed_by, "
            "changed_at) VALUES ($1, $2, $3, $4::boolean, $5, $6) "
            f"ON CONFLICT (platform, workspace, channel) DO UPDATE SET "
            f"{column}=EXCLUDED.{column}, changed_by=EXCLUDED.changed_by, "
            "changed_at=EXCLUDED.changed_at",
            key.platform,
            key.workspace,
            key.channel,
            value,
            by,
            at,
        )

    # --- turns ------------------------------------------------------------------------------

    async def begin_turn(self, record: TurnRecord) -> None:
        await self._pool.execute(_BEGIN_TURN, *records.turn_params(record))

    async def finish_turn(self, turn_id: str, *, status: TurnStatus, at: float) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "UPDATE turns SET status=$1, finished_at=$2 WHERE id=$3 AND status=$4",
                str(status),
                at,
                turn_id,
                _RUNNING,
            )
            await conn.execute("DELETE FROM stop_requests WHERE turn_id=$1", turn_id)

    async def get_turn(self, turn_id: str) -> TurnRecord | None:
        row = await self._pool.fetchrow(f"SELECT {TURN_COLUMNS} FROM turns WHERE id=$1", turn_id)
        return None if row is None else records.turn_from_row(row)

    async def interrupt_running_turns(
        self, *, at: float, stale_before: float | None = None, replica_id: str | None = None
    ) -> list[TurnRecord]:
        sql = "UPDATE turns SET status=$1, finished_at=$2 WHERE status=$3"
        args: list[Any] = [str(TurnStatus.INTERRUPTED), at, _RUNNING]
        if stale_before is not None:
            sql += f" AND (owner = $4 OR {_OWNER_STALE.format(n=5)})"
            args += [replica_id, stale_before]
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(f"SELECT pg_advisory_xact_lock({_SWEEP_KEY})")
            rows = await conn.fetch(f"{sql} RETURNING {TURN_COLUMNS}", *args)
        turns = [records.turn_from_row(row) for row in rows]
        turns.sort(key=lambda turn: (turn.started_at, turn.id))
        return turns

    # --- events -----------------------------------------------------------------------------

    async def claim_event(self, platform: str, event_id: str, *, now: float, ttl: float) -> bool:
        """`ON CONFLICT DO NOTHING` alone could never take over an expired claim; the
        conditional `DO UPDATE` does, in the same single statement."""
        won = await self._pool.fetchval(
            "INSERT INTO events (platform, event_id, expires_at) VALUES ($1, $2, $3) "
            "ON CONFLICT (platform, event_id) DO UPDATE SET expires_at=EXCLUDED.expires_at "
            "WHERE events.expires_at <= $4 RETURNING TRUE",
            platform,
            event_id,
            now + ttl,
            now,
        )
        return won is True

    async def purge_events(self, *, now: float) -> int:
        status = await self._pool.execute("DELETE FROM events WHERE expires_at <= $1", now)
        return _row_count(status)

    # --- jobs -------------------------------------------------------------------------------

    async def save_job(self, record: JobRecord) -> None:
        await self._pool.execute(_SAVE_JOB, *records.job_params(record, list(record.output)))

    async def get_job(self, job_id: str) -> JobRecord | None:
        row = await self._pool.fetchrow(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id=$1", job_id)
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
        won = await self._pool.fetchval(
            "UPDATE jobs SET status=$1, output=$2, error=$3, finished_at=$4 "
            "WHERE id=$5 AND status=$6 RETURNING TRUE",
            str(status),
            list(output),
            error,
            at,
            job_id,
            _RUNNING,
        )
        return won is True

    async def running_jobs(self) -> list[JobRecord]:
        rows = await self._pool.fetch(
            f'SELECT {JOB_COLUMNS} FROM jobs WHERE status=$1 ORDER BY created_at, id COLLATE "C"',
            _RUNNING,
        )
        return [_job_from_row(row) for row in rows]

    # --- replicas ---------------------------------------------------------------------------

    async def heartbeat(self, replica_id: str, *, at: float) -> None:
        await _beat(self._pool, replica_id, at)

    async def take_over_jobs(
        self, replica_id: str, *, stale_before: float, at: float
    ) -> list[JobRecord]:
        """The caller beats in the same transaction, so the jobs it takes are not stale to
        the next replica that sweeps."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(f"SELECT pg_advisory_xact_lock({_SWEEP_KEY})")
            await _beat(conn, replica_id, at)
            rows = await conn.fetch(
                f"UPDATE jobs SET owner=$1 WHERE status=$2 AND {_OWNER_STALE.format(n=3)} "
                f"RETURNING {JOB_COLUMNS}",
                replica_id,
                _RUNNING,
                stale_before,
            )
        jobs = [_job_from_row(row) for row in rows]
        jobs.sort(key=lambda job: (job.created_at, job.id))
        return jobs

    async def request_stop(self, turn_id: str, *, at: float) -> bool:
        recorded = await self._pool.fetchval(
            "INSERT INTO stop_requests (turn_id, requested_at) "
            "SELECT $1::text, $2::double precision "
            "WHERE EXISTS (SELECT 1 FROM turns WHERE id=$1 AND status=$3) "
            "ON CONFLICT (turn_id) DO UPDATE SET requested_at=stop_requests.requested_at "
            "RETURNING TRUE",
            turn_id,
            at,
            _RUNNING,
        )
        return recorded is True

    async def stop_requested(self, turn_ids: Iterable[str]) -> set[str]:
        rows = await self._pool.fetch(
            "SELECT turn_id FROM stop_requests WHERE turn_id = ANY($1::text[])", list(turn_ids)
        )
        return {row[0] for row in rows}

    # --- leases -----------------------------------------------------------------------------

    async def take_token(self, name: str, *, rate: float, burst: float, now: float) -> float:
        tokens = await self._pool.fetchval(
            "INSERT INTO budgets (name, tokens, at) VALUES ($1, $2 - 1, $3) "
            "ON CONFLICT (name) DO UPDATE SET "
            "tokens = LEAST($2, budgets.tokens + GREATEST(0, $3 - budgets.at) * $4) - 1, "
            "at = GREATEST(budgets.at, $3) RETURNING tokens",
            name,
            burst,
            now,
            rate,
        )
        tokens = float(tokens)
        return 0.0 if tokens >= 0 else -tokens / rate

    async def block_budget(
        self, name: str, *, rate: float, burst: float, now: float, until: float
    ) -> None:
        # refill to `now` as take_token would, then owe what refills by `until`
        await self._pool.execute(
            "INSERT INTO budgets (name, tokens, at) VALUES ($1, $2, $3) "
            "ON CONFLICT (name) DO UPDATE SET "
            "tokens = LEAST(LEAST($4, budgets.tokens + GREATEST(0, $3 - budgets.at) * $5), "
            "EXCLUDED.tokens), at = GREATEST(budgets.at, $3)",
            name,
            -max(0.0, until - now) * rate,
            now,
            burst,
            rate,
        )

    async def record_refusal(self, refusal: BudgetRefusal) -> None:
        r = refusal
        await self._pool.execute(
            "INSERT INTO budget_refusals (name, source, rate, ceiling, until_at, at) "
            "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO UPDATE SET "
            "source=EXCLUDED.source, rate=EXCLUDED.rate, ceiling=EXCLUDED.ceiling, "
            "until_at=EXCLUDED.until_at, at=EXCLUDED.at",
            r.name,
            r.source,
            r.rate,
            r.ceiling,
            r.until,
            r.at,
        )

    async def refusals_since(self, at: float) -> list[BudgetRefusal]:
        rows = await self._pool.fetch(
            "SELECT name, source, rate, ceiling, until_at, at FROM budget_refusals "
            "WHERE at > $1 ORDER BY at",
            at,
        )
        return [BudgetRefusal(*row) for row in rows]

    async def acquire_lease(self, name: str, holder: str, *, ttl: float, now: float) -> bool:
        won = await self._pool.fetchval(
            "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3) "
            "ON CONFLICT (name) DO UPDATE SET holder=EXCLUDED.holder, "
            "expires_at=EXCLUDED.expires_at "
            "WHERE leases.holder=EXCLUDED.holder OR leases.expires_at <= $4 RETURNING TRUE",
            name,
            holder,
            now + ttl,
            now,
        )
        return won is True

    async def release_lease(self, name: str, holder: str) -> bool:
        status = await self._pool.execute(
            "DELETE FROM leases WHERE name=$1 AND holder=$2", name, holder
        )
        return _row_count(status) == 1

    async def count_leases(self, prefix: str, *, now: float) -> int:
        count = await self._pool.fetchval(
            "SELECT count(*) FROM leases WHERE starts_with(name, $1) AND expires_at > $2",
            prefix,
            now,
        )
        return int(count)

    # --- history ----------------------------------------------------------------------------

    async def recent_threads(
        self, platform: str, workspace: str, user_id: str, *, limit: int
    ) -> list[ThreadSummary]:
        who = (platform, workspace, user_id)
        rows = await self._pool.fetch(_RECENT_THREADS, *who, *who, max(0, limit))
        return [records.summary_from_row(row) for row in rows]

    async def turn_counts(
        self, platform: str, workspace: str, user_id: str, *, since: Sequence[float]
    ) -> list[int]:
        cutoffs = [float(cut) for cut in since]
        if not cutoffs:
            return []
        row = await self._pool.fetchrow(
            records.turn_counts_sql("$", len(cutoffs)),
            *cutoffs,
            platform,
            workspace,
            user_id,
            min(cutoffs),
        )
        return [int(value) for value in row]


async def _apply_pending(conn: Any, migrations: Sequence[tuple[int, str]]) -> list[int]:
    """With the migration lock held: apply what `schema_migrations` lacks, in order."""
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
        "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
    )
    done = {int(row[0]) for row in await conn.fetch("SELECT version FROM schema_migrations")}
    latest = max((version for version, _ in migrations), default=0)
    if done and max(done) > latest:
        log.warning(
            "database schema version %d is newer than this release knows (%d)", max(done), latest
        )
    applied: list[int] = []
    for version, sql in sorted(migrations):
        if version in done:
            continue
        async with conn.transaction():
            await conn.execute(sql)
            await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
        applied.append(version)
    return applied


async def _beat(conn: Any, replica_id: str, at: float) -> None:
    """Upsert the replica's heartbeat on a pool or a connection."""
    await conn.execute(
        "INSERT INTO replicas (id, seen_at) VALUES ($1, $2) "
        "ON CONFLICT (id) DO UPDATE SET seen_at=EXCLUDED.seen_at",
        replica_id,
        at,
    )


def _row_count(status: str) -> int:
    """The row count in a command tag such as `DELETE 3`."""
    return int(status.rsplit(" ", 1)[-1])


def _job_from_row(row: Sequence[Any]) -> JobRecord:
    return records.job_from_row(row, row[14] or ())
