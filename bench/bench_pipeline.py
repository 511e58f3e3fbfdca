"""The whole Slack pipeline under load: simulator → core → slack-bolt adapter → fake Slack.

Turns start the way Slack starts them (a signed `/sense` POST to the bot's HTTP server) and
end when the fake Slack receives the edit carrying the footer. Everything shares one event
loop unless said otherwise, so the figures include the fakes' own work: a pessimistic setup.

- `overhead`: from the simulator writing a stream's last byte to the fake receiving that
  turn's final edit, with 1, 100 and 1,000 turns in flight. Slack's limits are switched off
  in the fake and in the adapter here (they would make turns queue for budget, which is
  `politeness`'s subject); an event-loop lag probe says how busy the loop was.
- `politeness`: Slack's published limits on (Tier 3 `chat.update` per workspace, ~1 post a
  second per channel). One 2,000-event turn against a naive bot that edits once per event
  (same stream, same fake, same run); the live message's age while events keep coming; and
  200 concurrent threads spread over 40 workspaces (Tier 3 is per workspace, so 200 threads
  in one would need minutes just for their final edits) with no 429 allowed.
- `throughput`: process CPU per event and turns per second, with the simulator in a child
  process so its encoding work is not counted as ours.

Run: `python -m bench.bench_pipeline [--quick]`.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.surface import MIN_EDIT_INTERVAL
from bench.common import (
    Result,
    SlackPipeline,
    Workspace,
    cpu_seconds,
    edit_gaps,
    external_simulator,
    marker_prompt,
    median,
    ms,
    open_slack_pipeline,
    percentile,
    result,
)
from tests.fakes.slack import FakeSlack, slack_like_limits

OVERHEAD_SIZES = (1, 100, 1000)
OVERHEAD_EVENTS = 20
OVERHEAD_PACE = 0.05  # 20 events over ~1 s: the turns really are in flight together
POLITE_EVENTS = 2000
POLITE_PACE = 0.002  # a 2,000-event turn streams for several seconds
CONCURRENT_THREADS = 200
THREADS_PER_WORKSPACE = 5
CONCURRENT_EVENTS = 200
CONCURRENT_PACE = 0.03
CPU_TURNS = 20
CPU_EVENTS = 5000
RATE_TURNS = 400


@contextlib.asynccontextmanager
async def loop_lag(period: float = 0.005) -> AsyncIterator[list[float]]:
    """Sample how late the event loop wakes a `period` sleep: the queueing every callback
    in the process sees at that moment."""
    samples: list[float] = []

    async def probe() -> None:
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(period)
            samples.append(loop.time() - start - period)

    task = asyncio.create_task(probe())
    try:
        yield samples
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _start_turns(ws: Workspace, prompts: list[tuple[str, str]]) -> None:
    """Send every `/sense` at once; each is (prompt, channel), one person per channel."""
    statuses = await asyncio.gather(*(ws.sense(p, channel=c, user=f"U{c}") for p, c in prompts))
    if any(s != 200 for s in statuses):
        raise RuntimeError(f"slash commands answered {set(statuses)}")


async def _overhead_at(size: int) -> dict[str, Any]:
    async with open_slack_pipeline(pace=OVERHEAD_PACE) as pipe:
        ws = pipe.workspaces[0]
        prompts = [(marker_prompt(OVERHEAD_EVENTS, i), f"C{i}") for i in range(size)]
        async with loop_lag() as lag:
            await _start_turns(ws, prompts)
            await ws.bot.wait_idle()
        assert pipe.sim is not None
        delays: list[float] = []
        for i in range(size):
            session = pipe.session_of(f"#{i}#")
            final = ws.final_update(f"C{i}")
            if session is None or final is None or session not in pipe.sim.ended:
                raise RuntimeError(f"turn {i} did not finish")
            delays.append(final.at - pipe.sim.ended[session])
    return {
        f"p50_ms_at_{size}": ms(median(delays)),
        f"p99_ms_at_{size}": ms(percentile(delays, 99)),
        f"loop_lag_p99_ms_at_{size}": ms(percentile(lag, 99)),
    }


async def overhead(sizes: tuple[int, ...] = OVERHEAD_SIZES) -> Result:
    figures: dict[str, Any] = {"events_per_turn": OVERHEAD_EVENTS}
    for size in sizes:
        figures.update(await _overhead_at(size))
    top = max(sizes)
    return result("overhead_last_event_to_final_edit", figures, {f"p99_ms_at_{top}": "< 20"})


# --- politeness and freshness -------------------------------------------------------------


def _answer_calls(ws: Workspace, channel: str) -> tuple[int, list[Any]]:
    """Platform calls a turn made in `channel` (root post excluded), and the answer's
    writes (its post, then its edits) in time order."""
    posts = [c for c in ws.slack.calls_to("chat.postMessage") if c.params.get("channel") == channel]
    replies = [c for c in posts if c.params.get("thread_ts")]
    updates = [c for c in ws.slack.calls_to("chat.update") if c.params.get("channel") == channel]
    writes = sorted(replies[:1] + [c for c in updates if c.status == 200], key=lambda c: c.at)
    return len(replies) + len(updates), writes


async def naive_turn(sim_url: str, slack: FakeSlack, prompt: str) -> tuple[int, int]:
    """The common approach: post a message, then edit it with the text so far on every
    event (no retries: a 429 is counted and the loop goes on). Returns (calls, 429s)."""
    from bot.eachsense import EachSenseClient
    from bot.models import TextResponse
    from bot.runtime import new_http_session

    client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
    calls = limited = 0
    async with new_http_session() as session:
        agent = EachSenseClient(session, api_key="bench", base_url=sim_url)
        posted = await client.chat_postMessage(channel="CNAIVE", thread_ts="1.0", text="…")
        calls += 1
        text = ""
        async for event in agent.stream(prompt, session_id="naive"):
            if not isinstance(event, TextResponse):
                continue
            text += event.content
            calls += 1
            try:
                await client.chat_update(channel="CNAIVE", ts=posted["ts"], text=text)
            except SlackApiError as err:
                limited += err.response.status_code == 429
    return calls, limited


async def _single_turn(pipe: SlackPipeline, events: int) -> dict[str, Any]:
    ws = pipe.workspaces[0]
    await _start_turns(ws, [(marker_prompt(events, 0), "CPOLITE")])
    await ws.bot.wait_idle()
    assert pipe.sim is not None
    session = pipe.session_of("#0#")
    assert session is not None
    calls, writes = _answer_calls(ws, "CPOLITE")
    gaps = edit_gaps(writes, until=pipe.sim.ended[session])
    naive = FakeSlack(**_real_limits())
    async with naive:
        naive_calls, naive_429 = await naive_turn(
            pipe.sim.base_url, naive, marker_prompt(events, 1)
        )
    return {
        "events": events,
        "stream_seconds": round(pipe.sim.ended[session] - writes[0].at, 2),
        "ours_calls_per_turn": calls,
        "naive_calls_per_turn": naive_calls,
        "ours_over_naive_calls": round(calls / naive_calls, 4),
        "ours_429": len(ws.slack.ratelimited),
        "naive_429": naive_429,
        "slack_max_live_age_ms": ms(max(gaps, default=0.0)),
    }


def _real_limits() -> dict[str, Any]:
    method_limits, post_limit = slack_like_limits()
    return {"method_limits": method_limits, "channel_post_limit": post_limit}


async def _concurrent(threads: int) -> dict[str, Any]:
    workspaces = max(1, threads // THREADS_PER_WORKSPACE)
    async with open_slack_pipeline(
        workspaces=workspaces, real_limits=True, pace=CONCURRENT_PACE
    ) as pipe:
        per = threads // workspaces
        started = time.monotonic()
        await asyncio.gather(
            *(
                _start_turns(
                    ws,  # channel names differ between workspaces: thread keys must not clash
                    [
                        (marker_prompt(CONCURRENT_EVENTS, w * per + i), f"C{w}x{i}")
                        for i in range(per)
                    ],
                )
                for w, ws in enumerate(pipe.workspaces)
            )
        )
        await asyncio.gather(*(ws.bot.wait_idle() for ws in pipe.workspaces))
        elapsed = time.monotonic() - started
        finished = sum(
            ws.final_update(f"C{w}x{i}") is not None
            for w, ws in enumerate(pipe.workspaces)
            for i in range(per)
        )
        limited = sum(len(ws.slack.ratelimited) for ws in pipe.workspaces)
    return {
        "concurrent_threads": threads,
        "workspaces": workspaces,
        "finished": finished,
        "concurrent_429": limited,
        "concurrent_seconds": round(elapsed, 1),
    }


async def politeness(events: int = POLITE_EVENTS, threads: int = CONCURRENT_THREADS) -> Result:
    async with open_slack_pipeline(real_limits=True, pace=POLITE_PACE) as pipe:
        figures = await _single_turn(pipe, events)
    figures.update(await _concurrent(threads))
    limit = round(MIN_EDIT_INTERVAL * 1000 + 50)
    return result(
        "politeness_slack",
        figures,
        {
            "ours_over_naive_calls": "< 0.01",
            "ours_429": "== 0",
            "concurrent_429": "== 0",
            "slack_max_live_age_ms": f"<= {limit}",
        },
    )


# --- throughput ----------------------------------------------------------------------------


async def throughput(turns: int = CPU_TURNS, events: int = CPU_EVENTS) -> Result:
    """CPU per event for `turns` long turns at once; turns/s for many short ones."""
    async with external_simulator() as sim, open_slack_pipeline(external=sim) as pipe:
        ws = pipe.workspaces[0]
        await _start_turns(ws, [(marker_prompt(10, -1), "CWARM")])  # imports, pools, caches
        await ws.bot.wait_idle()
        cpu0, wall0 = cpu_seconds(), time.perf_counter()
        await _start_turns(ws, [(marker_prompt(events, i), f"C{i}") for i in range(turns)])
        await ws.bot.wait_idle()
        cpu, wall = cpu_seconds() - cpu0, time.perf_counter() - wall0
        total = turns * events
        rate_turns = max(RATE_TURNS // 10, turns * 20)
        done = await _turn_rate(ws, rate_turns)
    return result(
        "throughput",
        {
            "events": total,
            "cpu_us_per_event": round(cpu / total * 1e6, 1),
            "events_per_s": round(total / wall),
            "turns_per_s": round(done, 1),
        },
        {"cpu_us_per_event": "< 100"},
    )


async def _turn_rate(ws: Workspace, turns: int) -> float:
    """Short turns (20 events), all sent at once; completed turns per second."""
    prompts = [(marker_prompt(20, 10_000 + i), f"R{i}") for i in range(turns)]
    started = time.perf_counter()
    await _start_turns(ws, prompts)
    await ws.bot.wait_idle()
    return turns / (time.perf_counter() - started)


def run(quick: bool = False) -> list[Result]:
    if quick:
        return [
            asyncio.run(overhead((1, 20))),
            asyncio.run(politeness(events=300, threads=10)),
            asyncio.run(throughput(turns=4, events=500)),
        ]
    return [asyncio.run(overhead()), asyncio.run(politeness()), asyncio.run(throughput())]


if __name__ == "__main__":
    for item in run(quick="--quick" in sys.argv):
        print(item)
