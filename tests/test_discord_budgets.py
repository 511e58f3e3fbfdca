"""Discord's budgets as the bot spends them: a slot per channel window kept for the final edit,
posts and edits in windows of their own, the longest-waiting thread first, new conversations
behind running answers, and answers that start only while the global budget keeps them
fresh. The limiter on a hand-driven clock; the surface through the real discord.py against
the fake Discord."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from adapters.discord.client import DiscordBot
from adapters.discord.ratelimit import ChannelLimiter, StreamGate
from adapters.discord.surface import DiscordSurface
from bench.common import bench_settings
from bot.models import Button, ButtonAction, ThreadKey, View
from simulator import Simulator
from tests.discord_bot import running_bot
from tests.fakes.discord import FakeDiscord
from tests.test_discord_ratelimit import Clock, Recorder, limiter, settle

STOP = Button("Stop", ButtonAction.STOP, "t1", style="danger")
REGEN = Button("Regenerate", ButtonAction.REGENERATE, "t1")


# --- the limiter ---------------------------------------------------------------------------


async def test_a_channel_window_keeps_a_slot_for_the_final_edit() -> None:
    clock = Clock()
    rec = Recorder(limiter(clock, global_rate=100, reserve=1), clock)
    for n in range(5):
        rec.start(f"live{n}", "t")
    await settle()
    assert rec.names == ["live0", "live1", "live2", "live3"]  # the fifth slot is kept
    rec.start("final", "t", urgent=True)
    await settle()
    assert rec.names[-1] == "final"  # at once, in the kept slot
    await clock.advance(5.0)
    assert rec.names[-1] == "live4"  # the window moved on


async def test_posts_and_edits_have_windows_of_their_own() -> None:
    clock = Clock()
    lim = limiter(clock, global_rate=100)
    granted: list[str] = []

    async def take(name: str, kind: str) -> None:
        await lim.acquire("t", kind=kind)
        granted.append(name)

    for n in range(5):
        await take(f"edit{n}", "edit")
    waiting = asyncio.create_task(take("edit5", "edit"))
    await take("page", "post")  # a full edit window does not hold up a new page
    await settle()
    assert granted == ["edit0", "edit1", "edit2", "edit3", "edit4", "page"]
    await clock.advance(5.0)
    await waiting
    assert granted[-1] == "edit5"


async def test_the_thread_that_waited_longest_goes_first() -> None:
    clock = Clock()
    lim = limiter(clock, global_rate=1)
    order: list[str] = []

    async def take(name: str, since: float) -> None:
        await lim.acquire(name, since=since)
        order.append(name)

    await take("first", clock.now)
    tasks = [
        asyncio.create_task(take("fresh", clock.now - 0.1)),  # written just now
        asyncio.create_task(take("stale", clock.now - 1.2)),  # not written for a while
    ]
    await settle()
    for _ in range(2):
        await clock.advance(1.0)
    await asyncio.gather(*tasks)
    assert order == ["first", "stale", "fresh"]


async def test_new_conversations_wait_behind_running_answers_and_keep_to_a_share() -> None:
    clock = Clock()
    lim = limiter(clock, global_rate=10, low_share=0.3)
    rec = Recorder(lim, clock)
    for n in range(10):
        rec.start(f"earlier{n}", f"e{n}")  # the global window is full
    await settle()
    for n in range(5):
        rec.tasks.append(asyncio.create_task(_start(lim, rec, f"opening{n}", f"c{n}")))
    await settle()
    for n in range(6):
        rec.start(f"live{n}", f"t{n}")
    await settle()
    assert len(rec.granted) == 10
    await clock.advance(1.0)
    # live edits first though they came later; the openings take what their share leaves
    assert rec.names[10:] == [*(f"live{n}" for n in range(6)), "opening0", "opening1", "opening2"]


async def _start(lim: ChannelLimiter, rec: Recorder, name: str, channel: str) -> None:
    await lim.acquire(channel, start=True)
    rec.granted.append((name, rec.clock.now))


async def test_an_answer_starts_only_while_the_budget_keeps_the_running_ones_fresh() -> None:
    clock = Clock()
    load = [9.0]  # live writes a second right now
    gate = StreamGate(
        budget=10.0, per_stream=1.0, load=lambda: load[0], clock=clock, sleep=clock.sleep
    )
    started: list[str] = []

    async def begin(name: str) -> None:
        await gate.begin()
        started.append(name)

    await begin("a")  # 9 + 1 <= 10
    tasks = [asyncio.create_task(begin(name)) for name in ("b", "c")]
    await settle()
    assert started == ["a"]  # "a" counts at full rate while it warms up
    load[0] = 5.0
    await clock.advance(2.0)  # "a" is measured now; room for three more
    await asyncio.gather(*tasks)
    assert started == ["a", "b", "c"] and gate.waiting == 0


# --- the surface, through discord.py ------------------------------------------------------


@contextlib.asynccontextmanager
async def discord_bot() -> AsyncIterator[tuple[FakeDiscord, DiscordBot]]:
    async with Simulator(speed=1000) as sim, FakeDiscord() as fake:
        async with running_bot(fake, sim, bench_settings()) as (_, bot):
            yield fake, bot


def surface_in(fake: FakeDiscord, bot: DiscordBot) -> DiscordSurface:
    """A surface writing into the fake's text channel (a thread's REST paths are the same)."""
    key = ThreadKey("discord", fake.guild_id, fake.channel_id, fake.channel_id)
    return bot.surface(key)


async def test_a_final_edit_never_waits_for_the_channel_window() -> None:
    async with discord_bot() as (fake, bot):
        surface = surface_in(fake, bot)
        answer = await surface.post(View(status="💭 Thinking…", buttons=(STOP,)))
        other = await surface.post(View(text="an earlier page"))
        for n in range(4):  # live edits fill the channel's edit window, but for one slot
            await surface.edit(answer, View(text="x" * (n + 1), status="✍️", buttons=(STOP,)))
        waiting = asyncio.ensure_future(surface.edit(other, View(text="an earlier page!")))
        await asyncio.sleep(0.2)
        assert not waiting.done()  # a fifth live edit waits for the window
        final = View(text="xxxx done", status="✅ Done", buttons=(REGEN,))
        await asyncio.wait_for(surface.edit(answer, final, final=True), 2.0)  # the kept slot
        assert not waiting.done()
        assert fake.messages[answer]["content"].startswith("xxxx done")
        edits = [c for c in fake.calls if c.method == "PATCH"]
        assert len(edits) == 5 and fake.rate_limited == 0
        await asyncio.wait_for(waiting, 10)  # and the waiting one goes once the window moves


async def test_an_edit_answered_429_returns_only_once_discord_py_has_retried_it() -> None:
    """An edit returns early only on a success: a 429 is retried by discord.py, and the
    edit returns once the retry landed."""
    async with discord_bot() as (fake, bot):
        surface = surface_in(fake, bot)
        answer = await surface.post(View(status="💭 Thinking…", buttons=(STOP,)))
        fake.force_429(1)
        final = View(text="done", status="✅ Done", buttons=(REGEN,))
        await asyncio.wait_for(surface.edit(answer, final, final=True), 10)
        assert fake.rate_limited == 1
        assert fake.messages[answer]["content"].startswith("done")
        assert not bot.limiter.trailing  # nothing was left running


async def test_a_new_answer_waits_for_room_in_the_global_budget() -> None:
    async with discord_bot() as (fake, bot):
        load = [100.0]
        bot.streams = StreamGate(budget=10.0, per_stream=1.0, load=lambda: load[0])
        surface = surface_in(fake, bot)
        starting = asyncio.ensure_future(surface.post(View(status="💭", buttons=(STOP,))))
        await asyncio.sleep(0.5)
        assert not starting.done() and bot.streams.waiting == 1
        page = await surface.post(View(text="not an answer's start: no wait"))
        assert page in fake.messages
        load[0] = 0.0
        answer = await asyncio.wait_for(starting, 5)
        assert fake.messages[answer]["channel_id"] == fake.channel_id
