"""Pacing: how the bot spends platform budgets without bouncing off them.

One module for every platform and for the renderer:
- `Tier`: where a budget starts (a platform's documented rate and burst) and how far it may
  grow;
- `BudgetState`: the state of every budget, behind four methods, so the replicas of one app
  share it (`bot.shared_budgets.SharedBudgets`, on the store; `LocalBudgets` is the
  in-process default);
- `Budget`: one budget (say `chat.update` of one workspace) as callers use it: take a call's
  worth now or learn how long until one, wait for one, say how the call went;
- `EditScheduler`: one per budget; pending edits of a message coalesce (only the newest state
  is sent), finals are served before live edits and live edits before tidy-ups, messages take
  turns in arrival order and one message's edits land in order; an edit may carry a fallback
  (another way to deliver it, on another budget) that is tried once it is overdue;
- `EditBudget`: the process-wide budget for live edits (finals never wait for it).

Adaptive budgets. A platform documents a floor ("50+ a minute") and a workspace may allow far
more. An adaptive `Budget` starts at its tier and grows while calls keep going through with
demand waiting (×1.25 per call that went through since demand last had to wait and the bucket
has not refilled), so the bot imposes no wait on itself for long.
A 429 blocks the budget for its `Retry-After` and teaches it a ceiling: refused above the
documented rate, it goes back to that rate and grows again only slowly and only up to 3/4 of
the rate that was refused, for `MEMORY` seconds; refused at or below it, it halves. A pinned
budget (a tier whose ceiling is its rate) never grows and only waits out 429s.

Discord's sliding windows (5 per channel per 5 s, 50 per bot per second) live with its
adapter in `adapters/discord/ratelimit.py`, built on the same ideas: finals first, the
newest state wins.

What `Surface.edit` means with these (see `bot.ports.Surface`): a live edit may return before
the platform has it (it is queued, coalesced); a final edit returns once it is sent.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

log = logging.getLogger(__name__)

# edits of different messages in flight at once, when the budget allows more
EDIT_CONCURRENCY = 16
MEMORY = 600.0  # seconds a 429 keeps an adaptive budget under what was refused
PROBE_GROWTH = 1.25  # rate × this per call that went through while demand waited
CAUTIOUS_STEP = 0.02  # after a 429: + this share of the tier's rate per such call
CEILING_SHARE = 0.75  # of the refused rate: the ceiling a 429 leaves behind
PRUNE_AT = 4096  # budgets remembered before idle, full ones are forgotten
ADOPT_GRACE = 5.0  # seconds after taking on a lesson in which a 429 teaches nothing new
# A live edit's fallback waits this much longer when the budget's next call is at most this
# far off: the budget's own way is then about to serve it.
FALLBACK_GRACE = 0.05


@dataclass(frozen=True, slots=True)
class Tier:
    """A budget's starting point: `rate` calls a second with bursts of `burst`, free to grow
    up to `ceiling` calls a second (`ceiling == rate`: pinned, it never grows)."""

    rate: float
    burst: float
    ceiling: float

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1 or self.ceiling < self.rate:
            raise ValueError("a tier needs rate > 0, burst >= 1 and ceiling >= rate")

    @classmethod
    def pinned(cls, rate: float, burst: float) -> Tier:
        return cls(rate, burst, rate)

    @property
    def adaptive(self) -> bool:
        return self.ceiling > self.rate

    @property
    def floor(self) -> float:
        return self.rate / 4


class BudgetState(Protocol):
    """Where budgets live. `key` names one budget (a method of one workspace, a channel's
    posts); `tier` says how to start it the first time it is seen. Implementations must be
    cheap: these run on every call the bot makes to the platform."""

    def take(self, key: str, tier: Tier, now: float) -> float:
        """Take one call's worth: 0.0 when taken, else the seconds until one may be there
        (nothing is taken then, and the budget notes that demand is waiting)."""
        ...

    def refund(self, key: str, tier: Tier, now: float) -> None:
        """Give back what `take` took for a call that was not made."""
        ...

    def settle(self, key: str, tier: Tier, now: float, *, retry_after: float | None) -> None:
        """A call that took budget is over: refused with `retry_after` seconds (a 429), or
        not (`None`: it went through, or failed for another reason)."""
        ...

    def learning(self, key: str, tier: Tier, now: float) -> bool:
        """Whether the budget is still finding out what the platform allows (adaptive, and
        no 429 remembered): a wait for it is then one the bot imposes on itself."""
        ...


@dataclass(slots=True)
class _Level:
    tokens: float
    at: float
    rate: float
    blocked_until: float = 0.0
    pressed: bool = False  # demand has waited since the bucket was last full
    ceiling: float = math.inf  # learned from a 429, until `ceiling_until`
    ceiling_until: float = 0.0
    adopted_at: float = -math.inf  # when another replica's lesson was last taken on


class LocalBudgets:
    """`BudgetState` in this process's memory (one replica)."""

    def __init__(self) -> None:
        self._levels: dict[str, _Level] = {}

    def _level(self, key: str, tier: Tier, now: float) -> _Level:
        level = self._levels.get(key)
        if level is None:
            if len(self._levels) >= PRUNE_AT:
                self._prune(now)
            level = self._levels[key] = _Level(tier.burst, now, tier.rate)
        elif now > level.at:
            level.tokens = min(tier.burst, level.tokens + (now - level.at) * level.rate)
            level.at = now
            if level.tokens >= tier.burst:  # supply has caught up with demand
                level.pressed = False
        return level

    def take(self, key: str, tier: Tier, now: float) -> float:
        level = self._level(key, tier, now)
        if now < level.blocked_until:
            level.pressed = True
            return level.blocked_until - now
        if level.tokens >= 1:
            level.tokens -= 1
            return 0.0
        level.pressed = True
        return (1 - level.tokens) / level.rate

    def refund(self, key: str, tier: Tier, now: float) -> None:
        level = self._level(key, tier, now)
        level.tokens = min(tier.burst, level.tokens + 1)

    def settle(self, key: str, tier: Tier, now: float, *, retry_after: float | None) -> None:
        level = self._level(key, tier, now)
        if retry_after is not None:
            self._refused(level, tier, now, retry_after)
        elif level.pressed and tier.adaptive:
            self._grow(level, tier, now)

    def learning(self, key: str, tier: Tier, now: float) -> bool:
        level = self._levels.get(key)
        return tier.adaptive and (level is None or now >= level.ceiling_until)

    def press(self, key: str, tier: Tier, now: float) -> None:
        """Demand waited for this budget elsewhere (the replicas' shared bucket): it may
        grow as if it had waited here."""
        self._level(key, tier, now).pressed = True

    def lesson(self, key: str, now: float) -> tuple[float, float, float] | None:
        """What a 429 taught this budget, while it is remembered: (rate now, ceiling,
        seconds it is still remembered); None when nothing is."""
        level = self._levels.get(key)
        if level is None or now >= level.ceiling_until:
            return None
        return level.rate, level.ceiling, level.ceiling_until - now

    def adopt(
        self, key: str, tier: Tier, now: float, *, rate: float, ceiling: float, remember: float
    ) -> None:
        """Take on what another replica's 429 taught the same budget, as if it had been
        refused here (without the block: the shared bucket holds every replica back)."""
        level = self._level(key, tier, now)
        level.ceiling = max(tier.floor, ceiling)
        level.rate = max(tier.floor, min(level.rate, rate, level.ceiling))
        level.ceiling_until = max(level.ceiling_until, now + remember)
        level.adopted_at = now

    def rate(self, key: str) -> float | None:
        """The budget's current rate (for logs and tests)."""
        level = self._levels.get(key)
        return level.rate if level is not None else None

    @staticmethod
    def _refused(level: _Level, tier: Tier, now: float, retry_after: float) -> None:
        # calls in flight together bring several 429s, and so do the replicas' calls made
        # before one of them learned (and told the others) what the workspace allows
        first = now >= level.blocked_until and now - level.adopted_at >= ADOPT_GRACE
        level.blocked_until = max(level.blocked_until, now + max(0.0, retry_after))
        level.tokens = min(level.tokens, 0.0)
        if not first or not tier.adaptive:
            return
        if level.rate > tier.rate * 1.01:  # more than documented was too much: back to it
            level.ceiling = max(tier.rate, level.rate * CEILING_SHARE)
            level.rate = tier.rate
        else:  # even the documented rate was too much: this workspace gives less
            level.rate = max(tier.floor, level.rate / 2)
            level.ceiling = level.rate
        level.ceiling_until = now + MEMORY
        log.info("budget refused: now %.2f/s, at most %.2f/s", level.rate, level.ceiling)

    @staticmethod
    def _grow(level: _Level, tier: Tier, now: float) -> None:
        if now < level.ceiling_until:
            grown = min(level.rate + tier.rate * CAUTIOUS_STEP, level.ceiling)
        else:
            grown = level.rate * PROBE_GROWTH
        level.rate = max(level.rate, min(grown, tier.ceiling))

    def _prune(self, now: float) -> None:
        for key, level in list(self._levels.items()):
            idle = now - level.at
            if level.ceiling_until <= now and idle > MEMORY:
                del self._levels[key]


