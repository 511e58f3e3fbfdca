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

Waiters are served in order of (priority, since, arrival): a turn's final edit before live
edits, otherwise the thread that has gone longest without a write first (`since`, the time of
its last write; a request without one counts from its arrival), across all channels. So under
global contention every live message just updates less often (the surface makes a waiting
edit send the newest text), and threads that stream in step keep a steady order among
themselves instead of a new shuffle every round: each one's writes stay evenly spaced.

Discord keeps its per-channel limits per route: creating messages and editing them are two
buckets (`POST /channels/{id}/messages` and `PATCH .../messages/{id}`), each about 5 per 5 s.
So a channel has a window per kind (`kind="post"` or `"edit"`), and in each `reserve` slots
are kept for urgent requests: a live answer that fills its window with page turns or edits
still leaves room for the final edit (and the page it may post), which then never waits.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp

if TYPE_CHECKING:
    from discord.http import HTTPClient, Route

log = logging.getLogger(__name__)

DISCORD_RATE = 5
DISCORD_PER = 5.0
# Our clock starts a slot when we send, Discord's when the request arrives: a little slack
# keeps jitter on the wire from squeezing six requests into Discord's window (and only urgent
# requests may take a window's fifth slot, so live traffic alone stays at four).
SAFETY = 0.2
# Discord allows 50 requests/s per bot. We take 45 per 1.1 s: the 5 spare and the 0.1 s keep
# arrival jitter (our event loop, the network) from putting 51 inside Discord's second.
GLOBAL_RATE = 45
GLOBAL_PER = 1.0
GLOBAL_SAFETY = 0.1
# ...and no more than 10 of them within 0.1 s. Without it the window refills in bursts of 45
# a second apart, and a burst that reaches Discord a little later than the next one (a busy
# event loop, the network) puts more than 50 inside Discord's window. Spread out, the
# requests arrive spread out. (Ten, not fewer: threads that stream in step send their edits
# together, and a tighter cap would hold the last of them back for a noticeable moment.)
GLOBAL_BURST = 10
GLOBAL_BURST_PER = 0.1
EXEMPT_PREFIXES = ("/interactions/", "/webhooks/")  # not counted by Discord's global limit
RESERVE = 1  # slots per channel window kept for urgent requests (the bot's setting)
KINDS = ("post", "edit")
PRUNE_AT = 1024  # channels remembered before idle ones are swept
URGENT, NORMAL, START, TIDY = 0, 1, 2, 3

# Set by `paid()`: the next REST call in this context already holds its slot.
_PAID: ContextVar[bool] = ContextVar("discord_slot_paid", default=False)
# Set by `opening()`: when the conversation whose requests these are came in.
_SINCE: ContextVar[float | None] = ContextVar("discord_conversation_since", default=None)


LIVE_SHARE = 0.5  # of the global budget that live answers' edits may count on
LOW_SHARE = 0.3  # of the global window that `start` and `tidy` requests may always fill
LIVE_ROOM = 1.25  # × what live answers used lately: the room `start`/`tidy` must leave them,
LIVE_FLOOR = LIVE_SHARE  # and never less than what answers may be let in to use at once,
LOW_MARGIN = 5  # and these few slots more, for finals
LIVE_WINDOW = 3.0  # seconds over which the live answers' write rate is measured
WARMUP = 2.0  # seconds a just-started answer counts as streaming at full rate
STALE = 120.0  # seconds without a write after which a live answer no longer counts
ADMIT_POLL = 0.2  # seconds between checks while an answer waits to start


