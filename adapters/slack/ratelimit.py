"""Staying inside Slack's rate limits instead of bouncing off them.

Slack counts `chat.update` per method per workspace (Tier 3, about 50 a minute) and
`chat.postMessage` per channel (about one a second with short bursts). Those budgets are
shared by every conversation running at once, so a bot that edits per thread on its own
clock collapses under concurrency (most edits answered 429, answers frozen on interim text).

Here, with `bot.pacing`'s pieces: one `TokenBucket` per channel for posts and one
`EditScheduler` per workspace for edits (coalesced per message, finals first, fair).

The defaults keep `capacity + rate * window` under Slack's published numbers, so a burst
followed by a sustained rate still fits in any one-minute window.
"""

from __future__ import annotations

from bot.pacing import EditScheduler, TokenBucket

__all__ = ["EditScheduler", "SlackLimiter", "TokenBucket"]

# chat.update: at most 10 + 38 = 48 calls in any minute (Slack: Tier 3, 50+/min).
UPDATE_CAPACITY = 10.0
UPDATE_RATE = 38 / 60
# chat.postMessage per channel: at most 2 + 0.7 * 5 = 5.5 in any 5 s (Slack: ~1/s, bursts ok).
POST_CAPACITY = 2.0
POST_RATE = 0.7


class SlackLimiter:
    """Everything one workspace shares: the edit scheduler and per-channel post buckets."""

    def __init__(
        self,
        *,
        update_capacity: float = UPDATE_CAPACITY,
        update_rate: float = UPDATE_RATE,
        post_capacity: float = POST_CAPACITY,
        post_rate: float = POST_RATE,
    ) -> None:
        self.edits = EditScheduler(TokenBucket(capacity=update_capacity, rate=update_rate))
        self._post_capacity = post_capacity
        self._post_rate = post_rate
        self._posts: dict[str, TokenBucket] = {}

    async def before_post(self, channel: str) -> None:
        bucket = self._posts.get(channel)
        if bucket is None:
            bucket = TokenBucket(capacity=self._post_capacity, rate=self._post_rate)
            self._posts[channel] = bucket
        await bucket.acquire()

    async def aclose(self) -> None:
        await self.edits.aclose()
