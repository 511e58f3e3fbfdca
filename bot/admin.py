"""`/sense-admin`: admins change the access lists and the daily quotas of their workspace.

    /sense-admin access                                   the lists that apply here
    /sense-admin access allow|deny user|role|channel ID…  put ids on a list (`here`: this channel)
    /sense-admin access remove user|role|channel ID…      take ids off the lists
    /sense-admin quota                                    the limits that apply here, today's use
    /sense-admin quota user-turns|user-runs N|off|default                per person, workspace-wide
    /sense-admin quota channel-turns|channel-runs N|off|default [here]   per channel

Ids arrive bare: the adapters turn a mention (a person, a role or user group, a channel) into
its id at the edge. Parsing is pure and synchronous, so a mistyped command is refused with the
usage before the platform is answered (`Commands.precheck`); running it needs an admin
(`Commands.is_admin`) and writes to the store, which every replica reads at every request.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, cast

from bot.access import SETTING_NAMES, Access, settings_lists
from bot.errors import InputError
from bot.models import ChannelKey
from bot.operator_records import (
    ACCESS_KINDS,
    QUOTA_NAMES,
    WORKSPACE,
    AccessEffect,
    AccessEntry,
    AccessKind,
    QuotaName,
)
from bot.quotas import WHAT, Limit, Quotas
from bot.usage import plural

ADMIN_USAGE = (
    "Usage: `/sense-admin access` · `/sense-admin access allow|deny user|role|channel <id…>` · "
    "`/sense-admin access remove user|role|channel <id…>` · `/sense-admin quota` · "
    "`/sense-admin quota user-turns|user-runs|channel-turns|channel-runs <n|off|default> "
    "[here]`. `here` stands for this channel."
)
MAX_IDS = 20
MAX_QUOTA = 1_000_000
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")
_KIND_WORDS: dict[AccessKind, tuple[str, str]] = {
    "user": ("person", "people"),
    "role": ("role", "roles"),
    "channel": ("channel", "channels"),
}
QUOTA_LABELS: dict[QuotaName, str] = {
    "user-turns": "Turns per person",
    "user-runs": "Model and workflow runs per person",
    "channel-turns": "Turns per channel",
    "channel-runs": "Model and workflow runs per channel",
}
_SOURCES = {
    "settings": "from the settings",
    "workspace": "set for the workspace",
    "channel": "set for this channel",
}


@dataclass(frozen=True, slots=True)
class Help:
    pass


@dataclass(frozen=True, slots=True)
class ShowAccess:
    pass


@dataclass(frozen=True, slots=True)
class ChangeAccess:
    action: Literal["allow", "deny", "remove"]
    kind: AccessKind
    ids: tuple[str, ...]  # "here" stands for the command's channel


@dataclass(frozen=True, slots=True)
class ShowQuotas:
    pass


@dataclass(frozen=True, slots=True)
class SetQuota:
    name: QuotaName
    value: int | None  # None: back to the next level (remove this one)
    here: bool


AdminRequest = Help | ShowAccess | ChangeAccess | ShowQuotas | SetQuota


def parse_admin_args(text: str) -> AdminRequest:
    """What `/sense-admin <text>` asks for, or an `InputError` with the usage."""
    words = (text or "").split()
    area = words[0].lower() if words else "help"
    rest = words[1:]
    if area == "help" and not rest:
        return Help()
    if area == "access":
        return _access(rest)
    if area in ("quota", "quotas"):
        return _quota(rest)
    raise InputError(f"Unknown option {_code(area)}. {ADMIN_USAGE}")


def _access(words: Sequence[str]) -> AdminRequest:
    if not words:
        return ShowAccess()
    action = words[0].lower()
    if action not in ("allow", "deny", "remove") or len(words) < 3:
        raise InputError(ADMIN_USAGE)
    kind = words[1].lower().removesuffix("s")
    kind = {"group": "role", "person": "user", "people": "user"}.get(kind, kind)
    if kind not in ACCESS_KINDS:
        raise InputError(f"Say `user`, `role` or `channel`, not {_code(words[1])}. {ADMIN_USAGE}")
    ids = tuple(dict.fromkeys(_id(word, kind=cast(AccessKind, kind)) for word in words[2:]))
    if len(ids) > MAX_IDS:
        raise InputError(f"At most {MAX_IDS} ids at a time, please.")
    return ChangeAccess(
        cast(Literal["allow", "deny", "remove"], action), cast(AccessKind, kind), ids
    )


def _id(word: str, *, kind: AccessKind) -> str:
    if word.lower() == "here":
        if kind != "channel":
            raise InputError("`here` stands for this channel: use it with `channel`.")
        return "here"
    value = word.lstrip("@#")
    if not value or len(value) > 100 or not set(value) <= _ID_CHARS:
        raise InputError(
            f"{_code(word)} is not an id. Mention the {_KIND_WORDS[kind][0]} or paste its id."
        )
    return value


def _quota(words: Sequence[str]) -> AdminRequest:
    if not words:
        return ShowQuotas()
    name = words[0].lower()
    if name not in QUOTA_NAMES or len(words) not in (2, 3):
        raise InputError(ADMIN_USAGE)
    here = len(words) == 3
    if here and words[2].lower() != "here":
        raise InputError(ADMIN_USAGE)
    if here and name.startswith("user-"):
        raise InputError(
            "Quotas per person count across the whole workspace; `here` works for "
            "`channel-turns` and `channel-runs`."
        )
    raw = words[1].lower()
    value: int | None
    if raw == "default":
        value = None
    elif raw in ("off", "none"):
        value = 0
    elif raw.isdigit() and int(raw) <= MAX_QUOTA:
        value = int(raw)
    else:
        raise InputError(
            f"{_code(words[1])} is not a limit: give a number (0 to {MAX_QUOTA:,}), "
            "`off` or `default`."
        )
    return SetQuota(cast(QuotaName, name), value, here)


def _code(text: str) -> str:
    return "`" + text[:40].replace("`", "ˋ") + "`"


class AdminCommands:
    """Runs a parsed `/sense-admin` for an admin; every answer is a sentence."""

    def __init__(
        self, access: Access, quotas: Quotas, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.access = access
        self.quotas = quotas
        self._clock = clock

    async def run(self, request: AdminRequest, *, channel: ChannelKey, by: str) -> str:
        if isinstance(request, ShowAccess):
            return await self.show_access(channel)
        if isinstance(request, ChangeAccess):
            return await self.change_access(request, channel=channel, by=by)
        if isinstance(request, ShowQuotas):
            return await self.show_quotas(channel)
        if isinstance(request, SetQuota):
            return await self.set_quota(request, channel=channel, by=by)
        return ADMIN_USAGE

    # --- access -------------------------------------------------------------------------

    async def show_access(self, channel: ChannelKey) -> str:
        stored = await self.access.store.access_entries(channel.platform, channel.workspace)
        configured = settings_lists(self.access.settings)
        lines = ["**Who may use each::sense here** (deny beats allow; admins are never locked out)"]
        for effect in ("allow", "deny"):
            for kind in ACCESS_KINDS:
                mine = [e.value for e in stored if e.effect == effect and e.kind == kind]
                fixed = sorted(configured[(effect, kind)])
                if not (mine or fixed):
                    continue
                shown = ", ".join(_code(v) for v in mine)
                if fixed:
                    name = SETTING_NAMES[(effect, kind)]
                    shown += (
                        ("; " if shown else "") + f"{name}: " + ", ".join(_code(v) for v in fixed)
                    )
                verb = "Allowed" if effect == "allow" else "Denied"
                lines.append(f"{verb} {_KIND_WORDS[kind][1]}: {shown}")
        if len(lines) == 1:
            lines.append("No lists: everyone may use each::sense in every channel.")
        return "\n".join(lines)

    async def change_access(self, request: ChangeAccess, *, channel: ChannelKey, by: str) -> str:
        ids = [channel.channel if v == "here" else v for v in request.ids]
        kind, words = request.kind, _KIND_WORDS[request.kind][1]
        shown = ", ".join(_code(v) for v in ids)
        if request.action == "remove":
            return await self._remove(channel, kind, ids)
        effect = cast(AccessEffect, request.action)
        for value in ids:
            entry = AccessEntry(kind, value, effect, changed_by=by, changed_at=self._clock())
            await self.access.store.set_access(channel.platform, channel.workspace, entry)
        verb = "allowed" if effect == "allow" else "denied"
        text = f"Done: {verb} {words} {shown} in this workspace."
        if effect == "allow":
            denied = settings_lists(self.access.settings)[("deny", kind)] & set(ids)
            if denied:
                listed = ", ".join(_code(v) for v in sorted(denied))
                text += (
                    f" Note: {SETTING_NAMES[('deny', kind)]} (a setting) lists {listed}, and deny"
                    " beats allow: change that setting to let them in."
                )
        return text

    async def _remove(self, channel: ChannelKey, kind: AccessKind, ids: list[str]) -> str:
        removed: list[str] = []
        absent: list[str] = []
        for value in ids:
            gone = await self.access.store.remove_access(
                channel.platform, channel.workspace, kind=kind, value=value
            )
            (removed if gone else absent).append(value)
        parts = []
        if removed:
            parts.append("Done: " + ", ".join(_code(v) for v in removed) + " taken off the lists.")
        configured = settings_lists(self.access.settings)
        for value in absent:
            names = [
                SETTING_NAMES[(e, kind)]
                for e in ("allow", "deny")
                if value in configured[(e, kind)]
            ]
            if names:
                parts.append(
                    f"{_code(value)} is in {' and '.join(names)}: change it in the settings."
                )
            else:
                parts.append(f"{_code(value)} was not on a list here.")
        return " ".join(parts)

    # --- quotas -------------------------------------------------------------------------

    async def show_quotas(self, channel: ChannelKey) -> str:
        limits = await self.quotas.limits(channel)
        lines = [f"**Daily quotas here** (they reset {self.quotas.resets()}; admins are exempt)"]
        lines += [f"{QUOTA_LABELS[name]}: {_limit_text(limits[name])}" for name in QUOTA_NAMES]
        return "\n".join(lines)

    async def set_quota(self, request: SetQuota, *, channel: ChannelKey, by: str) -> str:
        where = channel.channel if request.here else WORKSPACE
        await self.quotas.store.set_quota_limit(
            channel.platform,
            channel.workspace,
            channel=where,
            name=request.name,
            value=request.value,
            by=by,
            at=self._clock(),
        )
        now = (await self.quotas.limits(channel))[request.name]
        if request.value is None:
            return f"Done: {QUOTA_LABELS[request.name].lower()} here: {_limit_text(now)}."
        text = "Done: " + _effect(request.name, request.value, here=request.here) + "."
        if not request.here and now.source == "channel":  # a channel's own limit hides it
            text += f" This channel has a limit of its own: {_limit_text(now)}."
        return text


def _effect(name: QuotaName, value: int, *, here: bool) -> str:
    """What a new limit means, as a sentence: `each person may start 20 turns a day ...`."""
    where = "this channel" if here else "this workspace"
    if value == 0:
        return f"{QUOTA_LABELS[name].lower()} in {where}: no limit"
    count = plural(value, *WHAT["turns" if name.endswith("-turns") else "runs"])
    if name.startswith("user-"):
        return f"each person may start {count} a day in this workspace"
    if here:
        return f"this channel may start {count} a day"
    return f"each channel may start {count} a day, unless it has a limit of its own"


def _limit_text(limit: Limit) -> str:
    if limit.value == 0:
        value = "off"
    else:
        value = f"{limit.value:,} a day"
    return f"{value} ({_SOURCES[limit.source]})"