class StreamGate:
    """Live answers start only while the bot's global budget can keep them fresh.

    Every live answer edits through Discord's global budget (50 requests a second per bot).
    When more answers stream than it can serve, every one of them freezes for seconds at a
    time; so an answer waits to *start* (its first message, and with it the each::sense
    stream) while the live answers' writes (measured over the last few seconds, plus
    `per_stream` for each answer started in the last `WARMUP` seconds) already take `budget`
    writes a second. Answers that stream slowly (a long video job) cost what they use, not a
    slot. Waiting answers start in arrival order."""

    def __init__(
        self,
        *,
        budget: float | None,
        per_stream: float,
        load: Callable[[], float],
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.budget = budget
        self.per_stream = per_stream
        self._load = load
        self._clock = clock
        self._sleep = sleep
        self._started: deque[float] = deque()  # when answers were let in, within WARMUP
        self._queue: deque[asyncio.Future[None]] = deque()  # one per waiting answer

    @property
    def waiting(self) -> int:
        return len(self._queue)

    def _room(self) -> bool:
        assert self.budget is not None
        now = self._clock()
        while self._started and now - self._started[0] >= WARMUP:
            self._started.popleft()
        expected = self._load() + self.per_stream * (len(self._started) + 1)
        return expected <= self.budget or (not self._started and self._load() == 0)

    async def begin(self) -> None:
        """Wait until a new live answer may start."""
        if self.budget is None:
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(turn)
        try:
            while self._queue[0] is not turn or not self._room():
                if self._queue[0] is turn:
                    await self._sleep(ADMIT_POLL)
                else:  # the one ahead wakes us when it is let in
                    await asyncio.shield(turn)
                    turn = asyncio.get_running_loop().create_future()
                    self._queue[0] = turn
        finally:
            self._queue.remove(turn)
            if self._queue and not self._queue[0].done():
                self._queue[0].set_result(None)  # the next one in line checks now
        self._started.append(self._clock())


@dataclass(order=True)
class _Waiter:
    priority: int
    since: float
    ticket: int
    channel: str | None = field(compare=False)  # the window's key: channel (and kind)
    granted: asyncio.Future[None] = field(compare=False)


class ChannelLimiter:
    """At most `rate` slots per `per` seconds in each channel window and `global_rate` per
    `global_per` seconds (and `global_burst` per `global_burst_per`) in all of them together;
    urgent waiters go first, then the oldest; non-urgent ones leave `reserve` slots of each
    channel window free (at most `rate - 1`).

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
        reserve: int = 0,
        low_share: float = 1.0,
        shared: Callable[[float, float], float] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        """`shared(rate, burst)` draws a token of the bot's global budget shared by every
        process (see `bot.shared_budgets`), refilled at this limiter's global rate: 0.0 when
        one was taken, else seconds until one may be."""
        self._shared = shared
        self.rate = rate
        self.reserve = max(0, min(reserve, rate - 1))
        # `start` and `tidy` requests may always take this many of the global window's slots,
        # and more only while live answers leave room: however many wait, they cannot fill
        # the window a live answer is about to need
        self.low_limit = max(1, int(global_rate * low_share))
        self._low_room = low_share < 1.0
        self._low: deque[float] = deque()  # when `start`/`tidy` requests were granted
        self.per = per
        self.global_rate = global_rate
        self.global_per = global_per
        self.global_burst = global_burst
        self.global_burst_per = global_burst_per
        self._clock = clock
        self._sleep = sleep
        self._channels: dict[str, deque[float]] = {}
        self._global: deque[float] = deque()
        self._waiting: list[_Waiter] = []  # kept sorted: (priority, since, ticket)
        self._tickets = itertools.count()
        self._timer: asyncio.Task[None] | None = None
        self._timer_at = 0.0
        self._live: deque[float] = deque()  # when urgent and live requests were granted
        # requests Discord has answered that discord.py still holds (see `until_answered`)
        self.trailing: set[asyncio.Task[Any]] = set()

    def live_rate(self) -> float:
        """Urgent and live requests granted per second, over the last `LIVE_WINDOW` s."""
        _expire(self._live, self._clock(), LIVE_WINDOW)
        return len(self._live) / LIVE_WINDOW

    @property
    def waiting(self) -> int:
        """How many requests wait for a slot (for logs and tests)."""
        return len(self._waiting)

    async def acquire(
        self,
        channel: str | None,
        *,
        urgent: bool = False,
        start: bool = False,
        tidy: bool = False,
        kind: str = "post",
        since: float | None = None,
    ) -> None:
        """Wait for a slot in `channel`'s window of `kind` (None: a global slot only);
        `urgent` (a final edit, the page it posts) goes before every other waiter and may
        use the reserved slots; `start` (what opens a conversation: its root post, its
        thread, its first message) waits behind the live answers already streaming, so a
        crowd of new conversations cannot freeze the running ones; `tidy` (a finished page
        losing its Stop button: nothing a person reads changes) goes after every other.
        Among equals, the earliest `since` (the thread's last write; default: now) first."""
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        window = channel if channel is None or kind == KINDS[0] else f"{channel}/{kind}"
        key = self._clock() if since is None else since
        priority = URGENT if urgent else START if start else TIDY if tidy else NORMAL
        waiter = _Waiter(priority, key, next(self._tickets), window, granted)
        bisect.insort(self._waiting, waiter)
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
        _expire(self._low, now, self.global_per)
        blocked: list[float] = []  # when the full channels of remaining waiters free a slot
        remaining: list[_Waiter] = []
        shared_at = math.inf  # when the replicas' shared global budget has a slot again
        for index, waiter in enumerate(self._waiting):
            if waiter.granted.done():  # cancelled while waiting: it takes no slot
                continue
            if self._global_free_at(now) > now:
                remaining.extend(w for w in self._waiting[index:] if not w.granted.done())
                break
            if waiter.priority > NORMAL and len(self._low) >= self._low_cap():
                # the rest are `start`/`tidy` too (the list is sorted): their share is used
                remaining.extend(w for w in self._waiting[index:] if not w.granted.done())
                oldest = self._low[max(0, len(self._low) - self._low_cap())]
                blocked.append(oldest + self.global_per)
                break
            stamps = self._stamps(waiter.channel, now)
            room = self.rate if waiter.priority == URGENT else self.rate - self.reserve
            if stamps is not None and len(stamps) >= room:
                blocked.append(stamps[len(stamps) - room] + self.per)
                remaining.append(waiter)
                continue
            if (wait := self._shared_wait()) > 0:
                # the other processes of this bot spent the second: everyone waits
                remaining.extend(w for w in self._waiting[index:] if not w.granted.done())
                shared_at = now + wait
                break
            self._global.append(now)
            (self._live if waiter.priority <= NORMAL else self._low).append(now)
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
        elif blocked or shared_at < math.inf:
            self._wake_at(min([*blocked, shared_at]))

    def _shared_wait(self) -> float:
        """Take a token of the replicas' shared global budget (refilled at this window's
        rate): 0.0 when taken or when there is none to share, else the seconds to wait."""
        if self._shared is None:
            return 0.0
        return self._shared(self.global_rate / self.global_per, self.global_burst)

    def _low_cap(self) -> int:
        """How many `start`/`tidy` slots the global window may hold now."""
        if not self._low_room:
            return self.global_rate
        live = math.ceil(len(self._live) / LIVE_WINDOW * self.global_per * LIVE_ROOM)
        room = max(live, math.ceil(self.global_rate * LIVE_FLOOR)) + LOW_MARGIN
        return max(self.low_limit, self.global_rate - room)

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


@contextlib.contextmanager
def opening(since: float) -> Iterator[None]:
    """Requests made in this block open a conversation that came in at `since`: they queue
    by that time, so one conversation's steps (root post, thread) do not each go behind
    every later conversation's first step."""
    token = _SINCE.set(since)
    try:
        yield
    finally:
        _SINCE.reset(token)


def opening_since() -> float | None:
    """The `since` of the conversation being opened in this context, if any."""
    return _SINCE.get()


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
            # thread creation and the like: behind live answers, in conversation order
            await limiter.acquire(None, start=True, since=_SINCE.get())
        return await send(route, **kwargs)

    http.request = request  # type: ignore[method-assign]


# --- returning once Discord answered ------------------------------------------------------

# Set by `until_answered` in the task that makes one request: resolved with the status of
# the first response the request gets.
_ANSWER: ContextVar[asyncio.Future[int] | None] = ContextVar("discord_answer", default=None)


def watch_answers(trace: aiohttp.TraceConfig) -> aiohttp.TraceConfig:
    """Hook `until_answered` into the client's aiohttp trace (discord.py's `http_trace`):
    the callbacks run in the task of the request they trace, so each finds its own waiter."""

    async def on_request_end(
        _session: aiohttp.ClientSession, _ctx: Any, params: aiohttp.TraceRequestEndParams
    ) -> None:
        answer = _ANSWER.get()
        if answer is not None and not answer.done():
            answer.set_result(params.response.status)

    trace.on_request_end.append(on_request_end)
    return trace


async def until_answered(call: Callable[[], Awaitable[Any]], keep: set[asyncio.Task[Any]]) -> None:
    """Make one request (`call`, whose result is not needed) and return as soon as Discord
    answered it with success.

    Why: when a request takes the last slot of its route's bucket, discord.py sleeps until
    the bucket resets *before returning* (in `Ratelimit.__aexit__`, about 5 s for message
    edits), although Discord applied the request long before. A final edit takes exactly that
    slot (the one the limiter keeps for it), and nothing the turn does next should wait 5 s
    for it. The request's task goes on in `keep` until discord.py is done with it; an answer
    that is not a success (a 429 discord.py retries, an error) is awaited to its end, so the
    caller sees what discord.py makes of it."""
    answer: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def request() -> None:
        _ANSWER.set(answer)
        await call()

    task = asyncio.ensure_future(request())
    try:
        await asyncio.wait((task, answer), return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if task.done() or not 200 <= answer.result() < 300:
        await task
        return
    keep.add(task)
    task.add_done_callback(_forget(keep))


def _forget(keep: set[asyncio.Task[Any]]) -> Callable[[asyncio.Task[Any]], None]:
    def done(task: asyncio.Task[Any]) -> None:
        keep.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.debug("a request answered with success failed afterwards: %r", task.exception())

    return done
