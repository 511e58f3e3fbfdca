"""Staying inside Slack's rate limits instead of bouncing off them.

Slack counts `chat.update` per method per workspace (Tier 3, about 50 a minute) and
`chat.postMessage` per channel (about one a second with short bursts). Those budgets are
shared by every conversation running at once, so a bot that edits per thread on its own
clock collapses under concurrency (most edits answered 429, answers frozen on interim text).

Here:
- `TokenBucket`: a FIFO token bucket; one per channel for posts.
- `EditScheduler`: one per workspace for edits. Pending edits are keyed by message; a newer
  edit of the same message replaces the pending one (coalescing), final edits are served
  before live ones, and messages take turns in arrival order so no conversation starves.

The defaults keep `capacity + rate * window` under Slack's published numbers, so a burst
followed by a sustained rate still fits in any one-minute window.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

# chat.update: at most 10 + 38 = 48 calls in any minute (Slack: Tier 3, 50+/min).
UPDATE_CAPACITY = 10.0
UPDATE_RATE = 38 / 60
# chat.postMessage per channel: at most 2 + 0.7 * 5 = 5.5 in any 5 s (Slack: ~1/s, bursts ok).
POST_CAPACITY = 2.0
POST_RATE = 0.7


class TokenBucket:
    """Tokens refill at `rate` per second up to `capacity`; `acquire` waits for one, FIFO."""

    def __init__(
        self,
        *,
        capacity: float,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if capacity < 1 or rate <= 0:
            raise ValueError("a bucket needs capacity >= 1 and rate > 0")
        self.capacity = capacity
        self.rate = rate
        self._clock = clock
        self._tokens = capacity
        self._at = clock()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.rate)
        self._at = now

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                self._refill()
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await asyncio.sleep((1 - self._tokens) / self.rate)


Send = Callable[[], Awaitable[None]]


@dataclass
class _Pending:
    send: Send
    final: bool
    waiters: list[asyncio.Future[None]] = field(default_factory=list)


class EditScheduler:
    """Serves edits through one bucket: coalesced per message, finals first, fair."""

    def __init__(self, bucket: TokenBucket) -> None:
        self._bucket = bucket
        self._pending: dict[str, _Pending] = {}  # insertion order = turn order
        self._wake = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        return len(self._pending)

    def submit(self, key: str, send: Send, *, final: bool = False) -> asyncio.Future[None]:
        """Queue `send` as the newest edit of message `key`; the future resolves when the
        edit that superseded or included it has been sent."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        pending = self._pending.get(key)
        if pending is None:
            self._pending[key] = _Pending(send, final, [future])
        else:  # coalesce: keep its place in line, send only the newest state
            pending.send = send
            pending.final = pending.final or final
            pending.waiters.append(future)
        self._wake.set()
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._run(), name="slack-edit-scheduler")
        return future

    def _next(self) -> tuple[str, _Pending]:
        for key, pending in self._pending.items():
            if pending.final:
                return key, self._pending.pop(key)
        key = next(iter(self._pending))
        return key, self._pending.pop(key)

    async def _run(self) -> None:
        while True:
            if not self._pending:
                self._wake.clear()
                await self._wake.wait()
                continue
            await self._bucket.acquire()
            key, pending = self._next()
            try:
                await pending.send()
            except Exception as err:  # hand the failure to whoever waits for it
                for waiter in pending.waiters:
                    if not waiter.done():
                        waiter.set_exception(err)
                        waiter.exception()  # a live edit's waiter may be gone: no warning
                log.debug("edit of %s failed: %r", key, err)
                continue
            for waiter in pending.waiters:
                if not waiter.done():
                    waiter.set_result(None)

    async def aclose(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        for pending in self._pending.values():
            for waiter in pending.waiters:
                waiter.cancel()
        self._pending.clear()


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
