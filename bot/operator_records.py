"""Value objects of the operator features (usage, quotas, access), shared by the core and
storage.

Kept apart from `bot.models` because they belong to one feature set: what was used (one
`UsageEvent` per finished turn, delivered generation and finished run), the daily limits an
admin set (`QuotaLimit`) and who may use the bot (`AccessEntry`). Like everything in
`bot.models` they are frozen dataclasses and name no platform.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from bot.models import ChannelKey


class UsageKind(StrEnum):
    TURN = "turn"
    GENERATION = "generation"
    RUN = "run"


@dataclass(frozen=True, slots=True)
class UsageEvent:
    """One thing a person used, recorded once.

    `ref` names what is counted (a turn id, a job id, a session id and a file's URL): the store
    keeps one event per (`kind`, `ref`), so a second writer (a redelivered webhook, another
    replica) changes nothing. `detail` is the turn's outcome, the file's kind (image, video,
    audio, file) or the run's kind (prediction, workflow); `cost` is in US dollars, None when
    Eachlabs did not report one."""

    kind: UsageKind
    ref: str
    channel: ChannelKey
    user_id: str
    at: float
    detail: str = ""
    cost: float | None = None


@dataclass(frozen=True, slots=True)
class UsageTotal:
    """Events of one (`kind`, `detail`): how many, the sum of the reported costs and how many
    of them reported a cost at all."""

    kind: UsageKind
    detail: str
    count: int
    cost: float = 0.0
    priced: int = 0


@dataclass(frozen=True, slots=True)
class UsageLeader:
    """One person's (or channel's) use in a period, for an admin's top lists."""

    id: str
    turns: int
    runs: int
    generations: int
    cost: float


UsageBy = Literal["user", "channel"]

# --- quotas ---------------------------------------------------------------------------------

QuotaName = Literal["user-turns", "user-runs", "channel-turns", "channel-runs"]
QUOTA_NAMES: tuple[QuotaName, ...] = ("user-turns", "user-runs", "channel-turns", "channel-runs")
WORKSPACE = ""  # `QuotaLimit.channel` of a limit set for the whole workspace


@dataclass(frozen=True, slots=True)
class QuotaLimit:
    """A daily limit an admin set: for the whole workspace (`channel` is `WORKSPACE`) or for
    one channel. `value` 0 means "no limit" (set on purpose, overriding the settings)."""

    name: QuotaName
    channel: str
    value: int
    changed_by: str | None = None
    changed_at: float | None = None


# --- access ---------------------------------------------------------------------------------

AccessKind = Literal["user", "role", "channel"]
AccessEffect = Literal["allow", "deny"]
ACCESS_KINDS: tuple[AccessKind, ...] = ("user", "role", "channel")


@dataclass(frozen=True, slots=True)
class AccessEntry:
    """An id an admin put on the allow or the deny list of a workspace: a person, a role (or
    user group) or a channel. One entry per id and kind: allowing a denied id replaces the
    deny."""

    kind: AccessKind
    value: str
    effect: AccessEffect
    changed_by: str | None = None
    changed_at: float | None = None


__all__ = [
    "ACCESS_KINDS",
    "QUOTA_NAMES",
    "WORKSPACE",
    "AccessEffect",
    "AccessEntry",
    "AccessKind",
    "QuotaLimit",
    "QuotaName",
    "UsageBy",
    "UsageEvent",
    "UsageKind",
    "UsageLeader",
    "UsageTotal",
]
