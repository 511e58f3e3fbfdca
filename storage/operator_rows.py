"""What both stores share for the operator roles (`UsageStore`, `QuotaStore`, `AccessStore`):
column lists, the leaders query, and rows back into records.

Both engines keep the same tables and columns (migration 0003), so a row from either becomes
the same record here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from bot.operator_records import (
    AccessEffect,
    AccessEntry,
    AccessKind,
    QuotaLimit,
    QuotaName,
    UsageBy,
    UsageEvent,
    UsageKind,
    UsageLeader,
    UsageTotal,
)

USAGE_COLUMNS = "kind, ref, platform, workspace, channel, user_id, detail, cost, created_at"
QUOTA_COLUMNS = "name, channel, value, changed_by, changed_at"
ACCESS_COLUMNS = "kind, value, effect, changed_by, changed_at"
_LEADER_KEYS: dict[UsageBy, str] = {"user": "user_id", "channel": "channel"}


def usage_params(event: UsageEvent) -> tuple[Any, ...]:
    """`event` in `USAGE_COLUMNS` order."""
    return (
        str(event.kind),
        event.ref,
        event.channel.platform,
        event.channel.workspace,
        event.channel.channel,
        event.user_id,
        event.detail,
        event.cost,
        event.at,
    )


def totals_sql(*, placeholders: Sequence[str], user: bool, channel: bool, order: str) -> str:
    """The totals query; `placeholders` are the engine's for platform, workspace, since and
    then the person and the channel when filtered by them; `order` the engine's ORDER BY."""
    where = ["platform = {}", "workspace = {}", "created_at >= {}"]
    if user:
        where.append("user_id = {}")
    if channel:
        where.append("channel = {}")
    condition = " AND ".join(where).format(*placeholders)
    return (
        "SELECT kind, detail, count(*), coalesce(sum(cost), 0), count(cost) FROM usage_events "
        f"WHERE {condition} GROUP BY kind, detail ORDER BY {order}"
    )


def leaders_sql(by: UsageBy, *, placeholders: Sequence[str], collate: str = "") -> str:
    """The top people or channels (`by`); placeholders for platform, workspace, since, limit.
    Ordered in an outer query: PostgreSQL allows output names in ORDER BY only on their own,
    not in an expression such as `turns + runs`."""
    key = _LEADER_KEYS[by]
    platform, workspace, since, limit = placeholders
    inner = (
        f"SELECT {key} AS id, "
        "sum(CASE WHEN kind = 'turn' THEN 1 ELSE 0 END) AS turns, "
        "sum(CASE WHEN kind = 'run' THEN 1 ELSE 0 END) AS runs, "
        "sum(CASE WHEN kind = 'generation' THEN 1 ELSE 0 END) AS generations, "
        "coalesce(sum(cost), 0) AS cost "
        f"FROM usage_events WHERE platform = {platform} AND workspace = {workspace} "
        f"AND created_at >= {since} GROUP BY {key}"
    )
    return (
        f"SELECT id, turns, runs, generations, cost FROM ({inner}) AS t "
        f"ORDER BY turns + runs DESC, cost DESC, id{collate} LIMIT {limit}"
    )


def total_from_row(row: Sequence[Any]) -> UsageTotal:
    return UsageTotal(
        kind=UsageKind(row[0]),
        detail=row[1],
        count=int(row[2]),
        cost=float(row[3]),
        priced=int(row[4]),
    )


def leader_from_row(row: Sequence[Any]) -> UsageLeader:
    return UsageLeader(
        id=row[0],
        turns=int(row[1]),
        runs=int(row[2]),
        generations=int(row[3]),
        cost=float(row[4]),
    )


def quota_from_row(row: Sequence[Any]) -> QuotaLimit:
    """A row selected with `QUOTA_COLUMNS`."""
    return QuotaLimit(
        name=cast(QuotaName, row[0]),
        channel=row[1],
        value=int(row[2]),
        changed_by=row[3],
        changed_at=row[4],
    )


def access_params(entry: AccessEntry) -> tuple[Any, ...]:
    """`entry` in `ACCESS_COLUMNS` order."""
    return (entry.kind, entry.value, entry.effect, entry.changed_by, entry.changed_at)


def access_from_row(row: Sequence[Any]) -> AccessEntry:
    """A row selected with `ACCESS_COLUMNS`."""
    return AccessEntry(
        kind=cast(AccessKind, row[0]),
        value=row[1],
        effect=cast(AccessEffect, row[2]),
        changed_by=row[3],
        changed_at=row[4],
    )
