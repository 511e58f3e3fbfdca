"""Discord's limits, kept on our side so the bot never earns a 429.

Two limits apply at once. Each channel (a thread is a channel) takes about 5 messages or edits
per 5 s; and the whole bot takes 50 requests per second across every route except the
interaction endpoints (`/interactions/...` callbacks and `/webhooks/...` interaction
messages). discord.py waits out 429s by itself, but a bot that relies on that spends its
budget sleeping and its answers freeze mid-sentence; a global 429 even stalls every request
the bot makes. So every request takes a slot here first:

- the surface and the root post take a slot in their channel *and* in the global window,
  granted together so neither window's stamp runs ahead of the request it paid for;
- everything else discord.py sends for us (thread creation, thread joins, login...) takes a
  global slot in `route_through`, which wraps the client's `HTTPClient.request`.

The global window also caps bursts (`global_burst` per `global_burst_per`), so requests
leave evenly through the second rather than all at its start.

Waiters are served in order of (priority, arrival): a turn's final edit before live edits,
otherwise first come first served across all channels, so under global contention every
live message just updates less often (the surface makes a waiting edit send the newest text).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from discord.http import HTTPClient, Route

DISCORD_RATE = 5
DISCORD_PER = 5.0
# Our clock starts a slot when we send, Discord's when the request arrives: a little slack
# keeps jitter on the wire from squeezing six requests into Discord's window.
SAFETY = 0.35
# Discord allows 50 requests/s per bot. We take 45 per 1.1 s: the 5 spare and the 0.1 s keep
# arrival jitter (our event loop, the network) from putting 51 inside Discord's second.
GLOBAL_RATE = 45
GLOBAL_PER = 1.0
GLOBAL_SAFETY = 0.1
# ...and no more than 5 of them within 0.1 s. Without it the window refills in bursts of 45 a
# second apart, and a burst that reaches Discord a little later than the next one (a busy
# event loop, the network) puts more than 50 inside Discord's window. Spread out, the
# requests arrive spread out.
GLOBAL_BURST = 5
GLOBAL_BURST_PER = 0.1
EXEMPT_PREFIXES = ("/interactions/", "/webhooks/")  # not counted by Discord's global limit
PRUNE_AT = 1024  # channels remembered before idle ones are swept
URGENT, NORMAL = 0, 1

# Set by `paid()`: the next REST call in this context already holds its slot.
_PAID: ContextVar[bool] = ContextVar("discord_slot_paid", default=False)


@dataclass(order=True)
class _Waiter:
    priority: int
    ticket: int
    channel: str | None = field(compare=False)
    granted: asyncio.Future[None] = field(compare=False)


class ChannelLimiter:
    """At most `rate` slots per `per` seconds in each channel and `global_rate` per
    `global_per` seconds (and `global_burst` per `global_burst_per`) in all of them together;
    urgent waiters go first, then the oldest.

    `clock` and `sleep` are injectable so tests can drive time by hand."""

    def __init__(
        self,
        *,
        rate: int = DISCORD_RATE,
        per: float = DISCORD_PER + SAFETY,
        global_rate: int = GLOBAL_RATE,
        global_per: float = GLOBAL_PER + GLOBAL_SAFETY,
        global_burst: int = GLOBAL_BURST,
        global_burst_per: float = GLOBAL_BURST_PER,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.rate = rate
        self.per = per
        self.global_rate = global_rate
        self.global_per = global_per
        self.global_burst = global_burst
        self.global_burst_per = global_burst_per
        self._clock = clock
        self._sleep = sleep
        self._channels: dict[str, deque[float]] = {}
        self._global: deque[float] = deque()
        self._waiting: list[_Waiter] = []  # kept sorted: (priority, ticket)
        self._tickets = itertools.count()
        self._timer: asyncio.Task[None] | None = None
        self._timer_at = 0.0

    @property
    def waiting(self) -> int:
        """How many requests wait for a slot (for logs and tests)."""
        return len(self._waiting)

    async def acquire(self, channel: str | None, *, urgent: bool = False) -> None:
        """Wait for a slot in `channel` (None: a global slot only); `urgent` (a final edit)
        goes before every non-urgent waiter."""
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiter = _Waiter(URGENT if urgent else NORMAL, next(self._tickets), channel, granted)
        self._waiting.append(waiter)  # the newest ticket of its priority: sorted stays cheap
        self._waiting.sort()
        self._pump()
        try:
            await granted
        except BaseException:
            if waiter in self._waiting:
                self._waiting.remove(waiter)
                self._pump()
            raise

    def _pump(self) -> None:
        """Grant every waiter that fits both windows, in order, then sleep until the
        earliest moment another one could fit."""
        now = self._clock()
        _expire(self._global, now, self.global_per)
        blocked: list[float] = []  # when the full channels of remaining waiters free a slot
        remaining: list[_Waiter] = []
        for index, waiter in enumerate(self._waiting):
            if waiter.granted.done():  # cancelled while waiting: it takes no slot
                continue
            if self._global_free_at(now) > now:
                remaining.extend(w for w in self._waiting[index:] if not w.granted.done())
                break
            stamps = self._stamps(waiter.channel, now)
            if stamps is not None and len(stamps) >= self.rate:
                blocked.append(stamps[0] + self.per)
                remaining.append(waiter)
                continue
            self._global.append(now)
            if stamps is not None:
                stamps.append(now)
            if not waiter.granted.done():
                waiter.granted.set_result(None)
        self._waiting = remaining
        if len(self._channels) > PRUNE_AT:
            self._prune(now)
        if not remaining:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            return
        if (free_at := self._global_free_at(now)) > now:
            self._wake_at(free_at)
        elif blocked:
            self._wake_at(min(blocked))

    def _global_free_at(self, now: float) -> float:
        """When the global window can take another slot (`now` when it can at once)."""
        stamps = self._global
        at = now
        if len(stamps) >= self.global_rate:
            at = stamps[-self.global_rate] + self.global_per
        if len(stamps) >= self.global_burst:
            at = max(at, stamps[-self.global_burst] + self.global_burst_per)
        return at

    def _stamps(self, channel: str | None, now: float) -> deque[float] | None:
        if channel is None:
            return None
        stamps = self._channels.setdefault(channel, deque())
        _expire(stamps, now, self.per)
        return stamps

    def _wake_at(self, when: float) -> None:
        timer = self._timer
        if timer is not None and not timer.done():
            if self._timer_at <= when:
                return  # an earlier wake-up is already set; it will schedule the next one
            timer.cancel()
        self._timer_at = when
        self._timer = asyncio.create_task(self._wake(max(0.0, when - self._clock())))

    async def _wake(self, delay: float) -> None:
        await self._sleep(delay)
        self._timer = None
        self._pump()

    def _prune(self, now: float) -> None:
        """Forget channels whose window is empty and nobody waits on, so idle threads cost
        nothing."""
        busy = {w.channel for w in self._waiting}
        for name, stamps in list(self._channels.items()):
            if name not in busy and (not stamps or now - stamps[-1] >= self.per):
                del self._channels[name]


def _expire(stamps: deque[float], now: float, per: float) -> None:
    while stamps and now - stamps[0] >= per:
        stamps.popleft()


@contextlib.contextmanager
def paid() -> Iterator[None]:
    """The next REST call made in this block already took its slot with `acquire`."""
    token = _PAID.set(True)
    try:
        yield
    finally:
        _PAID.reset(token)


def is_exempt(path: str) -> bool:
    """Interaction callbacks and interaction webhooks are outside Discord's global limit."""
    return path.startswith(EXEMPT_PREFIXES)


def route_through(http: HTTPClient, limiter: ChannelLimiter) -> None:
    """Make every non-exempt request of discord.py's `http` take a global slot, unless the
    caller already paid for it (`paid()`). Wrapping the instance's `request` catches every
    call discord.py makes for us, including ones we never see (thread joins, login)."""
    send = http.request

    async def request(route: Route, **kwargs: Any) -> Any:
        if _PAID.get():
            _PAID.set(False)  # one request per slot
        elif not is_exempt(route.path):
            await limiter.acquire(None)
        return await send(route, **kwargs)

    http.request = request  # type: ignore[method-assign]
