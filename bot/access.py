"""Access control: who may use the bot, and where. The same rule on every platform.

Lists of ids, each an allow list and a deny list, by person, by role (a Discord role, a Slack
user group: whatever the platform calls a named set of people) and by channel. The ids in the
settings (`ACCESS_ALLOW_USERS`, `ACCESS_DENY_ROLES`, ...) apply everywhere; admins add more
per workspace with `/sense-admin access ...` (kept in the store, so every replica applies a
change at once). The rule:

1. a person, one of their roles or the channel on a deny list: refused (deny beats allow);
2. any channel on the allow list: only those channels;
3. any person or role on the allow lists: only those people, and the members of those roles;
4. otherwise: allowed.

Admins (`BOT_ADMINS`, and the platform's own admins) are never locked out: the admission
check (`bot.admission`) lets them through whatever the lists say. A thread counts as its
channel.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from bot.config import Settings
from bot.models import ChannelKey
from bot.operator_records import AccessEffect, AccessEntry, AccessKind
from bot.ports import AccessStore

DENIED_PERSON = (
    "⛔ You can't use each::sense here: an admin has limited who may. "
    "Ask one of them if you think that is a mistake."
)
DENIED_CHANNEL = (
    "⛔ each::sense is switched off in this channel. Use it in another channel, or ask an admin."
)
ROLES_UNKNOWN = (
    "⛔ I could not check your roles just now, so I can't let this through. "
    "Please try again in a moment."
)


@dataclass(frozen=True, slots=True)
class AccessLists:
    """The lists that apply in one workspace: settings and stored entries together."""

    allow: dict[AccessKind, frozenset[str]] = field(default_factory=dict)
    deny: dict[AccessKind, frozenset[str]] = field(default_factory=dict)

    def of(self, effect: AccessEffect, kind: AccessKind) -> frozenset[str]:
        return (self.allow if effect == "allow" else self.deny).get(kind, frozenset())

    @property
    def empty(self) -> bool:
        return not any(self.allow.values()) and not any(self.deny.values())

    @property
    def roles(self) -> frozenset[str]:
        """Every role an entry names: the only ones worth asking a platform about."""
        return self.of("allow", "role") | self.of("deny", "role")

    def refusal(self, *, user_id: str, roles: frozenset[str], channel: str) -> str | None:
        """The sentence refusing the person here, or None (the rule in the module docstring;
        admins are let through by the caller)."""
        if user_id in self.of("deny", "user") or roles & self.of("deny", "role"):
            return DENIED_PERSON
        if channel in self.of("deny", "channel"):
            return DENIED_CHANNEL
        channels = self.of("allow", "channel")
        if channels and channel not in channels:
            return DENIED_CHANNEL
        users, allowed_roles = self.of("allow", "user"), self.of("allow", "role")
        if (users or allowed_roles) and user_id not in users and not roles & allowed_roles:
            return DENIED_PERSON
        return None


def settings_lists(settings: Settings) -> dict[tuple[AccessEffect, AccessKind], frozenset[str]]:
    return {
        ("allow", "user"): frozenset(settings.access_allow_users),
        ("deny", "user"): frozenset(settings.access_deny_users),
        ("allow", "role"): frozenset(settings.access_allow_roles),
        ("deny", "role"): frozenset(settings.access_deny_roles),
        ("allow", "channel"): frozenset(settings.access_allow_channels),
        ("deny", "channel"): frozenset(settings.access_deny_channels),
    }


SETTING_NAMES: dict[tuple[AccessEffect, AccessKind], str] = {
    ("allow", "user"): "ACCESS_ALLOW_USERS",
    ("deny", "user"): "ACCESS_DENY_USERS",
    ("allow", "role"): "ACCESS_ALLOW_ROLES",
    ("deny", "role"): "ACCESS_DENY_ROLES",
    ("allow", "channel"): "ACCESS_ALLOW_CHANNELS",
    ("deny", "channel"): "ACCESS_DENY_CHANNELS",
}


def merge(settings: Settings, entries: Iterable[AccessEntry]) -> AccessLists:
    """The settings' lists plus the stored entries of one workspace."""
    lists = {key: set(values) for key, values in settings_lists(settings).items()}
    for entry in entries:
        lists[(entry.effect, entry.kind)].add(entry.value)
    return AccessLists(
        allow={kind: frozenset(v) for (effect, kind), v in lists.items() if effect == "allow"},
        deny={kind: frozenset(v) for (effect, kind), v in lists.items() if effect == "deny"},
    )


class Access:
    def __init__(self, store: AccessStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    async def lists(self, channel: ChannelKey) -> AccessLists:
        """What applies in `channel`'s workspace, read at every request: an admin's change
        reaches every replica at once."""
        entries = await self.store.access_entries(channel.platform, channel.workspace)
        return merge(self.settings, entries)
