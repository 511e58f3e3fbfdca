"""Pacing: how the bot spends platform budgets without bouncing off them.

One module for every platform and for the renderer:
- `TokenBucket`: a FIFO token bucket (Slack's per-channel posts, Slack's per-workspace edits);
- `EditScheduler`: one per budget; pending edits of a message coalesce (only the newest state
  is sent), finals are served before live edits, messages take turns in arrival order and
  one message's edits land in order;
- `EditBudget`: the process-wide budget for live edits (finals never wait for it).

Discord's sliding windows (5 per channel per 5 s, 50 per bot per second) live with its
adapter in `adapters/discord/ratelimit.py`, built on the same ideas: finals first, the
newest state wins.

What `Surface.edit` means with these (see `bot.ports.Surface`): a live edit may return
before the platform has it (it is queued, coalesced); a final edit returns once it is sent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

# edits of different messages in flight at once, when the budget allows more
EDIT_CONCURRENCY = 16


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

    def try_acquire(self) -> bool:
        """Take a token if one is there now and nobody is queued for one; never waits."""
        if self._lock.locked():
            return False
        self._refill()
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    def give_back(self) -> None:
        """Return a token taken but not used."""
        self._tokens = min(self.capacity, self._tokens + 1)


Send = Callable[[], Awaitable[None]]


@dataclass
class _Pending:
    send: Send
    final: bool
    waiters: list[asyncio.Future[None]] = field(default_factory=list)


def _settle(waiters: list[asyncio.Future[None]], err: BaseException | None) -> None:
    for waiter in waiters:
        if waiter.done():
            continue
        if err is None:
            waiter.set_result(None)
        else:
            waiter.set_exception(err)
            waiter.exception()  # a live edit's waiter may be gone: no "never retrieved"


class EditScheduler:
    """Serves edits through one bucket: coalesced per message, finals first, fair.

    Edits of *different* messages go out concurrently (at most `concurrency` live edits in
    flight; finals may use `concurrency` more slots, so a final never waits behind live
    edits), while the edits of one message stay strictly in order: a message's next edit
    starts only after its previous one has been answered. Under Slack's real budget the
    bucket hands out a token every ~1.6 s and this changes nothing; with budget to spare (a
    big workspace, or limits off) it keeps one slow call from holding up every thread.
    """

    def __init__(self, bucket: TokenBucket, *, concurrency: int = EDIT_CONCURRENCY) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._bucket = bucket
        self._concurrency = concurrency
        # insertion order = turn order; a final moves to `_finals` and is served first
        self._finals: dict[str, _Pending] = {}
        self._live: dict[str, _Pending] = {}
        self._sending: set[str] = set()  # messages with an edit in flight
        self._live_in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        return len(self._finals) + len(self._live)

    @property
    def in_flight(self) -> int:
        return len(self._sending)

    def submit(self, key: str, send: Send, *, final: bool = False) -> asyncio.Future[None]:
        """Queue `send` as the newest edit of message `key`; the future resolves when the
        edit that superseded or included it has been sent."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        pending = self._finals.get(key) or self._live.get(key)
        if pending is None:
            (self._finals if final else self._live)[key] = _Pending(send, final, [future])
        else:  # coalesce: keep its place in line, send only the newest state
            pending.send = send
            pending.waiters.append(future)
            if final and not pending.final:
                pending.final = True
                self._finals[key] = self._live.pop(key)
        self._wake.set()
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._run(), name="edit-scheduler")
        return future

    async def send_final(self, key: str, send: Send) -> None:
        """Send a message's final edit, in the caller's task when nothing stands in the way
        (no edit of that message in flight, a token available now): the final edit is what
        a person waits for, so it skips the hand-offs to and from the scheduler's worker."""
        if key in self._sending or key in self._finals or not self._bucket.try_acquire():
            await self.submit(key, send, final=True)
            return
        superseded = self._live.pop(key, None)  # this edit includes whatever was pending
        self._sending.add(key)
        try:
            await send()
        except BaseException as err:
            if superseded is not None:
                _settle(superseded.waiters, err)
            raise
        finally:
            self._sending.discard(key)
            if self._live or self._finals:
                self._wake.set()
        if superseded is not None:
            _settle(superseded.waiters, None)

    def _next(self) -> str | None:
        """The oldest final, else (if a live slot is free) the oldest live edit, skipping
        messages that have an edit in flight."""
        if len(self._sending) < 2 * self._concurrency:
            for key in self._finals:
                if key not in self._sending:
                    return key
        if self._live_in_flight < self._concurrency:
            for key in self._live:
                if key not in self._sending:
                    return key
        return None

    async def _run(self) -> None:
        while True:
            if self._next() is None:
                self._wake.clear()
                await self._wake.wait()
                continue
            await self._bucket.acquire()
            key = self._next()  # the line may have changed while waiting for budget
            if key is None:
                self._bucket.give_back()
                continue
            pending = self._finals.pop(key, None) or self._live.pop(key)
            self._sending.add(key)
            if not pending.final:
                self._live_in_flight += 1
            task = asyncio.create_task(self._send(key, pending), name="edit")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, key: str, pending: _Pending) -> None:
        try:
            await pending.send()
        except Exception as err:  # hand the failure to whoever waits for it
            log.debug("edit of %s failed: %r", key, err)
            _settle(pending.waiters, err)
        else:
            _settle(pending.waiters, None)
        finally:
            self._sending.discard(key)
            if not pending.final:
                self._live_in_flight -= 1
            self._wake.set()

    async def aclose(self) -> None:
        tasks = [t for t in (self._worker, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for line in (self._finals, self._live):
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
