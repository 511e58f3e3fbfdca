"""Scenario 2 on Discord: politeness and freshness of the real discord.py adapter.

Setup: everything runs in this process and one event loop: the fake Discord
(`tests.fakes.discord.FakeDiscord`, REST v10 and the Gateway on 127.0.0.1), the simulator as
each::sense, a core built as production builds it, and the real `DiscordBot` (discord.py
logged in to the fake, connected to its Gateway). Turns start the way Discord starts them: a
`/sense` INTERACTION_CREATE sent down the Gateway; the bot defers, posts a root message, opens
a thread from it and answers there. The figures therefore include the fake's and the
simulator's own work: a pessimistic setup on a small machine.

What the fake enforces: message edits (channel messages and interaction webhook messages) are
limited per channel to 5 per 5 s, sliding window, answered with Discord's 429 (body
`{message, retry_after, global}`, `X-RateLimit-*` and `Via` headers). A thread is its own
channel, so the limit is per thread. It also enforces Discord's global limit of 50 requests
per bot in any 1 s (sliding), interaction callbacks and interaction webhooks exempt, with a
global 429 (`"global": true`, `X-RateLimit-Global`); `concurrent_global_429` counts those
(`concurrent_429` counts every 429). What it does NOT model: the per-channel limit on
message *posts* (our limiter counts posts and edits in one window anyway) and limits on
thread creation. `concurrent_peak_rest_per_s` is the most non-exempt REST calls the fake
received in any 1 s window, checked against that 50/s.

- One long turn: `events:2000` paced a few ms apart (several seconds of streaming). We count
  the REST calls the answer cost (posts and edits in its thread, 429s included) and the 429s
  the fake answered, against a naive bot on the same fake and the same stream: post once,
  then edit the message on every event with aiohttp and the `Bot <token>` header discord.py
  sends, no limiter, no retries (a 429 is counted and the loop goes on).
- Freshness: for the same turn, the longest time the thread went without a write (edit or a
  new page's post, as the fake received them) while the stream was running; and how long
  after the stream's last byte the answer's last write (its footer) arrived.
- 200 concurrent threads: 200 `/sense` interactions at once, each streaming 200 paced
  events, spread over text channels of 5 threads each (a root post per thread shares its
  parent's window: 200 threads opened from one channel would queue for minutes).

Run: `python -m bench.bench_discord [--quick]`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import discord
import discord.gateway
import discord.http
from aiohttp import web

from adapters.discord.client import DiscordBot
from adapters.discord.surface import MIN_EDIT_INTERVAL
from bench.common import (
    Result,
    TimedSimulator,
    bench_settings,
    marker_prompt,
    median,
    ms,
    percentile,
    result,
)
from bot.app import Core, new_http_session
from bot.eachsense import EachSenseClient
from bot.models import TextResponse
from simulator import _Turn
from tests.discord_bot import running_bot
from tests.fakes.discord import Call, FakeDiscord, FakeInteraction

POLITE_EVENTS = 2000
POLITE_PACE = 0.0025  # 2,000 events stream for 5 s or more: many edit windows
CONCURRENT_THREADS = 200
CONCURRENT_EVENTS = 200
CONCURRENT_PACE = 0.015  # 200 events over 3 s or more per thread
THREADS_PER_CHANNEL = 5
GLOBAL_LIMIT_PER_S = 50  # Discord's global request limit per bot (the fake enforces it)
DONE = "✅ Done"
FAILED = "⚠️"
POLL = 0.05


class StreamClock(TimedSimulator):
    """The timed simulator, plus when each stream began (`started`, by session id, on the
    monotonic clock the fake records calls with): freshness is measured from there."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.started: dict[str, float] = {}

    async def _stream(self, request: web.Request, turn: _Turn) -> web.StreamResponse:
        self.started[turn.session_id] = time.monotonic()
        return await super()._stream(request, turn)

    def session_of(self, marker: str) -> str:
        for request in self.requests:
            if marker in request.prompt and request.session_id:
                return request.session_id
        raise RuntimeError(f"no stream was requested for {marker}")


@dataclass
class DiscordRig:
    fake: FakeDiscord
    sim: StreamClock
    core: Core
    bot: DiscordBot
    channels: list[str] = field(default_factory=list)  # text channels /sense may run in


def add_text_channel(fake: FakeDiscord, name: str) -> str:
    """Another text channel in the fake's guild (before the bot connects, so it arrives in
    GUILD_CREATE like any channel of a real server)."""
    channel_id = fake.new_id()
    fake.channels[channel_id] = {
        **fake.channels[fake.channel_id],
        "id": channel_id,
        "name": name,
        "position": len(fake.channels),
        "last_message_id": None,
    }
    return channel_id


