"""Platform budgets shared by the replicas of one app, through the store.

Slack counts `chat.update` per workspace and `chat.postMessage` per channel, Discord counts
50 requests a second per bot token: whatever the number of replicas. Each replica pacing
itself alone would let two replicas make twice the calls one would, and earn 429s. So when
replicas coordinate (PostgreSQL), every paced call also draws a token from a bucket in the
store (`BudgetStore.take_token`), one bucket per budget for all replicas.

The limiters ask synchronously, on every call (`bot.pacing.BudgetState.take`, Discord's
`ChannelLimiter`), and a database round trip per call would put the store's latency in front
of every final edit. So `SharedTokens` keeps, per bucket, a few tokens already drawn from the
store (their slots given by the store: "may be spent from then on"), and draws the next ones
in the background as they are spent: a caller takes a drawn token whose slot has come, or is
told how long until one will have. Drawing ahead costs at most a burst of slots per bucket
in use when a replica goes quiet (one, once the bucket is short); it never lets the replicas
together exceed the bucket, because every slot was handed out by the store once.

A 429 (`block`) empties the bucket in the store until its `Retry-After` has passed, so the
other replicas hold back too instead of each earning its own 429. And what the 429 taught
(the adaptive budget's lower rate and its ceiling, remembered for a while: `bot.pacing`) is
recorded in the store (`publish`); every replica polls for such lessons four times a second and
adopts them, so the replicas of one app learn a workspace's limit once, together, and a
replica that starts later begins from what the others know.

When the store cannot be reached, the local budgets still pace this replica (the wait falls
back to them, logged once a minute): a database hiccup slows nothing down.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from bot.models import BudgetRefusal
from bot.pacing import LocalBudgets, Tier
from bot.ports import BudgetStore

log = logging.getLogger(__name__)

AHEAD = 1  # tokens drawn ahead for a bucket in use
MAX_DRAW = 16  # tokens drawn at once for callers that found none
POLL = 0.005  # seconds a caller waits while its tokens are being drawn
COMPLAIN_EVERY = 60.0  # seconds between log lines about an unreachable store
PRUNE_AT = 4096  # buckets remembered before idle ones are forgotten
IDLE = 600.0  # seconds unused after which a bucket's drawn tokens may be forgotten
LESSON_POLL = 0.25  # seconds between reads of what other replicas learned from 429s
SHORT_MEMORY = 5.0  # seconds a wait for the shared bucket counts as demand for growth


@dataclass(slots=True)
class _Bucket:
    rate: float
    burst: float
    ready: deque[float] = field(default_factory=deque)  # slots of drawn tokens, in order
    wanted: int = 0  # callers that found no token since the last draw began
    drawing: bool = False
    flowing: bool = True  # the last draw found tokens to spare (no wait)
    used_at: float = 0.0


class SharedTokens:
    """Tokens of the store's shared buckets, drawn ahead of need (see the module)."""

    def __init__(
        self,
        store: BudgetStore,
        *,
        clock: Callable[[], float] = time.time,
        ahead: int = AHEAD,
        poll: float = LESSON_POLL,
    ) -> None:
        """`clock` is wall time: the store's buckets are shared by processes, whose
        monotonic clocks do not agree."""
        self._store = store
        self._clock = clock
        self._ahead = ahead
        self._buckets: dict[str, _Bucket] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._complained = -math.inf
        self.draws = 0  # tokens drawn from the store (for tests and the bench)
        self.source = uuid.uuid4().hex[:12]  # this replica, in the lessons it records
        self._poll = poll
        self._listeners: list[Callable[[BudgetRefusal], None]] = []
        self._poller: asyncio.Task[None] | None = None
        self._seen = 0.0  # the newest lesson read (wall time)

    def now(self) -> float:
        return self._clock()

    def take(self, name: str, *, rate: float, burst: float) -> float:
        """0.0 when a token was taken (spend it now), else seconds until one may be there."""
        now = self._clock()
        if self._listeners and self._poller is None:
            self._poller = asyncio.ensure_future(self._read_lessons())
        bucket = self._bucket(name, rate, burst, now)
        bucket.used_at = now
        if bucket.ready and bucket.ready[0] <= now:
            bucket.ready.popleft()
            self._draw(name, bucket)
            return 0.0
        bucket.wanted += 1
        self._draw(name, bucket)
        return bucket.ready[0] - now if bucket.ready else POLL

    def give_back(self, name: str) -> None:
        """A token taken for a call that was not made: the next caller may spend it."""
        bucket = self._buckets.get(name)
        if bucket is not None:
            bucket.ready.appendleft(self._clock())

    def block(self, name: str, *, rate: float, burst: float, retry_after: float) -> None:
        """The platform answered 429: no replica draws a slot of `name` before
        `retry_after` seconds from now (tokens drawn here already wait that long too)."""
        now = self._clock()
        until = now + retry_after
        bucket = self._bucket(name, rate, burst, now)
        bucket.ready = deque(max(at, until) for at in bucket.ready)
        self._spawn(
            self._quietly(
                self._store.block_budget(name, rate=rate, burst=burst, now=now, until=until)
            )
        )

    def publish(self, name: str, *, rate: float, ceiling: float, until: float) -> None:
        """Record what a 429 taught budget `name` (see the module), for the other replicas."""
        lesson = BudgetRefusal(name, self.source, rate, ceiling, until, self._clock())
        self._spawn(self._quietly(self._store.record_refusal(lesson)))

    def listen(self, listener: Callable[[BudgetRefusal], None]) -> None:
        """Call `listener` with every lesson another replica records (and those recorded
        before this one started, while they are still remembered)."""
        self._listeners.append(listener)

    async def aclose(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- drawing --------------------------------------------------------------------------

    def _bucket(self, name: str, rate: float, burst: float, now: float) -> _Bucket:
        bucket = self._buckets.get(name)
        if bucket is None:
            if len(self._buckets) >= PRUNE_AT:
                self._prune(now)
            bucket = self._buckets[name] = _Bucket(rate, burst)
        else:  # an adaptive budget's rate moves: the store refills at the caller's rate
            bucket.rate, bucket.burst = rate, burst
        return bucket

    def _draw(self, name: str, bucket: _Bucket) -> None:
        """Draw what callers want while the store's bucket has tokens to spare; once it is
        short (the last draw came with a wait), hold one future slot at a time: drawing
        more would book this replica's callers seconds ahead, slots the other replicas'
        callers (and a newer edit of ours) may need sooner."""
        if bucket.drawing:
            return
        now = self._clock()
        booked = sum(1 for at in bucket.ready if at > now)
        if bucket.flowing:  # at most a burst: all the bucket could have to spare
            wanted = max(self._ahead - len(bucket.ready), bucket.wanted)
            count = min(MAX_DRAW, math.ceil(bucket.burst), wanted)
        else:
            count = 1 if booked < self._ahead else 0
        if count <= 0:
            return
        bucket.drawing = True
        bucket.wanted = 0
        self._spawn(self._fill(name, bucket, count))

    async def _fill(self, name: str, bucket: _Bucket, count: int) -> None:
        try:
            now = self._clock()
            waits = await asyncio.gather(
                *(
                    self._store.take_token(name, rate=bucket.rate, burst=bucket.burst, now=now)
                    for _ in range(count)
                )
            )
            slots = [now + wait for wait in waits]
            bucket.flowing = all(wait == 0 for wait in waits)
            self.draws += count
        except Exception as err:  # the local budgets still pace this replica
            self._complain(err)
            slots = [self._clock()] * count
        finally:
            bucket.drawing = False
        bucket.ready.extend(slots)
        if len(bucket.ready) > 1:
            bucket.ready = deque(sorted(bucket.ready))
        if bucket.wanted:  # callers came while drawing
            self._draw(name, bucket)

    async def _quietly(self, write: Awaitable[None]) -> None:
        """A write whose failure only costs sharing (the local budgets still pace)."""
        try:
            await write
        except Exception as err:
            self._complain(err)

    async def _read_lessons(self) -> None:
        while True:
            try:
                lessons = await self._store.refusals_since(self._seen)
            except Exception as err:
                self._complain(err)
                lessons = []
            now = self._clock()
            for lesson in lessons:
                self._seen = max(self._seen, lesson.at)
                if lesson.source == self.source or lesson.until <= now:
                    continue
                for listener in self._listeners:
                    listener(lesson)
            await asyncio.sleep(self._poll)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _complain(self, err: BaseException) -> None:
        now = time.monotonic()
        if now - self._complained >= COMPLAIN_EVERY:
            self._complained = now
            log.warning("shared budgets: the store did not answer (%s); pacing locally", err)

    def _prune(self, now: float) -> None:
        for name, bucket in list(self._buckets.items()):
            if not bucket.drawing and now - bucket.used_at > IDLE:
                del self._buckets[name]


class SharedBudgets:
    """`BudgetState` for replicas: this replica's adaptive budgets (`LocalBudgets`: what it
    has learned, its 429 blocks) and, on top, a token of the store's bucket for the same
    budget, so every replica together stays within it. Keys are scoped (`scope`, set once
    the adapter knows which workspace or bot it is) so two apps on one database never share
    a bucket."""

    def __init__(self, tokens: SharedTokens, *, local: LocalBudgets | None = None) -> None:
        self.tokens = tokens
        self.local = local if local is not None else LocalBudgets()
        self.scope = ""
        self._short: dict[str, float] = {}  # when the shared bucket last made a key wait
        self._lessons: dict[str, BudgetRefusal] = {}  # by key, adopted at its next call
        tokens.listen(self._heard)

    def _heard(self, lesson: BudgetRefusal) -> None:
        prefix = f"{self.scope}/" if self.scope else ""
        if lesson.name.startswith(prefix):
            if len(self._lessons) >= PRUNE_AT:
                self._lessons.clear()
            self._lessons[lesson.name[len(prefix) :]] = lesson

    def _name(self, key: str) -> str:
        return f"{self.scope}/{key}" if self.scope else key

    def _rate(self, key: str, tier: Tier) -> float:
        rate = self.local.rate(key)
        return rate if rate is not None else tier.rate

    def take(self, key: str, tier: Tier, now: float) -> float:
        if self._lessons and key in self._lessons:
            self._adopt(key, tier, now, self._lessons.pop(key))
        wait = self.local.take(key, tier, now)
        if wait > 0:
            return wait
        wait = self.tokens.take(self._name(key), rate=self._rate(key, tier), burst=tier.burst)
        if wait > 0:  # the replicas together spent it: give back ours, and wait as they do
            self.local.refund(key, tier, now)
            if wait > POLL:  # short of budget, not just waiting for a draw to come back
                if len(self._short) >= PRUNE_AT:
                    self._short.clear()
                self._short[key] = now
        return wait

    def refund(self, key: str, tier: Tier, now: float) -> None:
        self.local.refund(key, tier, now)
        self.tokens.give_back(self._name(key))

    def settle(self, key: str, tier: Tier, now: float, *, retry_after: float | None) -> None:
        if now - self._short.pop(key, -math.inf) < SHORT_MEMORY:
            # demand waited for the shared bucket: an adaptive budget grows as it would
            # have had it waited for its own (the local one stays full under the shared)
            self.local.press(key, tier, now)
        before = self.local.lesson(key, now)
        self.local.settle(key, tier, now, retry_after=retry_after)
        if retry_after is None:
            return
        self.tokens.block(
            self._name(key), rate=self._rate(key, tier), burst=tier.burst, retry_after=retry_after
        )
        lesson = self.local.lesson(key, now)
        if lesson is not None and lesson != before:  # a new lesson: tell the others
            rate, ceiling, remember = lesson
            until = self.tokens.now() + remember
            self.tokens.publish(self._name(key), rate=rate, ceiling=ceiling, until=until)

    def _adopt(self, key: str, tier: Tier, now: float, lesson: BudgetRefusal) -> None:
        remember = lesson.until - self.tokens.now()
        if remember > 0 and tier.adaptive:
            self.local.adopt(
                key, tier, now, rate=lesson.rate, ceiling=lesson.ceiling, remember=remember
            )
            log.info("budget %s: adopted %.2f/s, at most %.2f/s", key, lesson.rate, lesson.ceiling)

    def learning(self, key: str, tier: Tier, now: float) -> bool:
        return self.local.learning(key, tier, now)
