"""The fake Slack with Slack's limits as token buckets, for tests and benchmarks that need them.

`FakeSlack` limits calls with sliding windows; Slack's tiers behave more like token buckets (a
burst, then a steady rate), and that is what the busy-workspace scenarios are written against:
`chat.update` 50 a minute per workspace with bursts of 10, `chat.postMessage` one a second per
channel with bursts of 3. Over a bucket: HTTP 429 with `Retry-After` (whole seconds, at least
one, as Slack sends it) and `{"ok": false, "error": "ratelimited"}`; a refused call takes no
token. Other methods (and `force_429`) behave as in `FakeSlack`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from tests.fakes.slack import FakeSlack


@dataclass(frozen=True, slots=True)
class Rate:
    """Up to `burst` calls at once, refilled at `per_second` calls a second."""

    per_second: float
    burst: int


SLACK_UPDATE = Rate(50 / 60, 10)  # chat.update, per workspace
SLACK_POST = Rate(1.0, 3)  # chat.postMessage, per channel


class LimitedSlack(FakeSlack):
    """`FakeSlack` whose limits are token buckets: `methods` per workspace (method → Rate) and
    `channel_post` per channel for `chat.postMessage`. With no buckets it limits nothing."""

    def __init__(
        self,
        *,
        methods: dict[str, Rate] | None = None,
        channel_post: Rate | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(method_limits={}, channel_post_limit=None, **kwargs)
        self.buckets = dict(methods or {})
        self.channel_post = channel_post
        self._levels: dict[tuple[str, str], tuple[float, float]] = {}  # key -> (tokens, at)

    @classmethod
    def slack_like(cls, **kwargs: Any) -> LimitedSlack:
        return cls(methods={"chat.update": SLACK_UPDATE}, channel_post=SLACK_POST, **kwargs)

    def _rate_check(self, method: str, params: dict[str, Any], now: float) -> int | None:
        forced = super()._rate_check(method, params, now)
        if forced is not None:
            return forced
        checks: list[tuple[tuple[str, str], Rate]] = []
        if method in self.buckets:
            checks.append(((method, "*"), self.buckets[method]))
        if method == "chat.postMessage" and self.channel_post is not None:
            checks.append(((method, str(params.get("channel"))), self.channel_post))
        levels = [self._level(key, rate, now) for key, rate in checks]
        for (_, rate), tokens in zip(checks, levels, strict=True):
            if tokens < 1:
                return max(1, math.ceil((1 - tokens) / rate.per_second))
        for (key, _), tokens in zip(checks, levels, strict=True):
            self._levels[key] = (tokens - 1, now)
        return None

    def _level(self, key: tuple[str, str], rate: Rate, now: float) -> float:
        tokens, at = self._levels.get(key, (float(rate.burst), now))
        tokens = min(float(rate.burst), tokens + (now - at) * rate.per_second)
        self._levels[key] = (tokens, now)
        return tokens
