"""The operator roles (`UsageStore`, `QuotaStore`, `AccessStore`) on PostgreSQL, mixed into
`storage.postgres.PostgresStore`.

`add_usage` is `INSERT ... ON CONFLICT DO NOTHING`, so of any number of replicas recording
the same event one row lands. `take_quota` is one transaction of conditional upserts
(`ON CONFLICT DO UPDATE ... WHERE used < limit RETURNING`): PostgreSQL re-checks the
condition on the newest row version after waiting for a concurrent writer, so no count passes
its limit; the scopes are taken in sorted order, so two takers never wait on each other in a
cycle, and a full scope rolls the whole take back.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import asyncpg

from bot.operator_records import (
    AccessEntry,
    AccessKind,
    QuotaLimit,
    QuotaName,
    UsageBy,
    UsageEvent,
    UsageLeader,
    UsageTotal,
)
from storage import operator_rows as rows
from storage.operator_rows import ACCESS_COLUMNS, QUOTA_COLUMNS, USAGE_COLUMNS

_C = ' COLLATE "C"'  # byte order, as SQLite sorts, whatever the database's locale


class _Full(Exception):
    """A scope of `take_quota` is at its limit: leave the transaction, undoing the take."""

    def __init__(self, scope: str) -> None:
        super().__init__(scope)
        self.scope = scope


class PostgresOperators:
    """Needs `PostgresStore`'s pool."""

    _pool: asyncpg.Pool

    # --- usage ------------------------------------------------------------------------------

    async def add_usage(self, event: UsageEvent) -> bool:
        added = await self._pool.fetchval(
            f"INSERT INTO usage_events ({USAGE_COLUMNS}) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
            "ON CONFLICT (kind, ref) DO NOTHING RETURNING TRUE",
            *rows.usage_params(event),
        )
        return added is True

    async def usage_totals(
        self,
        platform: str,
        workspace: str,
        *,
        since: float,
        user_id: str | None = None,
        channel: str | None = None,
    ) -> list[UsageTotal]:
        args: list[Any] = [platform, workspace, since]
        args += [v for v in (user_id, channel) if v is not None]
        sql = rows.totals_sql(
            placeholders=[f"${n}" for n in range(1, len(args) + 1)],
            user=user_id is not None,
            channel=channel is not None,
            order=f"kind{_C}, detail{_C}",
        )
        return [rows.total_from_row(row) for row in await self._pool.fetch(sql, *args)]

    async def usage_leaders(
        self, platform: str, workspace: str, *, since: float, by: UsageBy, limit: int
    ) -> list[UsageLeader]:
        sql = rows.leaders_sql(by, placeholders=["$1", "$2", "$3", "$4"], collate=_C)
        found = await self._pool.fetch(sql, platform, workspace, since, limit)
        return [rows.leader_from_row(row) for row in found]

    async def purge_usage(self, *, before: float) -> int:
        status = await self._pool.execute("DELETE FROM usage_events WHERE created_at < $1", before)
        return _row_count(status)

    # --- quotas -----------------------------------------------------------------------------

    async def quota_limits(
        self, platform: str, workspace: str, *, channel: str
    ) -> list[QuotaLimit]:
        found = await self._pool.fetch(
            f"SELECT {QUOTA_COLUMNS} FROM quota_limits WHERE platform=$1 AND workspace=$2 "
            f"AND channel IN ('', $3) ORDER BY channel{_C}, name{_C}",
            platform,
            workspace,
            channel,
        )
        return [rows.quota_from_row(row) for row in found]

    async def set_quota_limit(
        self,
        platform: str,
        workspace: str,
        *,
        channel: str,
        name: QuotaName,
        value: int | None,
        by: str,
        at: float,
    ) -> None:
        if value is None:
            await self._pool.execute(
                "DELETE FROM quota_limits WHERE platform=$1 AND workspace=$2 AND channel=$3 "
                "AND name=$4",
                platform,
                workspace,
                channel,
                name,
            )
            return
        await self._pool.execute(
            "INSERT INTO quota_limits (platform, workspace, channel, name, value, changed_by, "
            "changed_at) VALUES ($1, $2, $3, $4, $5, $6, $7) "
            "ON CONFLICT (platform, workspace, channel, name) DO UPDATE SET "
            "value=EXCLUDED.value, changed_by=EXCLUDED.changed_by, "
            "changed_at=EXCLUDED.changed_at",
            platform,
            workspace,
            channel,
            name,
            value,
            by,
            at,
        )

    async def take_quota(self, takes: Sequence[tuple[str, int]], *, day: int) -> str | None:
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                for scope, limit in sorted(takes):
                    used = await conn.fetchval(
                        "INSERT INTO quota_use (scope, day, used) VALUES ($1, $2, 1) "
                        "ON CONFLICT (scope, day) DO UPDATE SET used = quota_use.used + 1 "
                        "WHERE quota_use.used < $3 RETURNING used",
                        scope,
                        day,
                        limit,
                    )
                    if used is None:
                        raise _Full(scope)
        except _Full as full:
            return full.scope
        return None

    async def quota_used(self, scopes: Iterable[str], *, day: int) -> dict[str, int]:
        wanted = list(scopes)
        found = await self._pool.fetch(
            "SELECT scope, used FROM quota_use WHERE day=$1 AND scope = ANY($2::text[])",
            day,
            wanted,
        )
        used = {row[0]: int(row[1]) for row in found}
        return {scope: used.get(scope, 0) for scope in wanted}

    async def purge_quota_use(self, *, before_day: int) -> int:
        status = await self._pool.execute("DELETE FROM quota_use WHERE day < $1", before_day)
        return _row_count(status)

    # --- access -----------------------------------------------------------------------------

    async def access_entries(self, platform: str, workspace: str) -> list[AccessEntry]:
        found = await self._pool.fetch(
            f"SELECT {ACCESS_COLUMNS} FROM access_rules WHERE platform=$1 AND workspace=$2 "
            f"ORDER BY kind{_C}, value{_C}",
            platform,
            workspace,
        )
        return [rows.access_from_row(row) for row in found]

    async def set_access(self, platform: str, workspace: str, entry: AccessEntry) -> None:
        await self._pool.execute(
            f"INSERT INTO access_rules (platform, workspace, {ACCESS_COLUMNS}) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (platform, workspace, kind, value) "
            "DO UPDATE SET effect=EXCLUDED.effect, changed_by=EXCLUDED.changed_by, "
            "changed_at=EXCLUDED.changed_at",
            platform,
            workspace,
            *rows.access_params(entry),
        )

    async def remove_access(
        self, platform: str, workspace: str, *, kind: AccessKind, value: str
    ) -> bool:
        status = await self._pool.execute(
            "DELETE FROM access_rules WHERE platform=$1 AND workspace=$2 AND kind=$3 AND value=$4",
            platform,
            workspace,
            kind,
            value,
        )
        return _row_count(status) == 1


def _row_count(status: str) -> int:
    """The row count in a command tag such as `DELETE 3`."""
    return int(status.rsplit(" ", 1)[-1])


__all__ = ["PostgresOperators"]