class Budget:
    """One budget: `key` in `state`, started at `tier`."""

    def __init__(
        self,
        state: BudgetState,
        key: str,
        tier: Tier,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.state = state
        self.key = key
        self.tier = tier
        self._clock = clock
        self._lock = asyncio.Lock()  # FIFO among `acquire` callers

    def take(self) -> float:
        """0.0 when a call's worth was taken now, else seconds until one may be there."""
        return self.state.take(self.key, self.tier, self._clock())

    def refund(self) -> None:
        self.state.refund(self.key, self.tier, self._clock())

    def settle(self, *, retry_after: float | None = None) -> None:
        self.state.settle(self.key, self.tier, self._clock(), retry_after=retry_after)

    @property
    def learning(self) -> bool:
        return self.state.learning(self.key, self.tier, self._clock())

    async def acquire(self) -> None:
        """Wait for a call's worth (callers queue in arrival order)."""
        async with self._lock:
            while True:
                wait = self.take()
                if wait <= 0:
                    return
                await asyncio.sleep(wait)


# sends an edit; returns False when it turned out no call was needed (the budget is refunded)
Send = Callable[[], Awaitable[bool | None]]
# another way to deliver an edit, on another budget: returns 0.0 when it delivered the edit,
# else the seconds to wait before trying again (math.inf: it cannot deliver this one)
Fallback = Callable[[], Awaitable[float]]
Limited = Callable[[BaseException], float | None]  # a 429's Retry-After, or None
FINAL, LIVE, TIDY = 0, 1, 2


@dataclass
class _Pending:
    send: Send
    priority: int
    waiters: list[asyncio.Future[None]] = field(default_factory=list)
    fallback: Fallback | None = None
    fallback_at: float = math.inf
    deferred: bool = False  # its fallback already gave the budget a moment's grace


def _settle(waiters: list[asyncio.Future[None]], err: BaseException | None) -> None:
    for waiter in waiters:
        if waiter.done():
            continue
        if err is None:
            waiter.set_result(None)
        else:
            waiter.set_exception(err)
            waiter.exception()  # a live edit's waiter may be gone: no "never retrieved"


def _never_limited(err: BaseException) -> float | None:
    return None


class EditScheduler:
    """Serves edits through one budget: coalesced per message, finals first, fair.

    Edits of *different* messages go out concurrently (at most `concurrency` live edits in
    flight; finals may use `concurrency` more slots, so a final never waits behind live
    edits; tidy-ups, which change only what old messages show around complete text, get a
    quarter), while the edits of one message stay strictly in order: a message's next edit
    starts only after its previous one has been answered.

    An edit answered with a 429 (`limited` says which errors are, and their `Retry-After`)
    goes back in line and the budget learns from it. An edit with a `fallback` that is still
    waiting at `fallback_at` (a final: at once) is offered to the fallback, which may deliver
    it on a budget of its own; whichever way is free first delivers it.
    """

    def __init__(
        self,
        budget: Budget,
        *,
        concurrency: int = EDIT_CONCURRENCY,
        limited: Limited = _never_limited,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.budget = budget
        self._limits = (2 * concurrency, concurrency, max(1, concurrency // 4))
        self._limited = limited
        self._clock = clock
        # one line per priority, in turn order; a message's key is in at most one line
        self._lines: tuple[dict[str, _Pending], ...] = ({}, {}, {})
        self._sending: set[str] = set()  # messages with an edit in flight
        self._in_flight = [0, 0, 0]
        self._due: list[tuple[float, int, str]] = []  # fallback times, checked lazily
        self._budget_wait = 0.0  # what the budget said last: seconds to its next call
        self._seq = itertools.count()
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        return sum(len(line) for line in self._lines)

    @property
    def in_flight(self) -> int:
        return len(self._sending)

    def busy(self, key: str) -> bool:
        """Whether an edit of `key` is waiting or in flight."""
        return key in self._sending or any(key in line for line in self._lines)

    def submit(
        self,
        key: str,
        send: Send,
        *,
        final: bool = False,
        tidy: bool = False,
        fallback: Fallback | None = None,
        fallback_at: float = math.inf,
    ) -> asyncio.Future[None]:
        """Queue `send` as the newest edit of message `key`; the future resolves when the
        edit that superseded or included it has been delivered."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        priority = FINAL if final else TIDY if tidy else LIVE
        if final and fallback is not None and fallback_at == math.inf:
            fallback_at = self._clock()  # a final need not wait for this budget at all
        for level, line in enumerate(self._lines):
            pending = line.get(key)
            if pending is None:
                continue
            # coalesce: keep its place in line, send only the newest state
            pending.send, pending.fallback, pending.fallback_at = send, fallback, fallback_at
            pending.deferred = False
            pending.waiters.append(future)
            if priority < level:
                pending.priority = priority
                self._lines[priority][key] = line.pop(key)
            break
        else:
            self._lines[priority][key] = _Pending(send, priority, [future], fallback, fallback_at)
        if fallback is not None and fallback_at < math.inf:
            heapq.heappush(self._due, (fallback_at, next(self._seq), key))
        self._kick()
        return future

    async def send_final(self, key: str, send: Send, *, fallback: Fallback | None = None) -> None:
        """Deliver a message's final edit, in the caller's task when nothing stands in the way
        (no edit of that message in flight or queued, and either a call's worth of budget now
        or a fallback that can deliver it now): the final edit is what a person waits for, so
        it skips the hand-offs to and from the scheduler's worker."""
        if self.busy(key):
            await self.submit(key, send, final=True, fallback=fallback)
            return
        retry_at = math.inf
        self._sending.add(key)
        try:
            if not self._lines[FINAL] and self.budget.take() == 0:
                delivered = await self._attempt(send)
                retry_at = self._clock()  # answered 429: the fallback may deliver it now
            elif fallback is not None:
                wait = await fallback()
                delivered = wait == 0
                retry_at = self._clock() + wait
            else:
                delivered = False
        finally:
            self._sending.discard(key)
        if delivered:
            self._kick()
            return
        await self.submit(key, send, final=True, fallback=fallback, fallback_at=retry_at)

    async def _attempt(self, send: Send) -> bool:
        """One call on the budget already taken: True if delivered, False if answered 429
        (the budget learns); other errors are raised."""
        try:
            called = await send()
        except Exception as err:
            retry_after = self._limited(err)
            self.budget.settle(retry_after=retry_after)
            if retry_after is None:
                raise
            return False
        if called is False:  # nothing needed sending after all
            self.budget.refund()
        else:
            self.budget.settle()
        return True

    def _pop(self, key: str) -> _Pending | None:
        for line in self._lines:
            pending = line.pop(key, None)
            if pending is not None:
                return pending
        return None

    def _kick(self) -> None:
        self._wake.set()
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._run(), name="edit-scheduler")

    def _next(self) -> str | None:
        """The oldest edit of the highest priority with a free slot, skipping messages that
        have an edit in flight."""
        for level, line in enumerate(self._lines):
            if self._in_flight[level] >= self._limits[level]:
                continue
            for key in line:
                if key not in self._sending:
                    return key
        return None

    def _due_fallback(self, now: float) -> float:
        """Start every fallback that is due; return when the next one will be."""
        due = self._due
        while due:
            at, _, key = due[0]
            pending = self._find(key)
            if pending is None or pending.fallback is None or pending.fallback_at != at:
                heapq.heappop(due)  # superseded or delivered: a stale reminder
                continue
            if key in self._sending:
                heapq.heappop(due)  # re-armed when that edit is answered
                continue
            if at > now:
                return at
            heapq.heappop(due)
            if (
                pending.priority != FINAL
                and not pending.deferred
                and self._budget_wait <= FALLBACK_GRACE
            ):
                pending.deferred = True
                pending.fallback_at = now + FALLBACK_GRACE
                heapq.heappush(due, (pending.fallback_at, next(self._seq), key))
                continue
            self._start(key, self._fallback(key, self._pop_line(key)))
        return math.inf

    def _find(self, key: str) -> _Pending | None:
        for line in self._lines:
            pending = line.get(key)
            if pending is not None:
                return pending
        return None

    def _pop_line(self, key: str) -> _Pending:
        pending = self._pop(key)
        assert pending is not None
        return pending

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            key = self._next()
            wait = math.inf
            if key is not None:
                wait = self._budget_wait = self.budget.take()
                if wait == 0:  # the budget's own way first: it keeps a message in one piece
                    pending = self._pop_line(key)
                    self._in_flight[pending.priority] += 1
                    self._start(key, self._send(key, pending))
                    continue
            now = self._clock()
            delay = min(wait, self._due_fallback(now) - now)
            if delay == math.inf:
                await self._wake.wait()
                continue
            try:
                async with asyncio.timeout(max(0.0, delay)):
                    await self._wake.wait()
            except TimeoutError:
                pass

    def _start(self, key: str, work: Awaitable[None]) -> None:
        self._sending.add(key)
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, key: str, pending: _Pending) -> None:
        try:
            delivered = await self._attempt(pending.send)
        except Exception as err:  # hand the failure to whoever waits for it
            log.debug("edit of %s failed: %r", key, err)
            _settle(pending.waiters, err)
        else:
            if delivered:
                _settle(pending.waiters, None)
            else:
                self._requeue(key, pending, fallback_at=self._clock())
        finally:
            self._in_flight[pending.priority] -= 1
            self._done(key)

    async def _fallback(self, key: str, pending: _Pending) -> None:
        assert pending.fallback is not None
        try:
            wait = await pending.fallback()
        except Exception as err:
            log.debug("fallback for %s failed: %r", key, err)
            _settle(pending.waiters, err)
        else:
            if wait == 0:
                _settle(pending.waiters, None)
            else:
                self._requeue(key, pending, fallback_at=self._clock() + wait)
        finally:
            self._done(key)

    def _requeue(self, key: str, pending: _Pending, *, fallback_at: float) -> None:
        """Put an undelivered edit back in line (behind a newer edit of the same message,
        if one arrived meanwhile: that one carries the newest state)."""
        newer = self._find(key)
        if newer is not None:
            newer.waiters[:0] = pending.waiters
            if pending.priority < newer.priority:
                self._lines[newer.priority].pop(key)
                newer.priority = pending.priority
                self._lines[pending.priority][key] = newer
            return
        if pending.fallback is not None and pending.priority != FINAL:
            fallback_at = max(fallback_at, pending.fallback_at)
        pending.fallback_at = fallback_at
        self._lines[pending.priority][key] = pending

    def _done(self, key: str) -> None:
        self._sending.discard(key)
        pending = self._find(key)
        if pending is not None and pending.fallback is not None and pending.fallback_at < math.inf:
            heapq.heappush(self._due, (pending.fallback_at, next(self._seq), key))
        self._kick()

    async def aclose(self) -> None:
        tasks = [t for t in (self._worker, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for line in self._lines:
            for pending in line.values():
                for waiter in pending.waiters:
                    waiter.cancel()
            line.clear()


class EditBudget:
    def __init__(
        self,
        rate: float,
        *,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`rate` live edits per second for the whole process, `burst` at once."""
        if rate <= 0:
            raise ValueError("rate must be positive")
        self._rate = rate
        self._capacity = burst if burst is not None else max(1.0, rate / 4)
        self._tokens = self._capacity
        self._clock = clock
        self._last = clock()
        self._lock = asyncio.Lock()  # FIFO: waiting renderers take turns fairly

    @property
    def rate(self) -> float:
        return self._rate

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self._capacity, self._tokens + (now - self._last) * self._rate)
        self._last = now

    async def acquire(self) -> None:
        """Wait for one live edit's worth of budget (cancellable while waiting)."""
        async with self._lock:
            self._refill()
            while self._tokens < 1:
                await asyncio.sleep((1 - self._tokens) / self._rate)
                self._refill()
            self._tokens -= 1