@contextlib.asynccontextmanager
async def open_discord_rig(*, pace: float, channels: int = 1) -> AsyncIterator[DiscordRig]:
    """Fake Discord, simulator, core and the real DiscordBot, connected and READY."""
    async with contextlib.AsyncExitStack() as stack:
        fake = await stack.enter_async_context(FakeDiscord())
        names = [fake.channel_id] + [
            add_text_channel(fake, f"bench-{i}") for i in range(1, channels)
        ]
        sim = StreamClock(pace=pace, speed=1000.0)
        await sim.start()
        stack.push_async_callback(sim.stop)
        core, bot = await stack.enter_async_context(running_bot(fake, sim, bench_settings()))
        yield DiscordRig(fake, sim, core, bot, names)


async def run_senses(rig: DiscordRig, prompts: Sequence[tuple[str, str]]) -> list[FakeInteraction]:
    """Send every `/sense` (prompt, channel) down the Gateway at once."""
    return list(
        await asyncio.gather(
            *(rig.fake.slash("sense", {"prompt": p}, channel_id=c) for p, c in prompts)
        )
    )


@dataclass
class Outcome:
    threads: dict[str, str]  # interaction token -> thread id
    done: set[str]  # threads whose answer shows "Done"
    failed: set[str]  # threads whose answer shows an error


def _outcome(fake: FakeDiscord, inters: Sequence[FakeInteraction]) -> Outcome:
    """Read the fake's state once: which interactions got a thread, which threads ended."""
    threads: dict[str, str] = {}
    for inter in inters:
        original = fake.messages.get(inter.original_id or "")
        content = str(original["content"]) if original else ""
        if "<#" in content:
            threads[inter.token] = content.split("<#")[1].split(">")[0]
    wanted = set(threads.values())
    done: set[str] = set()
    failed: set[str] = set()
    for msg in fake.messages.values():
        channel = msg["channel_id"]
        if channel not in wanted or msg["author"]["id"] != fake.bot_id:
            continue
        content = str(msg["content"])
        if DONE in content:
            done.add(channel)
        elif FAILED in content:
            failed.add(channel)
    return Outcome(threads, done, failed)


async def wait_answers(
    rig: DiscordRig, inters: Sequence[FakeInteraction], *, within: float
) -> Outcome:
    """Poll the fake until every interaction's thread shows a final status (or time runs
    out): the fake's state is what a person would see."""
    deadline = time.monotonic() + within
    while True:
        outcome = _outcome(rig.fake, inters)
        ended = len(outcome.done | outcome.failed)
        if ended == len(inters) or time.monotonic() > deadline:
            return outcome
        await asyncio.sleep(POLL)


def thread_writes(fake: FakeDiscord, thread_id: str) -> list[Call]:
    """Every post and edit the bot sent in a thread (429'd attempts included), in order."""
    prefix = f"/channels/{thread_id}/messages"
    return [
        c
        for c in fake.calls
        if c.method in ("POST", "PATCH") and c.path.startswith(prefix) and "/threads" not in c.path
    ]


def live_ages(writes: Sequence[Call], *, start: float, end: float) -> list[float]:
    """How long the thread went without a successful write, for each stretch of time
    between writes, clipped to the stream's lifetime.

    Clipping is why the first post → first edit gap is not counted whole: before the stream's
    first event there was nothing newer to show (that wait is the agent's time to first event,
    not our edit cadence), and after its last the next write is the final edit, which the
    overhead scenario measures."""
    times = sorted(c.at for c in writes if c.status == 200)
    ages: list[float] = []
    for before, after in zip([start, *times], [*times, end], strict=True):
        lo, hi = max(before, start), min(after, end)
        if hi > lo:
            ages.append(hi - lo)
    return ages


def peak_per_second(calls: Sequence[Call]) -> int:
    """The most calls in any 1 s window, leaving out the interaction endpoints that
    Discord exempts from the global limit (callbacks and interaction webhooks)."""
    times = sorted(c.at for c in calls if not c.path.startswith(("/interactions/", "/webhooks/")))
    peak = lo = 0
    for hi, at in enumerate(times):
        while at - times[lo] >= 1.0:
            lo += 1
        peak = max(peak, hi - lo + 1)
    return peak


# --- the naive baseline --------------------------------------------------------------------


def _discord_py_agent() -> str:
    """The User-Agent discord.py sends, so the baseline looks like a discord.py bot."""
    py = sys.version_info
    return (
        f"DiscordBot (https://github.com/Rapptz/discord.py {discord.__version__}) "
        f"Python/{py[0]}.{py[1]} aiohttp/{aiohttp.__version__}"
    )


async def naive_turn(
    sim_url: str, fake: FakeDiscord, channel_id: str, prompt: str
) -> tuple[int, int]:
    """The common approach: post a message, then edit it with the text so far on every
    event (clipped to Discord's 2,000 characters; no limiter, no retries: a 429 is counted
    and the loop goes on). Returns (calls, 429s)."""
    headers = {"Authorization": f"Bot {fake.token}", "User-Agent": _discord_py_agent()}
    url = f"{fake.api_url}/channels/{channel_id}/messages"
    calls = limited = 0
    async with new_http_session() as session, aiohttp.ClientSession(headers=headers) as rest:
        agent = EachSenseClient(session, api_key="bench", base_url=sim_url)
        async with rest.post(url, json={"content": "…"}) as response:
            message_id = (await response.json())["id"]
        calls += 1
        text = ""
        async for event in agent.stream(prompt, session_id="naive"):
            if not isinstance(event, TextResponse):
                continue
            text += event.content
            async with rest.patch(f"{url}/{message_id}", json={"content": text[-2000:]}) as r:
                await r.read()
                calls += 1
                limited += r.status == 429
    return calls, limited


