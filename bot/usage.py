"""Usage: what each person used (turns, generations by kind, direct runs and their cost),
recorded once in the store and shown by `/sense-usage`.

Written at one place each, by whichever replica saw the end: a turn when it ends
(`Conversations`), a generated file when it has been delivered into its thread, a run when
its result wins `finish_job` (`Jobs`). Each event has a `ref` (the turn id, the job id, the
session id and the file's URL) and the store keeps one event per ref, so redeliveries, a webhook
racing the poller or a second replica never count anything twice.

Costs are Eachlabs' own figures in US dollars: each::api's `metrics.cost` (prediction GET),
a workflow execution's `total_cost` (`execution_cost` in the executions list). A webhook
body carries none, so a run finished by webhook is looked at once more for its cost.
each::sense reports no cost per turn, so turns are counted, not priced.

Recording never fails a turn or a run: a store error is logged and the event is lost.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from bot.delivery import clock_text
from bot.eachlabs import JobState
from bot.models import ChannelKey, JobRecord, JobStatus, ThreadKey, TurnStatus
from bot.operator_records import UsageBy, UsageEvent, UsageKind, UsageLeader, UsageTotal
from bot.ports import UsageStore

log = logging.getLogger(__name__)

DAY = 86_400.0
PERIOD_DAYS = 30  # "the last 30 days" of `/sense-usage`
TOP = 5  # channels and people in an admin's report (the reply must fit a Discord message)
_COST_KEYS = ("total_cost", "execution_cost", "cost")
_KIND_NAMES = {
    "image": ("image", "images"),
    "video": ("video", "videos"),
    "audio": ("audio file", "audio files"),
    "file": ("file", "files"),
}


def day_of(at: float) -> int:
    """The UTC day `at` falls on, as days since 1970-01-01 (quotas count per such day)."""
    return int(at // DAY)


def until_midnight(now: float) -> str:
    """When the UTC day ends, as a person reads it: `at 00:00 UTC (in 5h 02m)`."""
    left = (day_of(now) + 1) * DAY - now
    return f"at 00:00 UTC (in {clock_text(left)})"


def cost_of(body: Mapping[str, Any]) -> float | None:
    """A run's cost in US dollars from a prediction (`metrics.cost`), an execution
    (`total_cost`, `execution_cost`) or a bare `cost`; None when none is given. Numbers may
    arrive as strings ("0.03", "$0.03")."""
    metrics = body.get("metrics")
    values = [metrics.get("cost")] if isinstance(metrics, Mapping) else []
    values += [body.get(key) for key in _COST_KEYS]
    for value in values:
        amount = _amount(value)
        if amount is not None:
            return amount
    return None


def _amount(value: object) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip().removeprefix("$"))
        except ValueError:
            return None
    if isinstance(value, int | float) and math.isfinite(value) and value >= 0:
        return float(value)
    return None


class UsageLog:
    """The three writes, each called from one place in the core."""

    def __init__(self, store: UsageStore, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self._clock = clock

    async def turn_ended(
        self, *, turn_id: str, key: ThreadKey, user_id: str, status: TurnStatus
    ) -> None:
        await self._add(
            UsageEvent(
                UsageKind.TURN, turn_id, key.channel_key, user_id, self._clock(), status.value
            )
        )

    async def generation_delivered(
        self, *, session_id: str, key: ThreadKey, user_id: str, url: str, kind: str
    ) -> None:
        ref = f"{session_id}:{url}"  # a file's URL is new for every generation
        event = UsageEvent(UsageKind.GENERATION, ref, key.channel_key, user_id, self._clock(), kind)
        await self._add(event)

    async def run_finished(
        self,
        record: JobRecord,
        state: JobState,
        *,
        look: Callable[[], Awaitable[JobState | None]] | None = None,
    ) -> None:
        """A run's end (the caller won `finish_job`); `look` polls the run once more when the
        state that ended it (a webhook, a Cancel) says nothing of its cost."""
        cost = cost_of(state.raw)
        if cost is None and look is not None:
            try:
                again = await look()
            except Exception:
                log.warning("job %s: could not look up its cost", record.id, exc_info=True)
                again = None
            cost = cost_of(again.raw) if again is not None else None
        detail = record.kind.value
        if state.status is not JobStatus.SUCCEEDED:
            detail += ":" + state.status.value
        channel, user_id = record.key.channel_key, record.user_id
        await self._add(
            UsageEvent(UsageKind.RUN, record.id, channel, user_id, self._clock(), detail, cost)
        )

    async def _add(self, event: UsageEvent) -> None:
        try:
            await self.store.add_usage(event)
        except Exception:
            log.exception("could not record %s %s", event.kind.value, event.ref[:80])

    async def purge(self, *, keep_days: int) -> None:
        """Forget events older than `keep_days` (a chore; the report needs 30 days)."""
        before = self._clock() - max(keep_days, PERIOD_DAYS + 1) * DAY
        gone = await self.store.purge_usage(before=before)
        if gone:
            log.info("forgot %d usage events older than %d days", gone, keep_days)


# --- the report ---------------------------------------------------------------------------


def plural(count: int, one: str, many: str | None = None) -> str:
    return f"{count:,} {one if count == 1 else (many or one + 's')}"


def money(amount: float) -> str:
    return f"${amount:,.2f}"


def summary(totals: Sequence[UsageTotal]) -> str:
    """`3 turns (1 failed) · 2 images, 1 video · 2 runs, $0.15`, or `nothing yet`."""
    turns = [t for t in totals if t.kind is UsageKind.TURN]
    parts = [_turns(turns)] if turns else []
    media = _media([t for t in totals if t.kind is UsageKind.GENERATION])
    if media:
        parts.append(media)
    runs = [t for t in totals if t.kind is UsageKind.RUN]
    if runs:
        parts.append(_runs(runs))
    return " · ".join(parts) or "nothing yet"


def _turns(totals: Sequence[UsageTotal]) -> str:
    count = sum(t.count for t in totals)
    failed = sum(t.count for t in totals if t.detail == TurnStatus.FAILED.value)
    text = plural(count, "turn")
    return f"{text} ({failed:,} failed)" if failed else text


def _media(totals: Sequence[UsageTotal]) -> str:
    counts: dict[str, int] = {}
    for total in totals:
        counts[total.detail] = counts.get(total.detail, 0) + total.count
    shown = []
    for kind, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        one, many = _KIND_NAMES.get(kind, (kind or "file", (kind or "file") + "s"))
        shown.append(plural(count, one, many))
    return ", ".join(shown)


def _runs(totals: Sequence[UsageTotal]) -> str:
    count = sum(t.count for t in totals)
    priced = sum(t.priced for t in totals)
    text = plural(count, "run")
    if not priced:
        return f"{text} (no cost reported)"
    text += f", {money(sum(t.cost for t in totals))}"
    if priced < count:
        text += f" ({count - priced:,} without a reported cost)"
    return text


def leader_line(leader: UsageLeader) -> str:
    parts = [plural(leader.turns, "turn")]
    if leader.generations:
        parts.append(plural(leader.generations, "file"))
    if leader.runs:
        parts.append(
            plural(leader.runs, "run") + (f", {money(leader.cost)}" if leader.cost else "")
        )
    return " · ".join(parts)


class UsageReport:
    """What `/sense-usage` says: the person's own use, and for admins the workspace's."""

    def __init__(self, store: UsageStore, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self._clock = clock

    async def person(self, channel: ChannelKey, user_id: str) -> list[str]:
        today, month = self._periods()
        lines = ["**Your each::sense usage**"]
        for label, since in (("Today", today), (f"Last {PERIOD_DAYS} days", month)):
            totals = await self.store.usage_totals(
                channel.platform, channel.workspace, since=since, user_id=user_id
            )
            lines.append(f"{label}: {summary(totals)}")
        return lines

    async def everyone(self, channel: ChannelKey) -> list[str]:
        today, month = self._periods()
        lines = ["**Everyone here**"]
        for label, since in (("Today", today), (f"Last {PERIOD_DAYS} days", month)):
            totals = await self.store.usage_totals(channel.platform, channel.workspace, since=since)
            lines.append(f"{label}: {summary(totals)}")
        tops: tuple[tuple[UsageBy, str], ...] = (("channel", "Channels"), ("user", "Top people"))
        for by, title in tops:
            leaders = await self.store.usage_leaders(
                channel.platform, channel.workspace, since=month, by=by, limit=TOP
            )
            if leaders:
                lines.append(f"**{title}, last {PERIOD_DAYS} days**")
                lines += [
                    f"{n}. `{leader.id[:40]}`: {leader_line(leader)}"
                    for n, leader in enumerate(leaders, 1)
                ]
        return lines

    def _periods(self) -> tuple[float, float]:
        now = self._clock()
        return day_of(now) * DAY, now - PERIOD_DAYS * DAY
