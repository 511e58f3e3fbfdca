"""Staying inside Slack's rate limits instead of bouncing off them, and learning them.

Slack counts calls per method per workspace (`chat.update` is Tier 3, "50+ a minute"), plus
`chat.postMessage` per channel (about one a second, short bursts allowed). Those budgets are
shared by every conversation running at once, so a bot that edits per thread on its own clock
collapses under concurrency (most edits answered 429, answers frozen on interim text). And
they are separate: when `chat.update` is saturated by many live answers, a channel's
`chat.postMessage` budget is still there (see `SlackSurface`, which posts a final answer, or
an overdue live one, as the message's continuation instead of waiting for `chat.update`).

Here, with `bot.pacing`'s pieces: one adaptive `Budget` per workspace for `chat.update`,
served by an `EditScheduler` (coalesced per message, finals first, fair), and one per channel
for posts. `chat.update` starts at the documented tier and grows while no 429 comes; a 429
(whose `Retry-After` every budget honours) teaches it a ceiling. Posts stay at Slack's "one a
second": that is the channel's real limit, not a floor. Explicit rates pin a budget (tests, or
an operator who knows the workspace's limits). The state lives behind
`bot.pacing.BudgetState`: in this process, or with replicas shared through the store
(`bot.shared_budgets`), so the replicas of one app spend one workspace's budget once.

The paced methods are not retried by slack_sdk's 429 handler (`PacedRetryHandler`): a live
edit that earned a 429 is better re-sent with newer text, and a final one delivered another
way; every other method keeps the SDK's wait-and-retry.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

from bot.pacing import Budget, BudgetState, EditScheduler, LocalBudgets, Tier

__all__ = ["PACED", "PacedRetryHandler", "SlackLimiter", "retry_after_of"]

log = logging.getLogger(__name__)
T = TypeVar("T")

# chat.update: Tier 3, "50+ per minute" per workspace; we start a little under it (45 a
# minute, bursts of 10) and let it grow while Slack keeps saying yes.
UPDATE_TIER = Tier(rate=45 / 60, burst=10, ceiling=100.0)
# chat.postMessage per channel: "1 per second, short bursts >1 allowed".
POST_TIER = Tier.pinned(rate=1.0, burst=2)
# How long a live edit may wait for chat.update before it is posted as the message's
# continuation: while the budget is still learning (the wait is our own doing) about one
# edit interval; once Slack has said no, long enough to keep answers in few messages.
PATIENCE_LEARNING = 1.0
PATIENCE_LIMITED = 4.0
POST_ATTEMPTS = 4
PACED = frozenset({"chat.postMessage", "chat.update", "chat.startStream"})


def retry_after_of(err: BaseException) -> float | None:
    """A 429's `Retry-After` in seconds (1 when Slack left it out); None for other errors."""
    if not isinstance(err, SlackApiError) or err.response.status_code != 429:
        return None
    headers = err.response.headers or {}
    value = headers.get("Retry-After") or headers.get("retry-after")
    if isinstance(value, list):
        value = value[0] if value else None
    try:
        return max(0.0, float(value)) if value is not None else 1.0
    except ValueError:
        return 1.0


class PacedRetryHandler(AsyncRateLimitErrorRetryHandler):
    """slack_sdk's 429 handler (wait `Retry-After`, retry), except for the methods our
    budgets pace: their 429 goes back to the caller, which learns from it."""

    async def _can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if request.url.rsplit("/", 1)[-1].split("?", 1)[0] in PACED:
            return False
        return await super()._can_retry_async(
            state=state, request=request, response=response, error=error
        )


class SlackLimiter:
    """Everything one workspace shares: the `chat.update` budget and its scheduler, and the
    per-channel post budgets. Rates given here pin a budget at that rate."""

    def __init__(
        self,
        *,
        update_capacity: float | None = None,
        update_rate: float | None = None,
        post_capacity: float | None = None,
        post_rate: float | None = None,
        state: BudgetState | None = None,
        workspace: str = "",
        patience: tuple[float, float] = (PATIENCE_LEARNING, PATIENCE_LIMITED),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`state` holds the budgets (shared by the replicas, on PostgreSQL); `patience` is how long
        a live edit may wait for chat.update before it is posted as a continuation, while the
        budget is learning and once it is not."""
        self.state: BudgetState = state if state is not None else LocalBudgets()
        self._patience = patience
        self.clock = self._clock = clock
        self._prefix = f"slack:{workspace}:" if workspace else "slack:"
        if update_rate is None and update_capacity is None:
            update_tier = UPDATE_TIER
        else:
            update_tier = Tier.pinned(
                update_rate or UPDATE_TIER.rate, update_capacity or UPDATE_TIER.burst
            )
        if post_rate is None and post_capacity is None:
            self._post_tier = POST_TIER
        else:
            self._post_tier = Tier.pinned(
                post_rate or POST_TIER.rate, post_capacity or POST_TIER.burst
            )
        self.updates = Budget(self.state, self._prefix + "chat.update", update_tier, clock=clock)
        self.edits = EditScheduler(self.updates, limited=retry_after_of, clock=clock)
        self._posts: dict[str, Budget] = {}

    def post_budget(self, channel: str) -> Budget:
        budget = self._posts.get(channel)
        if budget is None:
            if len(self._posts) >= 4096:  # idle channels' handles; their state stays
                self._posts.clear()
            key = f"{self._prefix}chat.postMessage:{channel}"
            budget = self._posts[channel] = Budget(
                self.state, key, self._post_tier, clock=self._clock
            )
        return budget

    def patience(self) -> float:
        """How long a live edit may wait for `chat.update` before it is worth a post."""
        learning, limited = self._patience
        return learning if self.updates.learning else limited

    async def before_post(self, channel: str) -> None:
        """Wait for a post's worth of the channel's budget (the caller settles nothing:
        prefer `post`, which also learns from a 429)."""
        await self.post_budget(channel).acquire()

    async def post(self, channel: str, call: Callable[[], Awaitable[T]]) -> T:
        """Make a posting call within the channel's budget; a 429 is waited out (by its
        `Retry-After`) and retried a few times."""
        budget = self.post_budget(channel)
        for attempt in range(1, POST_ATTEMPTS + 1):
            await budget.acquire()
            try:
                result = await call()
            except SlackApiError as err:
                retry_after = retry_after_of(err)
                budget.settle(retry_after=retry_after)
                if retry_after is None or attempt == POST_ATTEMPTS:
                    raise
                log.info("chat.postMessage in %s answered 429; retrying", channel)
                continue
            budget.settle()
            return result
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        await self.edits.aclose()
