"""SSE decoding throughput: `bot.sse.SSEDecoder` against the loops other clients use.

`naive` is the loop most hand-written SSE clients use (accumulate bytes, split off each line
at `\\n`, keep lines starting with `data: `). `requests_lines` is the product page's raw
example on requests' `iter_lines`: its C-level `splitlines` ignores most SSE rules (CR line
ends, multi-line data, event names, ids) and it builds no event objects, so it marks what a
correct decoder in pure Python has to beat. All run on the same ~8 MB of each::sense-shaped
events (the OpenAI chunk shape with an `eachlabs` object, JSON as Python's `json.dumps` writes
it by default, a keep-alive comment now and then) and must agree on every payload. The stream
is cut into 1-4 KiB network-sized chunks, and again into 64 KiB reads (what aiohttp's
`readany` hands over when a stream arrives faster than it is read; the naive loop, which
copies the rest of its buffer for every line, is left out there).

Run: `python -m bench.bench_sse`.
"""

from __future__ import annotations

import json
import random
import statistics
import time
from collections.abc import Iterator
from typing import Any

from bot.sse import SSEDecoder

TARGET_MB = 8
REPEATS = 9


def _chunk_json(index: int, eachlabs: dict[str, Any], content: str | None) -> str:
    chunk: dict[str, Any] = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1767225600 + index,
        "model": "eachsense/beta",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": None}],
        "eachlabs": eachlabs,
    }
    return json.dumps(chunk)


def _events(rng: random.Random) -> Iterator[str]:
    """An endless, repeatable turn-like mix of thinking, text, status and media events."""
    words = ["the", "sunset", "über", "ışık", "café", "oil", "painting", "🌅", "colour", "wave"]
    index = 0
    while True:
        index += 1
        roll = rng.random()
        text = " ".join(rng.choice(words) for _ in range(rng.randint(1, 12)))
        if roll < 0.45:
            yield _chunk_json(index, {"type": "thinking_delta", "content": text}, None)
        elif roll < 0.9:
            yield _chunk_json(index, {"type": "text_response", "content": text}, text)
        elif roll < 0.97:
            event: dict[str, Any] = {"type": "status", "message": text, "tool_name": "generate"}
            yield _chunk_json(index, event, None)
        else:
            url = f"https://cdn-us.eachlabs.ai/out/{index:08d}.png"
            event = {"type": "generation_response", "url": url, "generations": [url]}
            yield _chunk_json(index, event, None)


def make_stream(size: int = TARGET_MB * 1_000_000, seed: int = 7) -> bytes:
    """`size` bytes of SSE as each::sense sends it (with an occasional keep-alive comment)."""
    rng = random.Random(seed)
    parts: list[bytes] = []
    total = 0
    for payload in _events(rng):
        piece = f"data: {payload}\n\n".encode()
        if rng.random() < 0.01:
            piece = b": ping\n\n" + piece
        parts.append(piece)
        total += len(piece)
        if total >= size:
            break
    parts.append(b"data: [DONE]\n\n")
    return b"".join(parts)


def make_chunks(
    stream: bytes, seed: int = 11, sizes: tuple[int, int] = (1024, 4096)
) -> list[bytes]:
    """Cut the stream like a network does: 1-4 KiB pieces, splitting anything anywhere."""
    rng = random.Random(seed)
    chunks: list[bytes] = []
    pos = 0
    while pos < len(stream):
        step = rng.randint(*sizes)
        chunks.append(stream[pos : pos + step])
        pos += step
    return chunks


def naive(chunks: list[bytes]) -> list[str]:
    """The naive loop: accumulate bytes, split off each line at `\\n`, keep the lines
    starting with `data: `. (Each line is decoded on its own so that a character split
    across chunks does not break it: the kindest version of the naive loop.)"""
    out: list[str] = []
    buf = b""
    for chunk in chunks:
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            if not line.startswith(b"data: "):
                continue
            data = line[6:].decode("utf-8")
            if data == "[DONE]":
                return out
            out.append(data)
    return out


