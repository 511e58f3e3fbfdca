"""The renderer's two budgets: CPU per streamed event, and edits per turn.

(a) `cpu_per_event`: a 2,000-event turn (thinking, then text deltas with the odd status
    event) as each::sense sends it (OpenAI chunk shape with an `eachlabs` object) cut into
    network-sized chunks, pushed through `bot.sse.SSEDecoder`, `json.loads` and
    `ReplyRenderer.feed`. CPU time (`time.process_time`), median of repetitions. Rendering
    happens at flush time, not per event, so it is not part of this figure.
(b) `edits_per_turn`: the same 2,000 events fed over about 2 s into a renderer whose surface
    allows one edit per 0.2 s. A renderer that edits per event (or per N events) would make
    hundreds of calls; ours must stay at one per interval plus the final edit. A turn longer
    than one message also needs one extra edit per finished page (to move the status line and
    buttons on), so the paged run's target adds those.

Run: `python -m bench.bench_render`.
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import time
from typing import Any

from bot.models import (
    Event,
    MediaFile,
    Status,
    SurfaceLimits,
    TextResponse,
    ThinkingDelta,
    View,
)
from bot.render import ReplyRenderer

EVENTS = 2000
REPEATS = 9
INTERVAL = 0.2
FEED_SECONDS = 2.0
BATCHES = 100  # events arrive in bursts, as they do off a network read


def _payloads(seed: int = 3) -> list[dict[str, Any]]:
    """One turn: a burst of thinking, then text deltas (~4 chars, like tokens) and status."""
    rng = random.Random(seed)
    words = ["the", " sun", "set", " over", " café", " ışık", " 🌅", " wave", ",", " oil", "\n"]
    out: list[dict[str, Any]] = []
    for index in range(EVENTS):
        word = rng.choice(words)
        if index < 300:
            out.append({"type": "thinking_delta", "content": word})
        elif rng.random() < 0.03:
            out.append({"type": "status", "message": "Generating image", "tool_name": "gen"})
        else:
            out.append({"type": "text_response", "content": word})
    return out


def _stream(payloads: list[dict[str, Any]]) -> bytes:
    parts = []
    for index, event in enumerate(payloads):
        delta = event["content"] if event["type"] == "text_response" else None
        chunk = {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": 1767225600 + index,
            "model": "eachsense/beta",
            "choices": [{"index": 0, "delta": {"content": delta}, "finish_reason": None}],
            "eachlabs": event,
        }
        parts.append(f"data: {json.dumps(chunk)}\n\n".encode())
    parts.append(b"data: [DONE]\n\n")
    return b"".join(parts)


def _chunks(stream: bytes, seed: int = 5) -> list[bytes]:
    rng = random.Random(seed)
    out, pos = [], 0
    while pos < len(stream):
        size = rng.randint(1024, 4096)
        out.append(stream[pos : pos + size])
        pos += size
    return out


def _event(payload: dict[str, Any]) -> Event | None:
    """The few event types this turn has (the client's own parser covers them all)."""
    kind = payload.get("type")
    if kind == "text_response":
        return TextResponse(payload.get("content") or "")
    if kind == "thinking_delta":
        return ThinkingDelta(payload.get("content") or "")
    if kind == "status":
        return Status(payload.get("message") or "", payload.get("tool_name"))
    return None


class _CountingSurface:
    """A surface that answers at once and counts what it was asked to do."""

    def __init__(self, *, max_text: int) -> None:
        self._limits = SurfaceLimits(
            min_edit_interval=INTERVAL, max_text=max_text, max_upload_bytes=1 << 20
        )
        self.posts = 0
        self.edits = 0
        self.views: dict[str, View] = {}

    @property
    def limits(self) -> SurfaceLimits:
        return self._limits

    async def post(self, view: View) -> str:
        self.posts += 1
        message_id = str(self.posts)
        self.views[message_id] = view
        return message_id

    async def edit(self, message_id: str, view: View, *, final: bool = False) -> None:
        self.edits += 1
        self.views[message_id] = view

    async def upload(self, media: MediaFile) -> None:
        raise NotImplementedError

    async def post_link(self, url: str, *, kind: str, reason: str) -> None:
        raise NotImplementedError


def _decoder() -> Any:
    try:
        from bot.sse import SSEDecoder
    except ImportError as exc:  # the decoder is a separate module; say so plainly
        raise SystemExit(f"bench_render needs bot.sse.SSEDecoder: {exc}") from exc
    return SSEDecoder()


def _one_pass(chunks: list[bytes], *, with_feed: bool) -> tuple[float, int]:
    """CPU seconds to decode, parse and (optionally) feed every chunk; and the event count."""
    decoder = _decoder()
    renderer = ReplyRenderer(_CountingSurface(max_text=2000), turn_id="bench", mode="max")
    count = 0
    began = time.process_time()
    for chunk in chunks:
        for sse in decoder.feed(chunk):
            if sse.data == "[DONE]":
                continue
            obj = json.loads(sse.data)
            event = _event(obj.get("eachlabs") or obj)
            if event is not None:
                count += 1
                if with_feed:
                    renderer.feed(event)
    spent = time.process_time() - began
    if with_feed and not renderer.text:
        raise AssertionError("the renderer saw no text")
    return spent, count


def bench_cpu() -> dict[str, Any]:
    chunks = _chunks(_stream(_payloads()))
    full, parse_only = [], []
    count = 0
    for _ in range(REPEATS):
        spent, count = _one_pass(chunks, with_feed=True)
        full.append(spent)
        parse_only.append(_one_pass(chunks, with_feed=False)[0])
    if count != EVENTS:
        raise AssertionError(f"expected {EVENTS} events, decoded {count}")
    per_event = statistics.median(full) / count * 1e6
    decode_parse = statistics.median(parse_only) / count * 1e6
    return {
        "name": "render_cpu_per_event",
        "figures": {
            "events": count,
            "chunks": len(chunks),
            "repeats": REPEATS,
            "us_per_event_decode_parse_feed": round(per_event, 2),
            "us_per_event_decode_parse": round(decode_parse, 2),
            "us_per_event_feed_only_est": round(max(0.0, per_event - decode_parse), 2),
        },
        "targets": {"us_per_event_decode_parse_feed": "< 50"},
    }


async def _turn(max_text: int) -> dict[str, Any]:
    events = [e for e in map(_event, _payloads()) if e is not None]
    surface = _CountingSurface(max_text=max_text)
    began = time.monotonic()
    renderer = ReplyRenderer(surface, turn_id="bench", mode="max")
    await renderer.start()
    per_batch = len(events) // BATCHES
    for index in range(BATCHES):
        for event in events[index * per_batch : (index + 1) * per_batch]:
            renderer.feed(event)
        await asyncio.sleep(FEED_SECONDS / BATCHES)
    await renderer.finish()
    duration = time.monotonic() - began
    shown = "".join(surface.views[m].text for m in renderer.message_ids)
    if shown != renderer.text:
        raise AssertionError("the pages do not add up to the text")
    pages = len(renderer.message_ids)
    return {
        "duration_s": round(duration, 2),
        "text_chars": len(renderer.text),
        "pages": pages,
        "posts": surface.posts,
        "edits": surface.edits,
        "edits_allowed": int(duration / INTERVAL + 1) + (pages - 1),
    }


def bench_edits() -> dict[str, Any]:
    one_page = asyncio.run(_turn(max_text=40_000))
    paged = asyncio.run(_turn(max_text=2000))
    return {
        "name": "render_edits_per_turn",
        "figures": {
            "events": EVENTS,
            "min_edit_interval_s": INTERVAL,
            **{f"one_page_{k}": v for k, v in one_page.items()},
            **{f"paged_{k}": v for k, v in paged.items()},
        },
        "targets": {
            "one_page_edits": f"<= {one_page['edits_allowed']} (duration / interval + 1)",
            "paged_edits": f"<= {paged['edits_allowed']} (... + 1 per finished page)",
        },
    }


def run() -> list[dict[str, Any]]:
    return [bench_cpu(), bench_edits()]


if __name__ == "__main__":
    for result in run():
        print(result["name"])
        for key, value in result["figures"].items():
            print(f"  {key:>34}: {value}")
        for key, value in result["targets"].items():
            print(f"  target {key}: {value}")
