"""The operator roles (`UsageStore`, `QuotaStore`, `AccessStore`) on SQLite, mixed into
`storage.sqlite.SqliteStore`.

Every write is one statement under the store's write lock (autocommit), except
`take_quota`, which counts against two scopes (a person's and a channel's) at once: it is one
`BEGIN IMMEDIATE` transaction, so either every count goes up or none does, also across
processes sharing the file (IMMEDIATE takes SQLite's write lock at once).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import aiosqlite

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


class SqliteOperators:
    """Needs `SqliteStore`'s connection, lock and helpers."""

    _conn: aiosqlite.Connection
    _lock: asyncio.Lock

    if TYPE_CHECKING:

        async def _write(self, sql: str, params: Iterable[Any] = ()) -> int: ...

        async def _all(self, sql: str, params: Iterable[Any] = ()) -> list[Any]: ...

    # --- usage ------------------------------------------------------------------------------

    async def add_usage(self, event: UsageEvent) -> bool:
        changed = await self._write(
            f"INSERT INTO usage_events ({USAGE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (kind, ref) DO NOTHING",
            rows.usage_params(event),
        )
        return changed == 1

    async def usage_totals(
        self,
        platform: str,
        workspace: str,
        *,
        since: float,
        user_id: str | None = None,
        channel: str | None = None,
    ) -> list[UsageTotal]:
        params: list[Any] = [platform, workspace, since]
        params += [v for v in (user_id, channel) if v is not None]
        sql = rows.totals_sql(
            placeholders=["?"] * len(params),
            user=user_id is not None,
            channel=channel is not None,
            order="kind, detail",
        )
        return [rows.total_from_row(row) for row in await self._all(sql, params)]

    async def usage_leaders(
        self, platform: str, workspace: str, *, since: float, by: UsageBy, limit: int
    ) -> list[UsageLeader]:
        sql = rows.leaders_sql(by, placeholders=["?"] * 4)
        found = await self._all(sql, (platform, workspace, since, limit))
        return [rows.leader_from_row(row) for row in found]

    async def purge_usage(self, *, before: float) -> int:
        return await self._write("DELETE FROM usage_events WHERE created_at < ?", (before,))

    # --- quotas -----------------------------------------------------------------------------

    async def quota_limits(
        self, platform: str, workspace: str, *, channel: str
    ) -> list[QuotaLimit]:
        found = await self._all(
            f"SELECT {QUOTA_COLUMNS} FROM quota_limits WHERE platform=? AND workspace=? "
            "AND channel IN ('', ?) ORDER BY channel, name",
            (platform, workspace, channel),
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
            await self._write(
                "DELETE FROM quota_limits WHERE platform=? AND workspace=? AND channel=? "
                "AND name=?",
                (platform, workspace, channel, name),
            )
            return
        await self._write(
            "INSERT INTO quota_limits (platform, workspace, channel, name, value, changed_by, "
            "changed_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (platform, workspace, channel, name) DO UPDATE SET "
            "value=excluded.value, changed_by=excluded.changed_by, "
            "changed_at=excluded.changed_at",
            (platform, workspace, channel, name, value, by, at),
        )

    async def take_quota(self, takes: Sequence[tuple[str, int]], *, day: int) -> str | None:
        """One transaction: each upsert counts only while the scope is under its limit, and
        the first that cannot rolls every count back."""
        async with self._lock:
            await self._conn.execute("BEGIN IMMEDIATE")
            try:
                for scope, limit in sorted(takes):
                    async with self._conn.execute(
                        "INSERT INTO quota_use (scope, day, used) VALUES (?, ?, 1) "
                        "ON CONFLICT (scope, day) DO UPDATE SET used = quota_use.used + 1 "
                        "WHERE quota_use.used < ?",
                        (scope, day, limit),
                    ) as cursor:
                        if cursor.rowcount != 1:
                            await self._conn.execute("ROLLBACK")
                            return scope
                await self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    await self._conn.execute("ROLLBACK")
                raise
        return None

    async def quota_used(self, scopes: Iterable[str], *, day: int) -> dict[str, int]:
        wanted = list(scopes)
        found = await self._all(
            "SELECT scope, used FROM quota_use WHERE day=? "
            "AND scope IN (SELECT value FROM json_each(?))",
            (day, json.dumps(wanted)),
        )
        used = {row[0]: int(row[1]) for row in found}
        return {scope: used.get(scope, 0) for scope in wanted}

    async def purge_quota_use(self, *, before_day: int) -> int:
        return await self._write("DELETE FROM quota_use WHERE day < ?", (before_day,))

    # --- access -----------------------------------------------------------------------------

    async def access_entries(self, platform: str, workspace: str) -> list[AccessEntry]:
        found = await self._all(
            f"SELECT {ACCESS_COLUMNS} FROM access_rules WHERE platform=? AND workspace=? "
            "ORDER BY kind, value",
            (platform, workspace),
        )
        return [rows.access_from_row(row) for row in found]

    async def set_access(self, platform: str, workspace: str, entry: AccessEntry) -> None:
        await self._write(
            f"INSERT INTO access_rules (platform, workspace, {ACCESS_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (platform, workspace, kind, value) "
            "DO UPDATE SET effect=excluded.effect, changed_by=excluded.changed_by, "
            "changed_at=excluded.changed_at",
            (platform, workspace, *rows.access_params(entry)),
        )

    async def remove_access(
        self, platform: str, workspace: str, *, kind: AccessKind, value: str
    ) -> bool:
        changed = await self._write(
            "DELETE FROM access_rules WHERE platform=? AND workspace=? AND kind=? AND value=?",
            (platform, workspace, kind, value),
        )
        return changed == 1


__all__ = ["SqliteOperators"]
