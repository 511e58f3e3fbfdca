"""What operators and admins need, bundled for the command flow: usage (`bot.usage`), quotas
(`bot.quotas`), access control (`bot.access`), the admission check that applies the last two
(`bot.admission`) and the two commands, `/sense-usage` and `/sense-admin` (`bot.admin`).

`Commands` holds one `Operators` and calls in at a few places only: the admission check at
the start of handling, and these two commands; `Conversations` and `Jobs` get its
`UsageLog` to record what ended. Built by the composition root on the process's store.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from bot.access import Access
from bot.admin import AdminCommands, parse_admin_args
from bot.admission import Admission, IsAdmin
from bot.config import Settings
from bot.models import ChannelKey
from bot.ports import Store
from bot.quotas import Quotas, usage_line
from bot.usage import UsageLog, UsageReport

log = logging.getLogger(__name__)

REPORT_MAX = 1900  # under Discord's 2,000 characters, the smallest limit of a reply


class Operators:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.usage = UsageLog(store, clock=clock)
        self.report = UsageReport(store, clock=clock)
        self.quotas = Quotas(store, settings, clock=clock)
        self.access = Access(store, settings)
        self.admin = AdminCommands(self.access, self.quotas, clock=clock)

    def admission(self, is_admin: IsAdmin) -> Admission:
        return Admission(self.access, self.quotas, is_admin)

    async def usage_text(self, channel: ChannelKey, user_id: str, *, admin: bool) -> str:
        """`/sense-usage`: the person's own use and quotas; an admin also sees the
        workspace's totals, its busiest channels and its top people."""
        lines = await self.report.person(channel, user_id)
        quota = usage_line(
            await self.quotas.used_today(channel, user_id), resets=self.quotas.resets()
        )
        if quota:
            lines.append(quota)
        if admin:
            lines.append("")
            lines += await self.report.everyone(channel)
        return _fit("\n".join(lines))

    async def admin_text(self, channel: ChannelKey, text: str, *, by: str) -> str:
        """`/sense-admin` for an admin (the caller checked): the answer to show them."""
        return _fit(await self.admin.run(parse_admin_args(text), channel=channel, by=by))

    async def purge(self) -> None:
        """A chore: forget usage older than `USAGE_KEEP_DAYS` and past days' quota counts."""
        await self.usage.purge(keep_days=self.settings.usage_keep_days)
        await self.quotas.purge()


def _fit(text: str) -> str:
    if len(text) <= REPORT_MAX:
        return text
    return text[: text.rfind("\n", 0, REPORT_MAX - 2)] + "\n…"
