"""Client speed: our `EachSenseClient.stream` against the product page's `requests` loop.

Both read the same stream (`events:N`, the raw event shape the product page's loop parses)
from the same simulator, which runs in a child process so neither client shares a CPU
with the server's event loop. The measure is time to the last event, median of nine runs
that alternate which client goes first, both in one fresh interpreter; the target is
ours / requests <= 1.0. A third reader that only receives the bytes (`bytes_only_ms`) shows
how fast the simulator sends: when both clients take as long as it, the comparison is bound
by the server, neither client adds time, and the ratio is 1.0 give or take the noise.

Run: `python -m bench.bench_client [--quick]`.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import aiohttp
import requests

from bench.common import Result, external_simulator, median, ms, result, run_child
from bot.app import new_http_session, tune_gc
from bot.eachsense import EachSenseClient
from bot.models import Complete, TextResponse

EVENTS = 20_000
REPEATS = 9


def requests_loop(url: str, prompt: str) -> int:
    """The product page's streaming example, collecting instead of printing."""
    response = requests.post(
        url,
        headers={"Content-Type": "application/json", "X-API-Key": "bench"},
        json={"messages": [{"role": "user", "content": prompt}], "stream": True},
        stream=True,
        timeout=60,
    )
    texts = 0
    for line in response.iter_lines():
        if not line:
            continue
        line = line.decode("utf-8")
        if not line.startswith("data: "):
            continue
        data = line[6:]
        if data == "[DONE]":
            break
        event = json.loads(data)
        if event["type"] == "text_response":
            texts += 1
    response.close()
    return texts


async def ours(agent: EachSenseClient, prompt: str, session_id: str) -> int:
    texts = 0
    async for event in agent.stream(prompt, session_id=session_id):
        if isinstance(event, TextResponse):
            texts += 1
        elif isinstance(event, Complete):
            pass
    return texts


async def bytes_only(session: aiohttp.ClientSession, url: str, prompt: str) -> int:
    """A client that only reads the bytes (no parsing at all): how fast the server sends.
    When ours and the `requests` loop take as long as this, neither adds anything."""
    body = {"messages": [{"role": "user", "content": prompt}], "stream": True}
    received = 0
    async with session.post(url, json=body, headers={"X-API-Key": "bench"}) as response:
        while chunk := await response.content.readany():
            received += len(chunk)
    return received


async def _compare(events: int, repeats: int) -> dict[str, Any]:
    prompt = f"events:{events}"
    async with external_simulator(shape="raw") as sim, new_http_session() as session:
        agent = EachSenseClient(session, api_key="bench", base_url=sim.base_url)
        url = sim.base_url + "/chat/completions"
        await ours(agent, "events:10", "warm")  # connection pool, imports
        await asyncio.to_thread(requests_loop, url, "events:10")
        ours_times: list[float] = []
        requests_times: list[float] = []
        bytes_times: list[float] = []
        for run in range(repeats):
            # alternate who goes first, so neither side always meets a warmer server
            order = ("ours", "requests") if run % 2 == 0 else ("requests", "ours")
            counts: dict[str, int] = {}
            for side in order:
                start = time.perf_counter()
                if side == "ours":
                    counts[side] = await ours(agent, prompt, f"bench-{run}")
                    ours_times.append(time.perf_counter() - start)
                else:
                    counts[side] = await asyncio.to_thread(requests_loop, url, prompt)
                    requests_times.append(time.perf_counter() - start)
            if counts["ours"] != events or counts["requests"] != events:
                raise AssertionError(f"clients disagree: {counts}")
            start = time.perf_counter()
            await bytes_only(session, url, prompt)
            bytes_times.append(time.perf_counter() - start)
    ours_s, requests_s, bytes_s = median(ours_times), median(requests_times), median(bytes_times)
    return {
        "events": events,
        "ours_ms": ms(ours_s),
        "requests_ms": ms(requests_s),
        "ours_over_requests": round(ours_s / requests_s, 3),
        "bytes_only_ms": ms(bytes_s),
        "ours_over_bytes_only": round(ours_s / bytes_s, 3),
    }


def run(quick: bool = False) -> list[Result]:
    events, repeats = (2000, 3) if quick else (EVENTS, REPEATS)
    # a fresh interpreter for both clients, tuned as `eachsense-bot` tunes itself at start-up:
    # the heap earlier scenarios left in this process would tax whichever allocates more
    figures = run_child("bench_client", str(events), str(repeats))
    return [result("client_time_to_last_event", figures, {"ours_over_requests": "<= 1.0"})]


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        tune_gc()
        print(json.dumps(asyncio.run(_compare(int(sys.argv[2]), int(sys.argv[3])))))
    else:
        for item in run(quick="--quick" in sys.argv):
            print(item)