# --- the scenarios -------------------------------------------------------------------------


async def single_turn(events: int, *, pace: float = POLITE_PACE) -> dict[str, Any]:
    async with open_discord_rig(pace=pace) as rig:
        fake = rig.fake
        inters = await run_senses(rig, [(marker_prompt(events, 0), fake.channel_id)])
        outcome = await wait_answers(rig, inters, within=60 + events * pace * 4)
        thread = outcome.threads.get(inters[0].token)
        if thread is None or thread not in outcome.done:
            raise RuntimeError("the long turn did not finish")
        last_word = f"t{events - 1} "
        if not any(last_word in str(m["content"]) for m in fake.channel_messages(thread)):
            raise RuntimeError("the long turn's answer is incomplete")
        ours_429 = fake.rate_limited  # everything so far was the bot's
        session = rig.sim.session_of("#0#")
        start, end = rig.sim.started[session], rig.sim.ended[session]
        writes = thread_writes(fake, thread)
        ages = live_ages(writes, start=start, end=end)
        final = max(c.at for c in writes if c.status == 200)
        naive_channel = add_text_channel(fake, "naive")
        naive_calls, naive_429 = await naive_turn(
            rig.sim.base_url, fake, naive_channel, marker_prompt(events, 1)
        )
    return {
        "events": events,
        "stream_seconds": round(end - start, 2),
        "ours_calls_per_turn": len(writes),
        "naive_calls_per_turn": naive_calls,
        "ours_over_naive_calls": round(len(writes) / naive_calls, 4),
        "ours_429": ours_429,
        "naive_429": naive_429,
        "discord_max_live_age_ms": ms(max(ages, default=0.0)),
        "discord_p99_live_age_ms": ms(percentile(ages, 99)),
        "discord_median_live_age_ms": ms(median(ages)),
        "final_edit_after_stream_ms": ms(final - end),
    }


async def concurrent(
    threads: int, *, events: int = CONCURRENT_EVENTS, pace: float = CONCURRENT_PACE
) -> dict[str, Any]:
    channels = math.ceil(threads / THREADS_PER_CHANNEL)
    async with open_discord_rig(pace=pace, channels=channels) as rig:
        prompts = [
            (marker_prompt(events, i), rig.channels[i // THREADS_PER_CHANNEL])
            for i in range(threads)
        ]
        started = time.monotonic()
        inters = await run_senses(rig, prompts)
        outcome = await wait_answers(rig, inters, within=60 + threads * 0.5)
        finals = [
            c.at
            for c in rig.fake.calls
            if c.method == "PATCH"
            and c.status == 200
            and DONE in str((c.json or {}).get("content"))
        ]
        elapsed = max(finals, default=time.monotonic()) - started
        late = sum(
            1
            for i in inters
            if i.callback_at is None or i.callback_at - i.injected_at > rig.fake.ack_deadline
        )
        return {
            "concurrent_threads": threads,
            "concurrent_channels": channels,
            "finished": len(outcome.done),
            "failed": len(outcome.failed),
            "acks_late": late,
            "concurrent_429": rig.fake.rate_limited,
            "concurrent_global_429": rig.fake.global_rate_limited,
            "concurrent_seconds": round(elapsed, 1),
            "concurrent_peak_rest_per_s": peak_per_second(rig.fake.calls),
        }


async def politeness(
    events: int = POLITE_EVENTS,
    threads: int = CONCURRENT_THREADS,
    *,
    concurrent_events: int = CONCURRENT_EVENTS,
) -> Result:
    figures = await single_turn(events)
    figures.update(await concurrent(threads, events=concurrent_events))
    limit = round(MIN_EDIT_INTERVAL * 1000 + 50)
    return result(
        "politeness_discord",
        figures,
        {
            "ours_over_naive_calls": "< 0.01",
            "ours_429": "== 0",
            "discord_max_live_age_ms": f"<= {limit}",
            "finished": f"== {threads}",
            "concurrent_429": "== 0",
            "concurrent_global_429": "== 0",
            "concurrent_peak_rest_per_s": f"<= {GLOBAL_LIMIT_PER_S}",
        },
    )


def run(quick: bool = False) -> list[Result]:
    if quick:
        return [asyncio.run(politeness(events=300, threads=10, concurrent_events=60))]
    return [asyncio.run(politeness())]


if __name__ == "__main__":
    for item in run(quick="--quick" in sys.argv):
        print(item)
