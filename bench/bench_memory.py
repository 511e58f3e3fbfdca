"""Memory: each figure in a fresh child process, so no earlier scenario's garbage or peak
counts against it (`VmRSS`/`VmHWM` from `/proc/self/status`).

- `turns`: peak RSS while 1,000 turns run at once through the whole Slack pipeline (limits
  off, as in the overhead scenario), with the simulator and the fake Slack in a child
  process so only the bot's memory counts; also the peak above the idle bot, per turn.
- `idle_threads`: RSS growth per 10,000 threads saved through the store (SQLite on disk),
  measured over a second 10,000 so one-off costs (imports, first pages) are not counted.
  Threads live in storage; the process must not grow with them.
- `video`: a 200 MiB generation relayed simulator → `MediaFetcher` (to a temporary file) →
  `SlackSurface.upload` (streamed from disk) → a fake Slack that counts the uploaded bytes
  instead of keeping them (the stock fake keeps them, which is the fake's memory, not ours).
  The peak is reset after a small warm-up relay, so the figure is what the big file adds.

Run: `python -m bench.bench_memory [--quick]`.
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from adapters.slack.app import EVENTS_PATH
from bench.bench_pipeline import OVERHEAD_EVENTS, OVERHEAD_PACE
from bench.common import (
    Result,
    open_slack_pipeline,
    peak_rss_kb,
    remote_rig,
    remote_slack_bot,
    reset_peak_rss,
    result,
    rss_kb,
    run_child,
)
from bot.models import ThreadKey, ThreadRecord
from tests.fakes.slack import FakeSlack

VIDEO_BYTES = 200 * 1024 * 1024
IDLE_THREADS = 10_000
START_SPREAD = 0.5  # seconds over which the turns' commands arrive: all of them stream at once


class CountingSlack(FakeSlack):
    """The fake Slack, but uploads are counted, not kept."""

    async def _upload(self, request: web.Request) -> web.Response:
        file = self.files.get(request.match_info["file_id"])
        size = 0
        async for chunk in request.content.iter_chunked(256 * 1024):
            size += len(chunk)
        if file is None:
            return web.Response(status=404, text="file not found")
        file.length, file.data = size, b""  # the fake checks an upload happened
        return web.Response(text=f"OK - {size}")


async def _turns(count: int) -> dict[str, Any]:
    """The bot alone in this process (the simulator and the fake Slack in the rig's child,
    as in the overhead scenario): what it keeps for `count` turns in flight at once, not
    what the fakes keep of them (the fake Slack records every call it gets)."""
    async with remote_rig() as rig, remote_slack_bot(rig) as bot:
        assert bot.http is not None
        url = bot.http.url + EVENTS_PATH
        await rig.run(url, turns=3, events=5, pace=0.01, spread=0.05)  # warm-up
        await bot.wait_idle()
        gc.collect()
        idle = rss_kb()
        exact = reset_peak_rss()
        report = await rig.run(
            url, turns=count, events=OVERHEAD_EVENTS, pace=OVERHEAD_PACE, spread=START_SPREAD
        )
        await bot.wait_idle()
        peak = peak_rss_kb()
    finished = sum(row["final"] is not None for row in report["turns"])
    return {
        "turns": count,
        "finished": finished,
        "idle_rss_mb": round(idle / 1024, 1),
        "peak_rss_mb": round(peak / 1024, 1),
        "peak_reset_exactly": exact,
        "peak_kb_per_turn": round((peak - idle) / count, 1),
    }


async def _idle_threads(count: int) -> dict[str, Any]:
    from storage.sqlite import open_store

    with tempfile.TemporaryDirectory() as folder:
        store = await open_store(f"sqlite:///{Path(folder) / 'bench.db'}")
        try:

            async def save(start: int) -> None:
                now = time.time()
                for i in range(start, start + count):
                    key = ThreadKey("slack", "T0TEAM", f"C{i % 50}", f"{1_700_000_000 + i}.000100")
                    await store.save_thread(
                        ThreadRecord(
                            key=key,
                            session_id=f"esb-{i:032x}",
                            owner_id=f"U{i}",
                            created_at=now,
                            last_used_at=now,
                        )
                    )

            await save(0)  # the first batch pays for imports, statements and cache pages
            gc.collect()
            before = rss_kb()
            await save(count)
            gc.collect()
            after = rss_kb()
            stored = await store.get_thread(ThreadKey("slack", "T0TEAM", "C0", "1700010000.000100"))
        finally:
            await store.close()
    growth = after - before
    return {
        "threads_added": count,
        "found_after_save": stored is not None,
        "rss_growth_kb_per_10k_threads": round(growth * 10_000 / count, 1),
        "rss_bytes_per_thread": round(growth * 1024 / count, 1),
    }


async def _video(size: int) -> dict[str, Any]:
    async with open_slack_pipeline(fake=CountingSlack, media_max_bytes=2 * size) as pipe:
        ws = pipe.workspaces[0]
        await ws.sense("fail:bigmedia:1048576 warm-up", channel="CWARM")
        await ws.bot.wait_idle()
        gc.collect()
        before = rss_kb()
        exact = reset_peak_rss()
        baseline = before if exact else peak_rss_kb()
        await ws.sense(f"fail:bigmedia:{size}", channel="CVIDEO")
        await ws.bot.wait_idle()
        peak = peak_rss_kb()
        uploaded = max((f.length for f in ws.slack.files.values()), default=0)
    return {
        "video_mb": round(size / 1024 / 1024),
        "uploaded_mb": round(uploaded / 1024 / 1024, 1),
        "peak_reset_exactly": exact,
        "video_adds_peak_mb": round((peak - baseline) / 1024, 1),
    }


CHILDREN = {"turns": _turns, "idle_threads": _idle_threads, "video": _video}


def run(quick: bool = False) -> list[Result]:
    turns = 100 if quick else 1000
    threads = 1000 if quick else IDLE_THREADS
    video = 20 * 1024 * 1024 if quick else VIDEO_BYTES
    figures: dict[str, Any] = {}
    figures.update(run_child("bench_memory", "turns", str(turns)))
    figures.update(run_child("bench_memory", "idle_threads", str(threads)))
    figures.update(run_child("bench_memory", "video", str(video)))
    return [
        result(
            "memory",
            figures,
            {
                "peak_kb_per_turn": "<= 50",
                "rss_bytes_per_thread": "< 2048",
                "video_adds_peak_mb": "< 16",
            },
        )
    ]


def _child(name: str, arg: str) -> None:
    import logging

    logging.basicConfig(level=logging.WARNING)
    print(json.dumps(asyncio.run(CHILDREN[name](int(arg)))))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        _child(sys.argv[2], sys.argv[3])
    else:
        for item in run(quick="--quick" in sys.argv):
            print(item)
