"""The offline each::sense simulator, exercised over real HTTP on 127.0.0.1.

The official `openai` SDK and the product page's `requests` loop run unchanged against it:
if they work here, the simulator speaks the protocol our users' code expects.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
import requests
from aiohttp import web
from openai import AsyncOpenAI

from simulator import Simulator, serve
from simulator.jobs import sim_jobs

FAST = 1000.0
MakeSim = Callable[..., Awaitable[Simulator]]


@pytest.fixture
async def make_sim() -> AsyncIterator[MakeSim]:
    started: list[Simulator] = []

    async def make(**kwargs: Any) -> Simulator:
        kwargs.setdefault("speed", FAST)
        sim = Simulator(**kwargs)
        await sim.start()
        started.append(sim)
        return sim

    yield make
    for sim in started:
        await sim.stop()


@pytest.fixture
async def sim(make_sim: MakeSim) -> Simulator:
    return await make_sim()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def body(prompt: str, **extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": prompt}], "stream": True, **extra}


async def read_stream(
    http: aiohttp.ClientSession, sim: Simulator, payload: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], bool, int]:
    """(events, raw data objects, saw [DONE], ping comments) of one streamed turn."""
    events: list[dict[str, Any]] = []
    frames: list[dict[str, Any]] = []
    pings = 0
    async with http.post(f"{sim.base_url}/chat/completions", json=payload) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        async for raw in resp.content:
            line = raw.decode().rstrip("\r\n")
            if line.startswith(":"):
                pings += 1
            if not line.startswith("data: "):
                continue
            if line == "data: [DONE]":
                return events, frames, True, pings
            frame = json.loads(line[6:])
            frames.append(frame)
            events.append(frame.get("eachlabs") or frame)
    return events, frames, False, pings


def of_type(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == kind]


def text_of(events: list[dict[str, Any]]) -> str:
    return "".join(e["content"] for e in of_type(events, "text_response"))


# --- the official SDK ---------------------------------------------------------------------------


async def test_openai_sdk_non_stream(sim: Simulator) -> None:
    client = AsyncOpenAI(api_key="sk-test", base_url=sim.base_url)
    response = await client.chat.completions.create(
        model="eachsense/beta",
        messages=[{"role": "user", "content": "Generate a professional headshot portrait"}],
        stream=False,
    )
    await client.close()
    assert "professional headshot portrait" in (response.choices[0].message.content or "")
    generations = response.generations  # type: ignore[attr-defined]
    assert len(generations) == 1 and generations[0].endswith(".png")
    assert response.model_extra and response.model_extra["session_id"]
    assert sim.requests[-1].header("authorization") == "Bearer sk-test"


async def test_openai_sdk_stream_and_extra_body(sim: Simulator) -> None:
    client = AsyncOpenAI(api_key="sk-test", base_url=sim.base_url)
    stream = await client.chat.completions.create(
        model="eachsense/beta",
        messages=[{"role": "user", "content": "a sunset in oil painting style"}],
        stream=True,
        extra_body={"session_id": "sdk-thread-1", "mode": "eco"},
    )
    pieces: list[str] = []
    finish: list[str | None] = []
    async for chunk in stream:
        if chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        finish.append(chunk.choices[0].finish_reason)
    await client.close()
    text = "".join(pieces)
    assert "a sunset in oil painting style" in text and "eco mode" in text
    assert finish[-1] == "stop" and finish.count("stop") == 1
    recorded = sim.requests[-1]
    assert recorded.mode == "eco" and recorded.session_id == "sdk-thread-1"
    assert sim.sessions["sdk-thread-1"][0] == {
        "role": "user",
        "content": "a sunset in oil painting style",
    }


# --- the product page's raw loop ----------------------------------------------------------------


def docs_stream_generation(prompt: str, api_key: str, url: str, print: Callable[..., None]) -> None:
    """The page's loop, verbatim except the URL and `print` (captured for the test)."""
    response = requests.post(
        url,
        headers={"Content-Type": "application/json", "X-API-Key": api_key},
        json={"messages": [{"role": "user", "content": prompt}], "stream": True},
        stream=True,
    )

    line: Any  # the page rebinds bytes to str
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

        if event["type"] == "thinking_delta":
            print(f"Thinking: {event['content']}", end="")
        elif event["type"] == "text_response":
            print(f"\n{event['content']}")
        elif event["type"] == "generation_response":
            print(f"Generated: {event['url']}")
        elif event["type"] == "error":
            print(f"Error: {event['message']}")


