"""What both stores share: column lists, numbered migrations, and rows back into records.

Both engines keep the same tables and column order, so a row read from either becomes the
same record here; only how a value is stored (job output as JSON text in SQLite, a text array
in PostgreSQL) differs, and each store decodes that itself before calling these.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from importlib import resources
from typing import Any, Literal

from bot.models import (
    ChannelSettings,
    GenerationRecord,
    JobKind,
    JobRecord,
    JobStatus,
    Mode,
    ThreadKey,
    ThreadSummary,
    TurnRecord,
    TurnStatus,
)

Engine = Literal["sqlite", "postgres"]

TURN_COLUMNS = (
    "id, platform, workspace, channel, thread, user_id, prompt, status, mode, "
    "started_at, finished_at, owner, behavior, image_urls"
)
JOB_COLUMNS = (
    "id, kind, remote_id, platform, workspace, channel, thread, user_id, webhook_secret, "
    "status, title, message_id, created_at, finished_at, output, error, owner"
)

TITLE_CHARS = 200  # a thread summary's title: the start of its first prompt

# A person's threads, newest first (`HistoryStore.recent_threads`), written once for both
# engines: `{p}` is the engine's placeholder for the n-th parameter, in the order
# (platform, workspace, user_id) twice, then the limit.
RECENT_THREADS = """
SELECT a.platform, a.workspace, a.channel, a.thread, MAX(a.at) AS last_at,
    COALESCE(
        (SELECT substr(t.prompt, 1, {chars}) FROM turns t
         WHERE t.platform = a.platform AND t.workspace = a.workspace
           AND t.channel = a.channel AND t.thread = a.thread
         ORDER BY t.started_at, t.id LIMIT 1),
        (SELECT substr(j.title, 1, {chars}) FROM jobs j
         WHERE j.platform = a.platform AND j.workspace = a.workspace
           AND j.channel = a.channel AND j.thread = a.thread
         ORDER BY j.created_at, j.id LIMIT 1),
        '') AS title
