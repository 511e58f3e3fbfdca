"""Client speed where the client is the bottleneck: our `EachSenseClient.stream` against the
product page's `requests` loop, both reading the same pre-buffered stream.

A tiny aiohttp server in a child process answers every POST with the same bytes: a
20,000-event each::sense turn in the raw event shape (what the simulator's `events:N` sends and
the product page's loop parses), built once at start-up and written as fast as the socket
takes it, either in one write (`blob`) or in pieces of 1 KiB or 16 KiB (`write_1k`,
`write_16k`), so that the clients see different read sizes. Nothing waits on the server: a
third reader that only receives the bytes (`bytes_only`) shows how much of the time is the
transfer itself.

Both clients run in one fresh interpreter, tuned as `eachsense-bot` tunes itself at start-up
(`tune_gc`), alternating which goes first; each figure is the median of `REPEATS` runs. The
measure is events per second to the last event (the turn's `Complete`); the target is
ours / requests >= 1.0.

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
from aiohttp import web

from bench.common import ROOT_DIR, Result, child_env, free_port, median, ms, result, run_child
from bot.app import new_http_session, tune_gc
from bot.eachsense import EachSenseClient
from bot.models import Complete, TextResponse

EVENTS = 20_000
REPEATS = 9
WRITES = {"blob": 0, "write_16k": 16 * 1024, "write_1k": 1024}  # 0: the whole stream at once


def stream_bytes(events: int) -> bytes:
    """The turn as the simulator streams `events:N` in the raw shape, in one piece."""
    parts = [b": ping\n\n"]
    for i in range(events):
        event = {"type": "text_response", "content": f"t{i} "}
        parts.append(b"data: " + json.dumps(event, ensure_ascii=False).encode() + b"\n\n")
    done = {"type": "complete", "status": "ok", "generations": [], "task_id": "task_bench"}
    parts.append(b"data: " + json.dumps(done).encode() + b"\n\n")
    parts.append(b"data: [DONE]\n\n")
    return b"".join(parts)


# --- the server (child process) ------------------------------------------------------------


async def serve(port: int, events: int) -> None:
    blob = stream_bytes(events)

    async def turn(request: web.Request) -> web.StreamResponse:
        await request.read()
        piece = WRITES[request.match_info["write"]]
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        response.content_length = len(blob)  # no chunked framing for either client to undo
        await response.prepare(request)
        if piece == 0:
            await response.write(blob)
        else:
            view = memoryview(blob)
            for start in range(0, len(blob), piece):
                await response.write(view[start : start + piece])
        await response.write_eof()
        return response

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/{write}/v1/chat/completions", turn)
    app.router.add_get("/healthz", health)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()


class blob_server:
    """`serve` in a child process, so its CPU is not counted against either client."""

    def __init__(self, events: int) -> None:
        self.events = events
        self.port = free_port()
        self._proc: asyncio.subprocess.Process | None = None

    def base_url(self, write: str) -> str:
        return f"http://127.0.0.1:{self.port}/{write}/v1"

    async def __aenter__(self) -> blob_server:
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.bench_client",
            "--serve",
            str(self.port),
            str(self.events),
            cwd=ROOT_DIR,
            env=child_env(),
        )
        async with aiohttp.ClientSession() as http:
            deadline = time.monotonic() + 30
            while True:
                try:
                    async with http.get(f"http://127.0.0.1:{self.port}/healthz") as response:
                        if response.status == 200:
                            return self
                except aiohttp.ClientError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("the stream server did not start")
                await asyncio.sleep(0.02)

    async def __aexit__(self, *exc: object) -> None:
        if self._proc is not None and self._proc.returncode is None:
            self._proc.terminate()
            await self._proc.wait()


# --- the clients ---------------------------------------------------------------------------


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
    """A client that only reads the bytes (no parsing at all): the transfer's own time."""
    body = {"messages": [{"role": "user", "content": prompt}], "stream": True}
    received = 0
    async with session.post(url, json=body, headers={"X-API-Key": "bench"}) as response:
        while chunk := await response.content.readany():
            received += len(chunk)
    return received


async def _compare(events: int, repeats: int) -> dict[str, Any]:
    figures: dict[str, Any] = {"events": events}
    async with blob_server(events) as server, new_http_session() as session:
        for write in WRITES:
            base = server.base_url(write)
            url = base + "/chat/completions"
            agent = EachSenseClient(session, api_key="bench", base_url=base)
            await ours(agent, "warm", "warm")  # connection pool, imports, caches
            requests_loop(url, "warm")
            times: dict[str, list[float]] = {"ours": [], "requests": [], "bytes": []}
            for run in range(repeats):
                # alternate who goes first, so neither side always follows the other's garbage
                order = ("ours", "requests") if run % 2 == 0 else ("requests", "ours")
                for side in order:
                    start = time.perf_counter()
                    if side == "ours":
                        count = await ours(agent, "bench", f"bench-{run}")
                    else:  # blocking, as the product page's loop is; nothing else runs here
                        count = requests_loop(url, "bench")
                    times[side].append(time.perf_counter() - start)
                    if count != events:
                        raise AssertionError(f"{side} saw {count} of {events} events")
                start = time.perf_counter()
                await bytes_only(session, url, "bench")
                times["bytes"].append(time.perf_counter() - start)
            ours_s, requests_s = median(times["ours"]), median(times["requests"])
            figures[f"{write}_ours_events_per_s"] = round(events / ours_s)
            figures[f"{write}_requests_events_per_s"] = round(events / requests_s)
            figures[f"{write}_ours_over_requests"] = round(requests_s / ours_s, 3)
            figures[f"{write}_ours_ms"] = ms(ours_s)
            figures[f"{write}_requests_ms"] = ms(requests_s)
            figures[f"{write}_bytes_only_ms"] = ms(median(times["bytes"]))
    return figures


def run(quick: bool = False) -> list[Result]:
    events, repeats = (2000, 3) if quick else (EVENTS, REPEATS)
    # a fresh interpreter for both clients, tuned as `eachsense-bot` tunes itself at start-up:
    # the heap earlier scenarios left in this process would tax whichever allocates more
    figures = run_child("bench_client", str(events), str(repeats))
    targets = {f"{write}_ours_over_requests": ">= 1.0" for write in WRITES}
    return [result("client_events_per_s", figures, targets)]


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        tune_gc()
        print(json.dumps(asyncio.run(_compare(int(sys.argv[2]), int(sys.argv[3])))))
    elif sys.argv[1:2] == ["--serve"]:
        asyncio.run(serve(int(sys.argv[2]), int(sys.argv[3])))
    else:
        for item in run(quick="--quick" in sys.argv):
            print(item)
