"""A person's own page (Slack's App Home): what it shows, decided once for every platform.

For everyone: their recent threads (newest first, each with the prompt it began with) and how
many turns they ran in the last 24 hours and the last 30 days. For admins, by the same rule as
`/sense-eco` (`Commands.is_admin`: `BOT_ADMINS`, else the platform's own admins), every channel
the adapter lists with its eco setting and the argument of `/sense-eco` that flips it: a press
on the page is that command, so who may change what, and the sentence it answers with, are the
command flow's. Adapters render a `HomePage`; nothing here knows how.

A richer usage report (quotas, costs) belongs elsewhere; this is a simple count from the
store's `HistoryStore`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from bot.commands import Commands
from bot.models import ChannelKey, ThreadSummary
from bot.ports import Platform

DAY = 24 * 3600.0
RECENT_THREADS = 10
MAX_CHANNELS = 20  # a page stays short (and inside a platform's block limits)


@dataclass(frozen=True, slots=True)
class ChannelRow:
    """A channel's settings on an admin's page."""

    channel: ChannelKey
    eco: bool

    @property
    def flip(self) -> str:
        """The `/sense-eco` argument that changes it: "on" when it is off, else "off"."""
        return "off" if self.eco else "on"


@dataclass(frozen=True, slots=True)
class HomePage:
    user_id: str
    threads: tuple[ThreadSummary, ...]
    turns_day: int
    turns_month: int
    admin: bool
    channels: tuple[ChannelRow, ...] = ()
    more_channels: int = 0  # channels left off (past `MAX_CHANNELS`)
    notice: str = ""  # what the person's last press on the page answered


async def home_page(
    commands: Commands,
    platform: Platform,
    *,
    workspace: str,
    user_id: str,
    channels: Callable[[], Awaitable[Sequence[str]]] | None = None,
    notice: str = "",
    now: float | None = None,
) -> HomePage:
    """The page for `user_id`. `channels` lists the channel ids the bot is in; it is asked
    only for an admin's page."""
    store = commands.conversations.store
    now = time.time() if now is None else now
    threads = await store.recent_threads(platform.name, workspace, user_id, limit=RECENT_THREADS)
    day, month = await store.turn_counts(
        platform.name, workspace, user_id, since=[now - DAY, now - 30 * DAY]
    )
    # one question for the workspace: a channel-specific platform rule is asked again, per
    # channel, when an admin actually presses a button (the press is `/sense-eco` there)
    admin = await commands.is_admin(
        platform, user_id, ChannelKey(platform.name, workspace, ""), hint=None
    )
    rows: list[ChannelRow] = []
    listed: Sequence[str] = await channels() if admin and channels is not None else ()
    if admin:
        for channel in listed[:MAX_CHANNELS]:
            key = ChannelKey(platform.name, workspace, channel)
            rows.append(ChannelRow(key, (await store.get_channel(key)).eco))
    return HomePage(
        user_id=user_id,
        threads=tuple(threads),
        turns_day=day,
        turns_month=month,
        admin=admin,
        channels=tuple(rows),
        more_channels=max(0, len(listed) - MAX_CHANNELS),
        notice=notice,
    )


__all__ = ["ChannelRow", "HomePage", "home_page"]
