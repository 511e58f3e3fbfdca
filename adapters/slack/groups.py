"""Slack user groups as the access rules' roles: who is in a group, asked of Slack and cached.

Slack payloads do not say which user groups a person is in, so when an access rule names a
group (`ACCESS_ALLOW_ROLES=S0123…`, `/sense-admin access deny role @design`) the core asks
(`Platform.roles_of`) about exactly the groups the rules name, and each group's member list
comes from `usergroups.users.list` (scope `usergroups:read`), kept for
`ACCESS_ROLES_CACHE_SECONDS`. One look-up per group at a time: concurrent requests for the
same group wait for the first. The cache holds only lists of user ids, per replica; a change
in Slack shows once the entry is older than the setting.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable

from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.errors import slack_errors

log = logging.getLogger(__name__)

MAX_GROUPS = 500  # groups remembered; rules name a handful


class UserGroups:
    def __init__(
        self,
        client: AsyncWebClient,
        *,
        ttl: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._ttl = ttl
        self._clock = clock
        self._members: dict[str, tuple[float, frozenset[str]]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.lookups = 0  # calls made (tests check the cache with it)

    async def of(self, user_id: str, groups: Iterable[str]) -> frozenset[str]:
        """Which of `groups` the person is in; `PlatformError` when Slack cannot say."""
        found = set()
        for group in sorted(groups):
            if user_id in await self.members(group):
                found.add(group)
        return frozenset(found)

    async def members(self, group: str) -> frozenset[str]:
        cached = self._fresh(group)
        if cached is not None:
            return cached
        async with self._locks.setdefault(group, asyncio.Lock()):
            cached = self._fresh(group)
            if cached is not None:
                return cached
            self.lookups += 1
            with slack_errors():
                answer = await self._client.usergroups_users_list(usergroup=group)
            members = frozenset(str(user) for user in answer.get("users") or ())
            if len(self._members) >= MAX_GROUPS:
                self._members.clear()
            self._members[group] = (self._clock(), members)
            log.debug("user group %s has %d members", group, len(members))
            return members

    def _fresh(self, group: str) -> frozenset[str] | None:
        cached = self._members.get(group)
        if cached is None or self._clock() - cached[0] >= self._ttl:
            return None
        return cached[1]