def _iter_lines(chunks: list[bytes]) -> Iterator[bytes]:
    """requests' `Response.iter_lines` (2.x), which the product page's raw example uses."""
    pending: bytes | None = None
    for chunk in chunks:
        if pending is not None:
            chunk = pending + chunk
        lines = chunk.splitlines()
        if lines and lines[-1] and chunk and lines[-1][-1] == chunk[-1]:
            pending = lines.pop()
        else:
            pending = None
        yield from lines
    if pending is not None:
        yield pending


def requests_lines(chunks: list[bytes]) -> list[str]:
    """The product page's raw SSE loop on requests' `iter_lines`, collecting payloads.
    A reference point, not a target: its C-level `splitlines` ignores most SSE rules
    and it builds no event objects."""
    out: list[str] = []
    for raw in _iter_lines(chunks):
        if not raw:
            continue
        line = raw.decode("utf-8")
        if not line.startswith("data: "):
            continue
        data = line[6:]
        if data == "[DONE]":
            break
        out.append(data)
    return out


def ours(chunks: list[bytes]) -> list[str]:
    """`SSEDecoder`, collecting `data` payloads the same way."""
    decoder = SSEDecoder()
    out: list[str] = []
    for chunk in chunks:
        for event in decoder.feed(chunk):
            data = event.data  # as the client reads it
            if data == "[DONE]":
                return out
            out.append(data)
    return out


def _median_seconds(chunks: list[bytes], fns: list[Any]) -> list[float]:
    """Median wall time of each function, alternating runs so that load from other
    processes on the machine falls on all of them alike."""
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(REPEATS):
        for fn, bucket in zip(fns, times, strict=True):
            start = time.perf_counter()
            fn(chunks)
            bucket.append(time.perf_counter() - start)
    return [statistics.median(bucket) for bucket in times]


def run() -> list[dict[str, Any]]:
    """Measure the decoders; check they agree before trusting the numbers."""
    stream = make_stream()
    chunks = make_chunks(stream)
    reads = make_chunks(stream, sizes=(65536, 65536))
    expected = naive(chunks)
    for cut in (chunks, reads):
        if ours(cut) != expected or requests_lines(cut) != expected:
            raise AssertionError("the decoders disagree on the bench stream")
    megabytes = len(stream) / 1_000_000
    seconds = _median_seconds(chunks, [ours, naive, requests_lines])
    ours_mbps, naive_mbps, requests_mbps = (megabytes / s for s in seconds)
    ours_64k, requests_64k = (megabytes / s for s in _median_seconds(reads, [ours, requests_lines]))
    return [
        {
            "name": "sse_decode_throughput",
            "figures": {
                "stream_mb": round(megabytes, 2),
                "chunks": len(chunks),
                "events": len(expected),
                "ours_mb_per_s": round(ours_mbps, 1),
                "naive_mb_per_s": round(naive_mbps, 1),
                "ours_over_naive": round(ours_mbps / naive_mbps, 2),
                "requests_iter_lines_mb_per_s": round(requests_mbps, 1),
                "ours_over_requests_iter_lines": round(ours_mbps / requests_mbps, 2),
                "ours_mb_per_s_64k_reads": round(ours_64k, 1),
                "requests_iter_lines_mb_per_s_64k_reads": round(requests_64k, 1),
                "ours_over_requests_iter_lines_64k_reads": round(ours_64k / requests_64k, 2),
            },
            # against `iter_lines`, reported: it is no SSE decoder (see above); the target
            # that matters is the whole client's against that loop (`bench_client`)
            "targets": {"ours_over_naive": ">= 1.0"},
        }
    ]


if __name__ == "__main__":
    for result in run():
        print(result["name"])
        for key, value in result["figures"].items():
            print(f"  {key:>42}: {value}")
        for key, value in result["targets"].items():
            print(f"  target {key}: {value}")