async def test_docs_raw_requests_loop(make_sim: MakeSim) -> None:
    sim = await make_sim(shape="raw", api_key="key-1")
    out: list[str] = []

    def capture(*args: Any, end: str = "\n") -> None:
        out.append(" ".join(map(str, args)) + end)

    url = f"{sim.base_url}/chat/completions"
    await asyncio.to_thread(docs_stream_generation, "a cyberpunk cityscape", "key-1", url, capture)
    printed = "".join(out)
    assert "Thinking: Let me think…" in printed
    assert "cyberpunk" in printed
    assert re.search(r"Generated: http://127\.0\.0\.1:\d+/media/\S+\.png", printed)
    assert "Error" not in printed


# --- protocol details ---------------------------------------------------------------------------


async def test_openai_chunks_carry_events_and_final_generations(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    events, frames, done, pings = await read_stream(http, sim, body("draw a lighthouse"))
    assert done and pings >= 1
    assert all(f["object"] == "chat.completion.chunk" and "eachlabs" in f for f in frames)
    kinds = {e["type"] for e in events}
    assert {"thinking_delta", "status", "progress", "tool_call", "text_response"} <= kinds
    last = frames[-1]
    assert last["choices"][0]["finish_reason"] == "stop"
    assert last["eachlabs"]["type"] == "complete"
    gen = of_type(events, "generation_response")[0]
    assert last["generations"] == [gen["url"]] == gen["generations"]
    assert gen["model"] and gen["total"] == 1 and gen["execution_time_ms"] > 0
    for frame in frames:  # delta text only for text_response
        delta = frame["choices"][0]["delta"].get("content", "")
        assert delta == (
            frame["eachlabs"]["content"] if frame["eachlabs"]["type"] == "text_response" else ""
        )


async def test_stream_is_default_and_raw_shape(
    make_sim: MakeSim, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(shape="raw")
    payload = {"messages": [{"role": "user", "content": "just text please"}]}  # no `stream`
    events, frames, done, _ = await read_stream(http, sim, payload)
    assert done and frames == events and "eachlabs" not in frames[0]
    assert not of_type(events, "generation_response")
    assert of_type(events, "complete")[0]["generations"] == []


async def test_session_memory(sim: Simulator, http: aiohttp.ClientSession) -> None:
    url = f"{sim.base_url}/chat/completions"
    for prompt in ("a red fox", "now make it blue"):
        payload = body(prompt, session_id="s-mem", stream=False)
        async with http.post(url, json=payload) as resp:
            data = await resp.json()
            assert data["session_id"] == "s-mem" and data["task_id"]
    content = data["choices"][0]["message"]["content"]
    assert "turn 2 in this session" in content and '"a red fox"' in content
    roles = [m["role"] for m in sim.sessions["s-mem"]]
    assert roles == ["user", "assistant", "user", "assistant"]
    async with http.post(url, json=body("hello", stream=False)) as resp:
        fresh = await resp.json()
    assert fresh["session_id"] not in ("s-mem", None)
    assert "turn 1 in this session" in fresh["choices"][0]["message"]["content"]


async def test_session_busy(sim: Simulator, http: aiohttp.ClientSession) -> None:
    url = f"{sim.base_url}/chat/completions"
    holder = await http.post(url, json=body("fail:stall", session_id="s-busy"))
    await holder.content.readline()  # the stream is open: the session is now running
    async with http.post(url, json=body("again", session_id="s-busy", stream=False)) as resp:
        assert resp.status == 409
        assert (await resp.json())["error_code"] == "SESSION_BUSY"
    events, _, done, _ = await read_stream(http, sim, body("again", session_id="s-busy"))
    assert [e["type"] for e in events] == ["error"] and done
    assert events[0]["error_code"] == "SESSION_BUSY"
    other, _, _, _ = await read_stream(http, sim, body("no media", session_id="s-other"))
    assert of_type(other, "complete")  # other sessions are unaffected
    holder.close()  # the stalled client leaves: the server cancels its handler
    for _ in range(200):
        async with http.post(url, json=body("no media", session_id="s-busy")) as resp:
            if b"SESSION_BUSY" not in await resp.read():
                return
        await asyncio.sleep(0.01)
    pytest.fail("the session stayed busy after its client left")


async def timed_turn(http: aiohttp.ClientSession, sim: Simulator, mode: str) -> float:
    start = time.perf_counter()
    events, _, done, _ = await read_stream(http, sim, body("draw a boat", mode=mode))
    assert done and f"{mode} mode" in text_of(events)
    return time.perf_counter() - start


async def test_eco_is_faster_than_max(make_sim: MakeSim, http: aiohttp.ClientSession) -> None:
    sim = await make_sim(speed=10)
    max_time = await timed_turn(http, sim, "max")
    eco_time = await timed_turn(http, sim, "eco")
    assert eco_time < 0.75 * max_time, (eco_time, max_time)
    assert [r.mode for r in sim.requests] == ["max", "eco"]


# --- prompt words -------------------------------------------------------------------------------


async def test_prompt_words_choose_content(sim: Simulator, http: aiohttp.ClientSession) -> None:
    video, _, _, _ = await read_stream(http, sim, body("a 5-second video of waves"))
    assert of_type(video, "generation_response")[0]["url"].endswith(".mp4")

    text_only, _, _, _ = await read_stream(http, sim, body("no media, a haiku"))
    assert not of_type(text_only, "generation_response") and text_of(text_only)

    ask, _, _, _ = await read_stream(http, sim, body("ask me about a logo"))
    question = of_type(ask, "clarification_needed")
    assert len(question) == 1 and len(question[0]["options"]) == 3
    assert question[0]["question"] and question[0]["context"]
    assert not of_type(ask, "generation_response")

    long, _, _, _ = await read_stream(http, sim, body("a long essay"))
    assert 5500 <= len(text_of(long)) <= 8000 and not of_type(long, "generation_response")

    many, _, _, _ = await read_stream(http, sim, body("images:3 of cats"))
    gens = of_type(many, "generation_response")
    assert [len(g["generations"]) for g in gens] == [1, 2, 3] and gens[-1]["total"] == 3
    assert len({g["url"] for g in gens}) == 3

    searched, _, _, _ = await read_stream(http, sim, body("news", web_search=True))
    assert of_type(searched, "web_search_query") and of_type(searched, "web_search_citations")


async def test_events_n_exact_count(sim: Simulator, http: aiohttp.ClientSession) -> None:
    events, _, done, _ = await read_stream(http, sim, body("bench events:2000"))
    assert done and len(of_type(events, "text_response")) == 2000
    assert [e["type"] for e in events if e["type"] != "text_response"] == ["complete"]


async def test_many_concurrent_streams(sim: Simulator, http: aiohttp.ClientSession) -> None:
    results = await asyncio.gather(
        *(read_stream(http, sim, body("events:20", session_id=f"c{i}")) for i in range(200))
    )
    assert all(done and len(events) == 21 for events, _, done, _ in results)


# --- scripted failures --------------------------------------------------------------------------


async def post(
    http: aiohttp.ClientSession, sim: Simulator, payload: dict[str, Any]
) -> tuple[int, dict[str, Any], Any]:
    async with http.post(f"{sim.base_url}/chat/completions", json=payload) as resp:
        return resp.status, dict(resp.headers), await resp.json()


async def test_fail_401_and_429(sim: Simulator, http: aiohttp.ClientSession) -> None:
    status, _, data = await post(http, sim, body("fail:401"))
    assert status == 401 and data == {"detail": "Invalid API key."}
    for _ in range(2):  # every time
        status, headers, data = await post(http, sim, body("fail:429", session_id="r"))
        assert status == 429 and headers["Retry-After"] == "1"
        assert data["error_code"] == "RATE_LIMITED" and data["retry_after"] == 1 and data["detail"]


@pytest.mark.parametrize("code", [429, 500])
async def test_fail_once_then_succeeds(
    sim: Simulator, http: aiohttp.ClientSession, code: int
) -> None:
    payload = body(f"fail:{code}-once", session_id="once", stream=False)
    status, _, first = await post(http, sim, payload)
    assert status == code and first["detail"]
    status, _, second = await post(http, sim, payload)
    assert status == 200 and second["generations"]
    status, _, _ = await post(http, sim, {**payload, "session_id": "once-2"})
    assert status == code  # counted per session


async def test_fail_500_always(sim: Simulator, http: aiohttp.ClientSession) -> None:
    for _ in range(2):
        status, _, data = await post(http, sim, body("fail:500"))
        assert status == 500 and data["detail"]


@pytest.mark.parametrize(
    ("word", "code", "status"),
    [
        ("fail:error", "GENERATION_FAILED", 500),
        ("fail:balance", "INSUFFICIENT_BALANCE", 402),
        ("fail:timeout", "TIMEOUT", 500),
        ("fail:filter", "CONTENT_FILTER", 500),
    ],
)
async def test_error_events(
    sim: Simulator, http: aiohttp.ClientSession, word: str, code: str, status: int
) -> None:
    events, _, _, _ = await read_stream(http, sim, body(word))
    assert len(events) > 2 and events[-1]["type"] == "error"
    assert events[-1]["error_code"] == code and events[-1]["message"]
    got, _, data = await post(http, sim, body(word, stream=False))
    assert got == status and data["error_code"] == code
    if word == "fail:balance":  # with the documented details, streamed or not
        details = {
            "current_balance": 0.42,
            "required_estimate": 1.2,
            "top_up_url": sim.url + "/top-up",
        }
        assert events[-1]["details"] == details and data["details"] == details


async def test_fail_cut_breaks_the_stream(sim: Simulator, http: aiohttp.ClientSession) -> None:
    lines: list[bytes] = []
    with pytest.raises(aiohttp.ClientPayloadError):
        async with http.post(f"{sim.base_url}/chat/completions", json=body("fail:cut")) as resp:
            async for line in resp.content:
                lines.append(line)
    assert any(line.startswith(b"data: {") for line in lines)
    assert b"data: [DONE]\n" not in lines
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await post(http, sim, body("fail:cut", stream=False))


async def test_fail_stall_goes_silent_until_stop(
    make_sim: MakeSim, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim()
    resp = await http.post(f"{sim.base_url}/chat/completions", json=body("fail:stall"))
    seen = 0
    while seen < 3:  # some events arrive...
        if (await resp.content.readline()).startswith(b"data: "):
            seen += 1
    with pytest.raises(TimeoutError):  # ...then nothing, though the connection stays open
        async with asyncio.timeout(0.3):
            while True:
                assert not (await resp.content.readline()).startswith(b"data: [DONE]")
    start = time.perf_counter()
    await sim.stop()
    assert time.perf_counter() - start < 5
    resp.close()


async def test_fail_bigmedia(sim: Simulator, http: aiohttp.ClientSession) -> None:
    events, _, _, _ = await read_stream(http, sim, body("fail:bigmedia"))
    url = of_type(events, "generation_response")[0]["url"]
    assert url == f"{sim.url}/media/blob/{25 * 1024 * 1024}.mp4"
    events, _, _, _ = await read_stream(http, sim, body("fail:bigmedia:5000"))
    assert of_type(events, "generation_response")[0]["url"].endswith("/media/blob/5000.mp4")


# --- auth and validation ------------------------------------------------------------------------


async def test_auth_with_a_key(make_sim: MakeSim, http: aiohttp.ClientSession) -> None:
    sim = await make_sim(api_key="right")
    url = f"{sim.base_url}/chat/completions"
    payload = body("no media", stream=False)
    for headers, expected in [
        ({"Authorization": "Bearer right"}, 200),
        ({"X-API-Key": "right"}, 200),
        ({"Authorization": "Bearer wrong"}, 401),
        ({}, 401),
    ]:
        async with http.post(url, json=payload, headers=headers) as resp:
            assert resp.status == expected, headers
            if expected == 401:
                assert await resp.json() == {"detail": "Invalid API key."}
    assert len(sim.requests) == 4


async def test_no_key_configured_accepts_anything(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    url = f"{sim.base_url}/chat/completions"
    for headers in ({}, {"X-API-Key": "anything"}, {"Authorization": "Bearer x"}):
        async with http.post(url, json=body("no media", stream=False), headers=headers) as resp:
            assert resp.status == 200, headers


@pytest.mark.parametrize(
    "payload",
    [{}, {"messages": []}, {"messages": [{"role": "user", "content": ""}]}, {"stream": False}],
)
async def test_validation_422(
    sim: Simulator, http: aiohttp.ClientSession, payload: dict[str, Any]
) -> None:
    status, _, data = await post(http, sim, payload)
    assert status == 422 and isinstance(data["detail"], list) and data["detail"]


# --- media and other endpoints ------------------------------------------------------------------


async def fetch(http: aiohttp.ClientSession, url: str) -> tuple[int, str, bytes]:
    async with http.get(url) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), await resp.read()


async def test_png_media(sim: Simulator, http: aiohttp.ClientSession) -> None:
    events, _, _, _ = await read_stream(http, sim, body("draw a cat"))
    url = of_type(events, "generation_response")[0]["url"]
    status, ctype, data = await fetch(http, url)
    assert status == 200 and ctype == "image/png"
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert width > 0 and height > 0
    assert (await fetch(http, url))[2] == data  # deterministic per URL
    assert (await fetch(http, sim.media_url("other-0.png")))[2] != data


async def test_mp4_media(sim: Simulator, http: aiohttp.ClientSession) -> None:
    status, ctype, data = await fetch(http, sim.media_url("clip-0.mp4"))
    assert status == 200 and ctype == "video/mp4"
    assert data[4:8] == b"ftyp" and b"moov" in data and b"mvhd" in data and b"mdat" in data
    size = struct.unpack(">I", data[:4])[0]
    assert data[size + 4 : size + 8] == b"moov"
    assert (await fetch(http, sim.media_url("clip-0.mp4")))[2] == data
    assert (await fetch(http, sim.media_url("evil..png.exe")))[0] == 404


@pytest.mark.parametrize("size", [5, 3 * 1024 * 1024 + 7])
async def test_blob_streams_requested_size(
    sim: Simulator, http: aiohttp.ClientSession, size: int
) -> None:
    async with http.get(f"{sim.url}/media/blob/{size}.mp4") as resp:
        assert resp.status == 200 and resp.headers["Content-Type"] == "video/mp4"
        assert resp.content_length == size
        data = await resp.read()
    assert len(data) == size
    if size > 8:
        assert data[4:8] == b"ftyp"


async def test_models_and_health(sim: Simulator, http: aiohttp.ClientSession) -> None:
    status, _, raw = await fetch(http, f"{sim.base_url}/models")
    models = json.loads(raw)
    assert status == 200 and models["object"] == "list"
    assert models["data"][0]["id"] == "eachsense/beta"
    assert (await fetch(http, f"{sim.url}/healthz"))[0] == 200


async def test_serve_logs_url_and_runs_until_cancelled(
    caplog: pytest.LogCaptureFixture, http: aiohttp.ClientSession
) -> None:
    caplog.set_level(logging.INFO, logger="simulator")
    task = asyncio.create_task(serve(host="127.0.0.1", port=0, shape="raw", speed=FAST))
    url = None
    for _ in range(500):
        found = re.search(r"on (http://127\.0\.0\.1:\d+)", caplog.text)
        if found:
            url = found.group(1)
            break
        await asyncio.sleep(0.01)
    assert url, "serve never logged its URL"
    assert (await fetch(http, f"{url}/healthz"))[0] == 200
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(aiohttp.ClientConnectionError):
        await fetch(http, f"{url}/healthz")


# --- job webhooks --------------------------------------------------------------------------


class Hooks:
    """A webhook receiver on 127.0.0.1: records each delivery, answers the scripted status."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.answers: list[int] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _receive(self, request: web.Request) -> web.Response:
        self.received.append((dict(request.headers), await request.json()))
        return web.Response(status=self.answers.pop(0) if self.answers else 200)

    async def __aenter__(self) -> Hooks:
        app = web.Application()
        app.router.add_post("/hook", self._receive)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/hook"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


async def _create(http: aiohttp.ClientSession, sim: Simulator, path: str, body: Any) -> str:
    async with http.post(f"{sim.url}/eachlabs/v1{path}", json=body) as resp:
        answer = await resp.json()
    return str(answer.get("predictionID") or answer.get("execution_id"))


async def test_webhooks_are_sent_the_documented_way(
    make_sim: MakeSim, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(speed=100)
    async with Hooks() as hooks:
        hook = {"webhook_url": hooks.url, "webhook_secret": "per-run-secret"}
        ok = await _create(
            http, sim, "/prediction", {"model": "m", "input": {"prompt": "a fox"}, **hook}
        )
        await wait_for(lambda: len(hooks.received) == 1)
        headers, payload = hooks.received[0]
        assert headers["X-Webhook-Secret"] == "per-run-secret"
        assert headers["Content-Type"] == "application/json"
        assert "X-Webhook-Signature" not in headers and "X-Webhook-Timestamp" not in headers
        assert payload == {
            "exec_id": ok,
            "flow_id": None,
            "status": "succeeded",
            "output": sim.media_url(f"{ok}.png"),
            "error": "",
        }
        bad = await _create(
            http, sim, "/workflows/trigger/wf_x/latest", {"inputs": {"p": "fail"}, **hook}
        )
        await wait_for(lambda: len(hooks.received) == 2)
        _, failed = hooks.received[1]
        assert failed["exec_id"] == bad and failed["flow_id"] == "wf_x"
        assert failed["status"] == "failed" and failed["error"] == ""
        assert failed["output"] == [
            {
                "error": {
                    "error_code": "EXECUTION_ERROR",
                    "error_message": "The model crashed: out of memory (simulated).",
                }
            }
        ]


async def test_webhooks_retry_until_2xx_and_skip_cancellations(
    make_sim: MakeSim, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(speed=100)
    jobs = sim_jobs(sim.app)
    async with Hooks() as hooks:
        hooks.answers = [500, 401]  # then 200: the third attempt is accepted
        hook = {"webhook_url": hooks.url, "webhook_secret": "s"}
        first = await _create(
            http, sim, "/prediction", {"model": "m", "input": {"prompt": "x"}, **hook}
        )
        await wait_for(lambda: len(jobs.deliveries) == 3)
        assert jobs.deliveries == [(first, 500), (first, 401), (first, 200)]
        cancelled = await _create(
            http, sim, "/prediction", {"model": "m", "input": {"prompt": "slow"}, **hook}
        )
        async with http.post(f"{sim.url}/eachlabs/v1/prediction/{cancelled}/cancel") as resp:
            assert resp.status == 200
        last = await _create(
            http, sim, "/prediction", {"model": "m", "input": {"prompt": "y"}, **hook}
        )
        await wait_for(lambda: len(jobs.deliveries) == 4)
        assert jobs.deliveries[3] == (last, 200)
        assert all(job_id != cancelled for job_id, _ in jobs.deliveries)


async def wait_for(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


# --- bounded memory ------------------------------------------------------------------------


async def test_requests_and_sessions_are_bounded(
    make_sim: MakeSim, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(max_requests=5, max_sessions=3)
    url = f"{sim.base_url}/chat/completions"

    async def turn(session: str, prompt: str = "just text") -> str:
        async with http.post(url, json=body(prompt, session_id=session, stream=False)) as resp:
            return (await resp.json())["choices"][0]["message"]["content"]

    for name in ("a", "b", "c"):
        await turn(name)
    await turn("a")  # `a` is now the most recently used
    await turn("d")  # a fourth session: `b`, the least recently used, is dropped
    assert list(sim.sessions) == ["c", "a", "d"]
    assert "turn 3 in this session" in await turn("a")  # `a` kept its history
    assert "turn 1 in this session" in await turn("b")  # `b` starts again
    for n in range(20):
        await turn(f"s{n}", f"just text {n}")
    assert len(sim.sessions) == 3 and len(sim.requests) == 5
    assert [r.prompt for r in sim.requests] == [f"just text {n}" for n in range(15, 20)]
    assert sim.requests[-1].session_id == "s19" and sim.requests[1:] == list(sim.requests)[1:]
    defaults = Simulator()
    assert defaults.requests.maxlen == 1000 and defaults.sessions.maxsize == 1000


async def test_job_records_are_bounded(make_sim: MakeSim, http: aiohttp.ClientSession) -> None:
    sim = await make_sim(max_requests=4)
    jobs = sim_jobs(sim.app)
    ids = []
    for n in range(10):
        pid = await _create(http, sim, "/prediction", {"model": "m", "input": {"prompt": f"{n}"}})
        ids.append(pid)
        async with http.get(f"{sim.url}/eachlabs/v1/prediction/{pid}") as resp:
            assert resp.status == 200
        jobs.jobs[pid].ended = True  # as if it had run its course
    assert len(jobs.requests) == 4 and len(jobs.jobs) == 4
    assert list(jobs.jobs) == ids[-4:]  # the oldest finished runs are forgotten first
    running = [await _create(http, sim, "/prediction", {"model": "m", "input": {"prompt": "slow"}})]
    assert running[0] in jobs.jobs and len(jobs.jobs) == 4


async def test_scripted_session_busy(make_sim: MakeSim, http: aiohttp.ClientSession) -> None:
    sim = await make_sim(busy_after_stream=0.3)
    events, _, _, _ = await read_stream(http, sim, body("just text", session_id="s1"))
    ended = time.monotonic()
    assert of_type(events, "complete")
    events, _, done, _ = await read_stream(http, sim, body("again", session_id="s1"))
    assert [e["error_code"] for e in events] == ["SESSION_BUSY"] and done
    other, _, _, _ = await read_stream(http, sim, body("just text", session_id="s2"))
    assert of_type(other, "complete")  # only the session that just answered is busy
    while True:  # busy until 0.3 s after its turn ended, then it answers again
        events, _, _, _ = await read_stream(http, sim, body("again", session_id="s1"))
        if of_type(events, "complete"):
            break
        assert time.monotonic() - ended < 2, "the session stayed busy"
        await asyncio.sleep(0.02)
    assert time.monotonic() - ended >= 0.3
    fresh = await make_sim()
    fresh.make_busy("s3", requests=2)
    events, _, _, _ = await read_stream(http, fresh, body("just text", session_id="s3"))
    assert events[0]["error_code"] == "SESSION_BUSY"
    async with http.post(
        f"{fresh.base_url}/chat/completions", json=body("x", session_id="s3", stream=False)
    ) as resp:
        assert resp.status == 409 and (await resp.json())["error_code"] == "SESSION_BUSY"
    events, _, _, _ = await read_stream(http, fresh, body("just text", session_id="s3"))
    assert of_type(events, "complete")
