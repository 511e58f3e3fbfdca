"""`ChannelLimiter` on a hand-driven clock: the global budget shared by every channel, the
per-channel windows under it, fairness, final edits first, and coalescing in the surface's
sense (a waiting edit sends the newest text). No real time passes in these tests."""

from __future__ import annotations

import asyncio

from adapters.discord.ratelimit import ChannelLimiter, is_exempt


class Clock:
    """A monotonic clock that only moves when told; `sleep` waits on it."""

    def __init__(self) -> None:
        self.now = 100.0
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self.now + delay, future))
        await future

    async def advance(self, seconds: float) -> None:
        self.now += seconds
        for when, future in list(self._sleepers):
            if when <= self.now + 1e-9:
                self._sleepers.remove((when, future))
                if not future.done():
                    future.set_result(None)
        await settle()


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


def limiter(clock: Clock, **kwargs: float) -> ChannelLimiter:
    options: dict = {"rate": 5, "per": 5.0, "global_rate": 4, "global_per": 1.0}
    options.update(global_burst=100, global_burst_per=0.1)  # no burst cap unless asked
    options.update(kwargs)
    return ChannelLimiter(clock=clock, sleep=clock.sleep, **options)


class Recorder:
    def __init__(self, lim: ChannelLimiter, clock: Clock) -> None:
        self.lim, self.clock = lim, clock
        self.granted: list[tuple[str, float]] = []
        self.tasks: list[asyncio.Task[None]] = []

    def start(self, name: str, channel: str | None, *, urgent: bool = False) -> None:
        async def take() -> None:
            await self.lim.acquire(channel, urgent=urgent)
            self.granted.append((name, self.clock.now))

        self.tasks.append(asyncio.create_task(take()))

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.granted]


async def test_global_budget_is_shared_by_every_channel() -> None:
    clock = Clock()
    rec = Recorder(limiter(clock), clock)
    for n in range(10):
        rec.start(f"r{n}", f"c{n}")  # ten channels, each with room of its own
    await settle()
    assert rec.names == ["r0", "r1", "r2", "r3"], "4 per second for the whole bot"
    await clock.advance(0.5)
    assert len(rec.granted) == 4, "the window slides: nothing frees before 1 s"
    await clock.advance(0.5)
    assert rec.names[4:] == ["r4", "r5", "r6", "r7"]
    await clock.advance(1.0)
    assert rec.names[8:] == ["r8", "r9"]
    times = [at for _, at in rec.granted]
    assert all(b - a >= 1.0 for a, b in zip(times, times[4:], strict=False))
    assert rec.lim.waiting == 0


async def test_global_only_requests_share_the_budget() -> None:
    clock = Clock()
    lim = limiter(clock)
    rec = Recorder(lim, clock)
    for n in range(3):
        rec.start(f"post{n}", "c")
    rec.start("thread", None)  # e.g. a thread creation: global slot only
    rec.start("join", None)
    await settle()
    assert rec.names == ["post0", "post1", "post2", "thread"]
    await clock.advance(1.0)
    assert rec.names[-1] == "join"


async def test_channel_window_still_applies_under_the_global_one() -> None:
    clock = Clock()
    rec = Recorder(limiter(clock, rate=2, per=5.0, global_rate=10), clock)
    for n in range(3):
        rec.start(f"a{n}", "a")
    rec.start("b0", "b")
    await settle()
    # a2 waits for its channel, but does not hold up b0 behind it
    assert rec.names == ["a0", "a1", "b0"]
    await clock.advance(4.9)
    assert rec.names == ["a0", "a1", "b0"]
    await clock.advance(0.1)
    assert rec.names[-1] == "a2"


async def test_fifo_between_channels_and_final_edits_first() -> None:
    clock = Clock()
    rec = Recorder(limiter(clock, global_rate=1), clock)
    rec.start("first", "x")
    await settle()
    for name, channel in [("x1", "x"), ("y1", "y"), ("z1", "z"), ("y2", "y")]:
        rec.start(name, channel)
        await settle()
    rec.start("final", "z", urgent=True)
    await settle()
    for _ in range(5):
        await clock.advance(1.0)
    assert rec.names == ["first", "final", "x1", "y1", "z1", "y2"]


async def test_a_cancelled_waiter_takes_no_slot() -> None:
    clock = Clock()
    lim = limiter(clock, global_rate=1)
    rec = Recorder(lim, clock)
    rec.start("now", "a")
    rec.start("gone", "b")
    rec.start("next", "c")
    await settle()
    rec.tasks[1].cancel()
    await settle()
    assert lim.waiting == 1
    await clock.advance(1.0)
    assert rec.names == ["now", "next"]


async def test_coalescing_a_waiting_edit_sends_the_newest_text() -> None:
    """The surface's pattern: one waiter per message; newer edits replace its text. Under
    global contention a message updates less often, never with stale text."""
    clock = Clock()
    lim = limiter(clock, global_rate=2)
    sent: list[str] = []
    pending: dict[str, str] = {}

    async def edit(message: str, text: str) -> None:
        if message in pending:
            pending[message] = text
            return
        pending[message] = text
        await lim.acquire(f"thread-{message}")
        sent.append(pending.pop(message))

    await asyncio.gather(edit("m1", "a"), edit("m2", "A"))  # the budget's two slots
    tasks = [asyncio.create_task(edit("m1", "ab")), asyncio.create_task(edit("m2", "AB"))]
    await settle()
    for text in ("abc", "abcd"):
        await edit("m1", text)
    await edit("m2", "ABC")
    await clock.advance(1.0)
    await asyncio.gather(*tasks)
    assert sent == ["a", "A", "abcd", "ABC"]


async def test_bursts_are_spread_through_the_window() -> None:
    clock = Clock()
    lim = limiter(clock, global_rate=6, global_per=1.0, global_burst=2, global_burst_per=0.2)
    rec = Recorder(lim, clock)
    for n in range(8):
        rec.start(f"r{n}", f"c{n}")
    await settle()
    assert rec.names == ["r0", "r1"], "two at once, not six"
    for _ in range(5):
        await clock.advance(0.2)
    times = [round(at - 100.0, 1) for _, at in rec.granted]
    assert times == [0.0, 0.0, 0.2, 0.2, 0.4, 0.4, 1.0, 1.0], "and still 6 per second"


async def test_defaults_stay_under_discord_global_limit() -> None:
    lim = ChannelLimiter()
    assert lim.global_rate <= 45 and lim.global_per >= 1.0
    assert lim.global_burst * lim.global_per / lim.global_burst_per >= lim.global_rate
    assert lim.rate == 5 and lim.per > 5.0
    assert is_exempt("/interactions/1/tok/callback") and is_exempt("/webhooks/1/tok/messages/2")
    assert not is_exempt("/channels/1/messages") and not is_exempt("/channels/1/webhooks")