FROM (
    SELECT platform, workspace, channel, thread, started_at AS at FROM turns
    WHERE platform = {p1} AND workspace = {p2} AND user_id = {p3}
    UNION ALL
    SELECT platform, workspace, channel, thread, created_at AS at FROM jobs
    WHERE platform = {p4} AND workspace = {p5} AND user_id = {p6}
) a
GROUP BY a.platform, a.workspace, a.channel, a.thread
ORDER BY last_at DESC, a.channel {collate}, a.thread {collate}
LIMIT {p7}
"""


def recent_threads_sql(placeholder: str, *, collate: str = "") -> str:
    """`RECENT_THREADS` for an engine: `placeholder` is `?` or `$` (numbered)."""
    marks = {f"p{n}": "?" if placeholder == "?" else f"${n}" for n in range(1, 8)}
    return RECENT_THREADS.format(chars=TITLE_CHARS, collate=collate, **marks)


def turn_counts_sql(placeholder: str, cutoffs: int) -> str:
    """One pass over a person's turns counting those at or after each of `cutoffs` cut-offs;
    parameters: the cut-offs, then platform, workspace, user_id, then the earliest cut-off."""

    def mark(n: int) -> str:
        return "?" if placeholder == "?" else f"${n}"

    sums = ", ".join(
        f"COALESCE(SUM(CASE WHEN started_at >= {mark(n)} THEN 1 ELSE 0 END), 0)"
        for n in range(1, cutoffs + 1)
    )
    n = cutoffs
    return (
        f"SELECT {sums} FROM turns WHERE platform = {mark(n + 1)} AND workspace = {mark(n + 2)} "
        f"AND user_id = {mark(n + 3)} AND started_at >= {mark(n + 4)}"
    )


def summary_from_row(row: Sequence[Any]) -> ThreadSummary:
    """A row of `RECENT_THREADS`."""
    return ThreadSummary(
        key=ThreadKey(row[0], row[1], row[2], row[3]), title=row[5] or "", last_at=row[4]
    )


GENERATION_COLUMNS = (
    "url, media_type, session_id, platform, workspace, channel, thread, message_id, "
    "created_at, generation_id, turn_id"
)
CHANNEL_COLUMNS = "eco, changed_by, changed_at, web_search, safety_checker"

_MIGRATION_NAME = re.compile(r"^(\d+)_[\w-]+\.sql$")


def load_migrations(engine: Engine) -> list[tuple[int, str]]:
    """Every migration shipped for `engine` (`storage/migrations/<engine>/NNNN_name.sql`) as
    (version, sql), lowest version first."""
    found: list[tuple[int, str]] = []
    for entry in (resources.files("storage") / "migrations" / engine).iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.read_text(encoding="utf-8")))
    found.sort()
    versions = [version for version, _ in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate {engine} migration numbers: {versions}")
    return found


def key_params(key: ThreadKey) -> tuple[str, str, str, str]:
    return (key.platform, key.workspace, key.channel, key.thread)


def mode_or_none(value: str | None) -> Mode | None:
    if value == "eco":
        return "eco"
    if value == "max":
        return "max"
    return None


def turn_params(record: TurnRecord) -> tuple[Any, ...]:
    """`record` in `TURN_COLUMNS` order."""
    return (
        record.id,
        *key_params(record.key),
        record.user_id,
        record.prompt,
        str(record.status),
        record.mode,
        record.started_at,
        record.finished_at,
        record.owner,
        record.behavior,
        json.dumps(list(record.image_urls)),  # JSON text on both engines
    )


def turn_from_row(row: Sequence[Any]) -> TurnRecord:
    """A row selected with `TURN_COLUMNS`."""
    return TurnRecord(
        id=row[0],
        key=ThreadKey(row[1], row[2], row[3], row[4]),
        user_id=row[5],
        prompt=row[6],
        status=TurnStatus(row[7]),
        mode=mode_or_none(row[8]) or "max",
        started_at=row[9],
        finished_at=row[10],
        owner=row[11],
        behavior=row[12],
        image_urls=tuple(_json_list(row[13])),
    )


def _json_list(value: str | None) -> list[str]:
    try:
        loaded = json.loads(value or "[]")
    except ValueError:
        return []
    return [str(item) for item in loaded] if isinstance(loaded, list) else []


def job_params(record: JobRecord, output: Any) -> tuple[Any, ...]:
    """`record` in `JOB_COLUMNS` order, with `output` already encoded for the engine."""
    return (
        record.id,
        str(record.kind),
        record.remote_id,
        *key_params(record.key),
        record.user_id,
        record.webhook_secret,
        str(record.status),
        record.title,
        record.message_id,
        record.created_at,
        record.finished_at,
        output,
        record.error,
        record.owner,
    )


def job_from_row(row: Sequence[Any], output: Sequence[str]) -> JobRecord:
    """A row selected with `JOB_COLUMNS`, with its `output` column already decoded."""
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
        output=tuple(output),
        error=row[15],
        owner=row[16],
    )


def generation_params(record: GenerationRecord) -> tuple[Any, ...]:
    """`record` in `GENERATION_COLUMNS` order."""
    return (
        record.url,
        record.media_type,
        record.session_id,
        *key_params(record.key),
        record.message_id,
        record.created_at,
        record.id,
        record.turn_id,
    )


def generation_from_row(row: Sequence[Any]) -> GenerationRecord:
    """A row selected with `GENERATION_COLUMNS`."""
    return GenerationRecord(
        url=row[0],
        media_type=row[1],
        session_id=row[2],
        key=ThreadKey(row[3], row[4], row[5], row[6]),
        message_id=row[7],
        created_at=row[8],
        id=row[9],
        turn_id=row[10],
    )


def channel_from_row(row: Sequence[Any] | None) -> ChannelSettings:
    """A row selected with `CHANNEL_COLUMNS` (None: a channel never set)."""
    if row is None:
        return ChannelSettings()
    return ChannelSettings(
        eco=bool(row[0]),
        changed_by=row[1],
        changed_at=row[2],
        web_search=None if row[3] is None else bool(row[3]),
        safety_checker=bool(row[4]),
    )
