"""Daily quotas: how many turns and direct runs a person, and a channel, may start in a UTC
day.

Four limits, each 0 (off) unless set: turns and runs per person (counted across the whole
workspace) and per channel. Where a limit comes from, first match wins: a value an admin set
for this channel (channel limits only), one set for the whole workspace, the setting
(`QUOTA_TURNS_PER_USER_DAY`, ...). An admin may set 0 to switch a limit off here.

A request counts when it is admitted, before it runs (so a turn that then fails still
counts), and it is counted in the store with one atomic take per request against the
person's and the channel's limit together (`QuotaStore.take_quota`): on every replica at
once no limit is ever passed, and a request refused by one limit uses up neither. Counts are
per UTC day, so every quota resets at 00:00 UTC; the refusal says when that is.

Admins are exempt: the admission check (`bot.admission`) lets them through when a quota
refuses them (and then their request is not counted).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from bot.config import Settings
from bot.models import ChannelKey
from bot.operator_records import QUOTA_NAMES, WORKSPACE, QuotaName
from bot.ports import QuotaStore
from bot.usage import day_of, until_midnight

log = logging.getLogger(__name__)

Counted = Literal["turns", "runs"]
WHAT = {"turns": ("turn", "turns"), "runs": ("model or workflow run", "model or workflow runs")}
KEEP_DAYS = 2  # counts of older days are purged


@dataclass(frozen=True, slots=True)
class Limit:
    """One limit as it applies in a channel: its value (0: off) and who set it."""

    name: QuotaName
    value: int
    source: Literal["settings", "workspace", "channel"]


def setting_of(settings: Settings, name: QuotaName) -> int:
    return {
        "user-turns": settings.quota_turns_per_user_day,
        "user-runs": settings.quota_runs_per_user_day,
        "channel-turns": settings.quota_turns_per_channel_day,
        "channel-runs": settings.quota_runs_per_channel_day,
    }[name]


def scope(name: QuotaName, channel: ChannelKey, user_id: str) -> str:
    """The store's name for what `name` counts: one person in the workspace, or a channel."""
    who = user_id if name.startswith("user-") else channel.channel
    return f"{name}:{channel.platform}:{channel.workspace}:{who}"


class Quotas:
    def __init__(
        self, store: QuotaStore, settings: Settings, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.settings = settings
        self._clock = clock

    async def limits(self, channel: ChannelKey) -> dict[QuotaName, Limit]:
        """Every limit as it applies in `channel`."""
        found = {
            name: Limit(name, setting_of(self.settings, name), "settings") for name in QUOTA_NAMES
        }
        stored = await self.store.quota_limits(
            channel.platform, channel.workspace, channel=channel.channel
        )
        for limit in stored:  # the workspace's first, then the channel's: the last one wins
            if limit.channel == WORKSPACE:
                found[limit.name] = Limit(limit.name, limit.value, "workspace")
            elif limit.name.startswith("channel-"):
                found[limit.name] = Limit(limit.name, limit.value, "channel")
        return found

    async def take(self, channel: ChannelKey, user_id: str, what: Counted) -> str | None:
        """Count one of `what` for the person and the channel; the refusal sentence instead
        when a limit is reached (then nothing is counted)."""
        limits = await self.limits(channel)
        names: tuple[QuotaName, QuotaName] = (
            ("user-turns", "channel-turns") if what == "turns" else ("user-runs", "channel-runs")
        )
        takes = {
            scope(name, channel, user_id): limits[name] for name in names if limits[name].value > 0
        }
        if not takes:
            return None
        now = self._clock()
        full = await self.store.take_quota(
            [(key, limit.value) for key, limit in takes.items()], day=day_of(now)
        )
        if full is None:
            return None
        return refusal(takes[full], what, now=now)

    async def used_today(
        self, channel: ChannelKey, user_id: str
    ) -> dict[QuotaName, tuple[int, int]]:
        """(used, limit) of every limit that is on in `channel`, for the person."""
        limits = {n: lim for n, lim in (await self.limits(channel)).items() if lim.value > 0}
        scopes = {name: scope(name, channel, user_id) for name in limits}
        used = await self.store.quota_used(scopes.values(), day=day_of(self._clock()))
        return {name: (used[scopes[name]], limits[name].value) for name in limits}

    def resets(self) -> str:
        return until_midnight(self._clock())

    async def purge(self) -> None:
        """Forget the counts of past days (a chore)."""
        await self.store.purge_quota_use(before_day=day_of(self._clock()) - KEEP_DAYS)


def refusal(limit: Limit, what: Counted, *, now: float) -> str:
    """The sentence for a request over `limit`, saying when the quota resets."""
    one, many = WHAT[what]
    counted = f"the one {one}" if limit.value == 1 else f"all {limit.value:,} {many}"
    if limit.name.startswith("user-"):
        head = f"You have used {counted} you may start in a day here."
    else:
        head = f"This channel has used {counted} it may start in a day."
    return f"⏳ {head} The quota resets {until_midnight(now)}."


def usage_line(used: dict[QuotaName, tuple[int, int]], *, resets: str) -> str | None:
    """`Your quota today: 3 of 20 turns · ...` for `/sense-usage`, or None with no limits."""
    labels: dict[QuotaName, str] = {
        "user-turns": "your turns",
        "user-runs": "your runs",
        "channel-turns": "this channel's turns",
        "channel-runs": "this channel's runs",
    }
    parts = [f"{labels[name]} {n:,} of {limit:,}" for name, (n, limit) in used.items()]
    if not parts:
        return None
    return f"Quotas today: {' · '.join(parts)} · they reset {resets}"
