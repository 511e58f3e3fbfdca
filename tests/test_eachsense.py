"""The each::sense client against small real HTTP servers on 127.0.0.1 that send exact bytes
and scripted failures. Nothing of the client is mocked: aiohttp really connects, reads,
times out and retries."""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from pydantic import SecretStr

from bot.config import Settings
from bot.eachsense import EachSenseClient
from bot.errors import (
    AgentError,
    AuthError,
    ConnectError,
    IdleTimeout,
    PaymentRequired,
    RateLimited,
    RequestRejected,
    ServerError,
    StreamCut,
    UpstreamError,
)
from bot.models import (
    AgentMessage,
    ClarificationNeeded,
    Complete,
    Completion,
    Event,
    GenerationResponse,
    Progress,
    Status,
    TextResponse,
    ThinkingDelta,
    ToolCall,
    WebSearchCitations,
    WebSearchQuery,
    WorkflowEvent,
)

KEY = "sk-test-0123456789abcdef"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Seen:
    headers: dict[str, str]
    body: dict[str, Any]
    at: float


@dataclass
class Server:
    """Answers request N with handlers[N] (the last one repeats) and records each request."""

    url: str = ""
    handlers: list[Handler] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = json.loads(await request.read())
        self.seen.append(Seen(dict(request.headers), body, time.monotonic()))
        index = min(len(self.seen), len(self.handlers)) - 1
        return await self.handlers[index](request)

    def script(self, *handlers: Handler) -> None:
        self.handlers = list(handlers)


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    state = Server()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", state.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    state.url = f"http://{host}:{port}/v1"
    try:
        yield state
    finally:
        state.release.set()
        await runner.cleanup()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def client(http: aiohttp.ClientSession, base_url: str, **kw: Any) -> EachSenseClient:
    options: dict[str, Any] = {"max_retry_wait": 0.05, "idle_timeout": 5.0, "max_retries": 3}
    options.update(kw)
    return EachSenseClient(http, api_key=options.pop("api_key", KEY), base_url=base_url, **options)


async def collect(stream: AsyncIterator[Event], into: list[Event] | None = None) -> list[Event]:
    events = [] if into is None else into
    async for event in stream:
        events.append(event)
    return events


# --- handlers --------------------------------------------------------------------------


def frame(payload: dict[str, Any] | str, end: str = "\n") -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return f"data: {data}{end}{end}".encode()


def chunk(eachlabs: dict[str, Any] | None = None, content: str | None = None, **top: Any) -> dict:
    out: dict[str, Any] = {
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": None}],
    }
    if eachlabs is not None:
        out["eachlabs"] = eachlabs
    out.update(top)
    return out


async def _open(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    return resp


def sse(*pieces: bytes, gap: float = 0.0) -> Handler:
    """Send each piece as its own write, `gap` seconds apart, then end the body."""

    async def handler(request: web.Request) -> web.StreamResponse:
        resp = await _open(request)
        for piece in pieces:
            await resp.write(piece)
            await asyncio.sleep(gap)
        await resp.write_eof()
        return resp

    return handler


def reply(status: int, body: Any, headers: dict[str, str] | None = None) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.json_response(body, status=status, headers=headers)

    return handler


def cut_after(*pieces: bytes, how: str = "close") -> Handler:
    """Send the pieces, then drop the connection (or crash the handler) mid-body."""

    async def handler(request: web.Request) -> web.StreamResponse:
        resp = await _open(request)
        for piece in pieces:
            await resp.write(piece)
        if how == "crash":
            raise RuntimeError("the server fell over mid-stream")
        assert request.transport is not None
        request.transport.close()
        return resp

    return handler


def stall_after(server: Server, *pieces: bytes) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        resp = await _open(request)
        for piece in pieces:
            await resp.write(piece)
        await server.release.wait()
        return resp

    return handler


DONE = b"data: [DONE]\n\n"


# --- streaming: shapes and framing -----------------------------------------------------


async def test_openai_shape_every_event_type(server: Server, http: aiohttp.ClientSession) -> None:
    url = "https://cdn-us.eachlabs.ai/a.png"
    server.script(
        sse(
            b": connected\n\n",
            frame(chunk({"type": "thinking_delta", "content": "Hmm"})),
            frame(chunk({"type": "text_response", "content": "Hi "}, content="Hi ")),
            frame(chunk({"type": "status", "message": "Working", "tool_name": "gen"})),
            frame(chunk({"type": "progress", "message": "Half", "percent": 50})),
            frame(chunk({"type": "tool_call", "name": "gen", "input": {"p": 1}})),
            frame(chunk({"type": "message", "content": "Note"})),
            frame(chunk({"type": "generation_response", "url": url, "generations": [url]})),
            frame(chunk({"type": "clarification_needed", "question": "Which?", "options": ["a"]})),
            frame(chunk({"type": "web_search_query", "query": "q"})),
            frame(
                chunk(
                    {
                        "type": "web_search_citations",
                        "citations": ["https://x.org", {"title": "Y", "url": "https://y.org"}],
                    }
                )
            ),
            frame(chunk({"type": "workflow_started", "workflow_id": "w1"})),
            frame(chunk({"type": "brand_new_thing", "x": 1})),
            b"data: {not json\n\n",
            frame(
                chunk({"type": "complete", "status": "ok", "generations": [url], "task_id": "t"})
            ),
            DONE,
        )
    )
    events = await collect(client(http, server.url).stream("draw", session_id="s1"))
    assert events == [
        ThinkingDelta("Hmm"),
        TextResponse("Hi "),  # once: the duplicate `delta.content` is not emitted
        Status("Working", "gen"),
        Progress("Half", 50.0),
        ToolCall("gen", {"p": 1}),
        AgentMessage("Note"),
        GenerationResponse(url=url, generations=(url,)),
        ClarificationNeeded("Which?", ("a",)),
        WebSearchQuery("q"),
        WebSearchCitations((("https://x.org", "https://x.org"), ("Y", "https://y.org"))),
        WorkflowEvent("workflow_started", {"workflow_id": "w1"}),
        Complete("ok", (url,), "t"),
    ]


async def test_raw_shape_crlf_and_split_utf8(server: Server, http: aiohttp.ClientSession) -> None:
    body = (
        frame({"type": "text_response", "content": "héllo 🌅"}, end="\r\n")
        + frame({"type": "thinking_delta", "content": "ok"}, end="\r")
        + b"data: [DONE]\r\n\r\n"
    )
    cut = body.index("🌅".encode()) + 2  # inside the 4-byte character
    server.script(sse(body[:cut], body[cut : cut + 1], body[cut + 1 :], gap=0.01))
    events = await collect(client(http, server.url).stream("hi", session_id="s"))
    assert events == [TextResponse("héllo 🌅"), ThinkingDelta("ok"), Complete()]


async def test_plain_openai_chunks_and_final_generations(
    server: Server, http: aiohttp.ClientSession
) -> None:
    final = chunk(content=None, generations=["https://cdn/x.mp4"], task_id="t9")
    final["choices"][0]["finish_reason"] = "stop"
    server.script(sse(frame(chunk(content="Hel")), frame(chunk(content="lo")), frame(final), DONE))
    events = await collect(client(http, server.url).stream("hi", session_id="s"))
    assert events == [
        TextResponse("Hel"),
        TextResponse("lo"),
        Complete(generations=("https://cdn/x.mp4",), task_id="t9"),
    ]


async def test_done_without_final_blank_line_still_ends(
    server: Server, http: aiohttp.ClientSession
) -> None:
    server.script(sse(frame({"type": "text_response", "content": "a"}), b"data: [DONE]"))
    events = await collect(client(http, server.url).stream("hi", session_id="s"))
    assert events == [TextResponse("a"), Complete()]


async def test_clean_eof_without_done_is_a_cut(server: Server, http: aiohttp.ClientSession) -> None:
    server.script(sse(frame({"type": "text_response", "content": "a"})))
    got: list[Event] = []
    with pytest.raises(StreamCut):
        await collect(client(http, server.url).stream("hi", session_id="s"), got)
    assert got == [TextResponse("a")]
    assert len(server.seen) == 1


async def test_json_answer_to_a_stream_request_is_tolerated(
    server: Server, http: aiohttp.ClientSession
) -> None:
    body = {"choices": [{"message": {"content": "whole"}}], "generations": ["https://g/1.png"]}
    server.script(reply(200, body))
    events = await collect(client(http, server.url).stream("hi", session_id="s"))
    assert events == [TextResponse("whole"), Complete(generations=("https://g/1.png",))]


# --- the request -----------------------------------------------------------------------


async def test_request_headers_and_body(server: Server, http: aiohttp.ClientSession) -> None:
    server.script(sse(DONE))
    agent = client(http, server.url, model="eachsense/test")
    urls = [f"https://img/{i}.png" for i in range(6)]
    await collect(agent.stream("hi", session_id="thread-1", mode="eco", image_urls=urls))
    await collect(agent.stream("again", session_id="t2", behavior="plan", web_search=True))
    first, second = server.seen
    assert first.headers["Authorization"] == f"Bearer {KEY}"
    assert first.headers["X-API-Key"] == KEY
    assert first.headers["Accept"] == "text/event-stream"
    assert first.body == {
        "model": "eachsense/test",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "session_id": "thread-1",
        "mode": "eco",
        "image_urls": urls[:4],
    }
    assert "behavior" not in first.body and "web_search" not in first.body
    assert second.body["behavior"] == "plan" and second.body["web_search"] is True
    assert second.body["mode"] == "max" and "image_urls" not in second.body


async def test_missing_key_fails_without_a_request(
    server: Server, http: aiohttp.ClientSession
) -> None:
    server.script(sse(DONE))
    with pytest.raises(AuthError) as err:
        await collect(client(http, server.url, api_key=None).stream("hi", session_id="s"))
    assert "EACHSENSE_API_KEY" in err.value.user_message
    with pytest.raises(AuthError):
        await client(http, server.url, api_key="").complete("hi", session_id="s")
    assert server.seen == []


async def test_from_settings(server: Server, http: aiohttp.ClientSession) -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        eachsense_api_key=SecretStr(KEY),
        eachsense_base_url=server.url + "/",
        eachsense_model="m",
    )
    server.script(sse(DONE))
    events = await collect(
        EachSenseClient.from_settings(http, settings).stream("x", session_id="s")
    )
    assert events == [Complete()]
    assert server.seen[0].body["model"] == "m"
    assert server.seen[0].headers["X-API-Key"] == KEY


# --- HTTP errors and retries -----------------------------------------------------------


def assert_no_key(err: BaseException) -> None:
    assert isinstance(err, UpstreamError)
    for text in (str(err), err.user_message, err.detail, repr(err)):
        assert KEY not in text


async def test_401_is_auth_error_and_never_shows_the_key(
    server: Server, http: aiohttp.ClientSession
) -> None:
    server.script(reply(401, {"detail": f"Invalid API key {KEY}."}))
    with pytest.raises(AuthError) as err:
        await collect(client(http, server.url).stream("hi", session_id="s"))
    assert err.value.status == 401
    assert "Invalid API key" in err.value.detail
    assert_no_key(err.value)
    assert len(server.seen) == 1


async def test_402_is_payment_required(server: Server, http: aiohttp.ClientSession) -> None:
    server.script(reply(402, {"detail": "Payment required"}))
    with pytest.raises(PaymentRequired):
        await collect(client(http, server.url).stream("hi", session_id="s"))
    assert len(server.seen) == 1


async def test_422_is_rejected_with_server_detail(
    server: Server, http: aiohttp.ClientSession
) -> None:
    validation = [{"loc": ["body", "mode"], "msg": "bad mode", "type": "value_error"}]
    server.script(reply(422, {"detail": validation}), reply(400, {"detail": "Prompt is empty"}))
    agent = client(http, server.url)
    with pytest.raises(RequestRejected) as err:
        await collect(agent.stream("hi", session_id="s"))
    assert "bad mode" in err.value.detail and "bad mode" not in err.value.user_message
    with pytest.raises(RequestRejected) as err:
        await collect(agent.stream("hi", session_id="s"))
    assert "Prompt is empty" in err.value.user_message
    assert len(server.seen) == 2


@pytest.mark.parametrize("where", ["body", "header"])
async def test_429_waits_then_succeeds(
    server: Server, http: aiohttp.ClientSession, where: str
) -> None:
    body: dict[str, Any] = {"detail": "slow down", "error_code": "RATE_LIMITED"}
    headers = {}
    if where == "body":
        body["retry_after"] = 30
    else:
        headers["Retry-After"] = "30"
    server.script(
        reply(429, body, headers), sse(frame({"type": "text_response", "content": "ok"}), DONE)
    )
    events = await collect(
        client(http, server.url, max_retry_wait=0.1).stream("hi", session_id="s")
    )
    assert events == [TextResponse("ok"), Complete()]
    assert len(server.seen) == 2
    waited = server.seen[1].at - server.seen[0].at
    assert 0.09 <= waited < 2  # the server's 30 s, capped at max_retry_wait (+ jitter)


async def test_429_forever_gives_up_after_max_retries(
    server: Server, http: aiohttp.ClientSession
) -> None:
    server.script(reply(429, {"detail": "slow", "error_code": "RATE_LIMITED", "retry_after": 30}))
    with pytest.raises(RateLimited) as err:
        await collect(client(http, server.url, max_retries=2).stream("hi", session_id="s"))
    assert len(server.seen) == 3
    assert err.value.retry_after == 30
    assert "about 30 seconds" in err.value.user_message
    assert_no_key(err.value)


async def test_500_then_success(server: Server, http: aiohttp.ClientSession) -> None:
    server.script(
        reply(500, {"detail": "boom"}),
        reply(503, {"detail": "later"}),
        sse(frame({"type": "text_response", "content": "ok"}), DONE),
    )
    events = await collect(client(http, server.url).stream("hi", session_id="s"))
    assert events == [TextResponse("ok"), Complete()]
    assert len(server.seen) == 3


async def test_500_forever_is_server_error(server: Server, http: aiohttp.ClientSession) -> None:
    server.script(reply(500, {"detail": "boom"}))
    with pytest.raises(ServerError) as err:
        await collect(client(http, server.url, max_retries=1).stream("hi", session_id="s"))
    assert err.value.status == 500
    assert len(server.seen) == 2


@pytest.mark.parametrize("how", ["close", "crash"])
async def test_failure_after_first_event_is_never_retried(
    server: Server, http: aiohttp.ClientSession, how: str
) -> None:
    server.script(
        cut_after(frame({"type": "thinking_delta", "content": "started"}), how=how),
        sse(frame({"type": "text_response", "content": "second run"}), DONE),
    )
    got: list[Event] = []
    with pytest.raises(StreamCut) as err:
        await collect(client(http, server.url).stream("hi", session_id="s"), got)
    assert got == [ThinkingDelta("started")]
    assert len(server.seen) == 1
    assert "Send your message again" in err.value.user_message


async def test_connection_refused_is_connect_error(http: aiohttp.ClientSession) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    agent = client(http, f"http://127.0.0.1:{port}/v1", max_retries=2)
    with pytest.raises(ConnectError) as err:
        await collect(agent.stream("hi", session_id="s"))
    assert_no_key(err.value)
    with pytest.raises(ConnectError):
        await agent.complete("hi", session_id="s")


# --- error events ----------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["raw", "openai"])
async def test_error_event_is_agent_error_with_code(
    server: Server, http: aiohttp.ClientSession, shape: str
) -> None:
    error = {"type": "error", "message": "Generation failed", "error_code": "GENERATION_FAILED"}
    payload = error if shape == "raw" else chunk(error)
    server.script(sse(frame({"type": "thinking_delta", "content": "x"}), frame(payload), DONE))
    got: list[Event] = []
    with pytest.raises(AgentError) as err:
        await collect(client(http, server.url).stream("hi", session_id="s"), got)
    assert err.value.code == "GENERATION_FAILED"
    assert "Generation failed" in err.value.user_message
    assert got == [ThinkingDelta("x")]
    assert len(server.seen) == 1


async def test_session_busy_and_balance_errors(server: Server, http: aiohttp.ClientSession) -> None:
    busy = {"type": "error", "message": "busy", "error_code": "SESSION_BUSY"}
    broke = {"type": "error", "message": "no credit", "error_code": "INSUFFICIENT_BALANCE"}
    gone = {"type": "error", "message": "?", "error_code": "SESSION_NOT_FOUND"}
    server.script(sse(frame(busy)), sse(frame(broke)), sse(frame(gone)))
    agent = client(http, server.url, busy_retry_seconds=0)  # the sentence when not retried
    with pytest.raises(AgentError) as err:
        await collect(agent.stream("hi", session_id="s"))
    assert err.value.code == "SESSION_BUSY"
    assert "still answering a previous message" in err.value.user_message
    with pytest.raises(PaymentRequired):
        await collect(agent.stream("hi", session_id="s"))
    with pytest.raises(AgentError) as err:
        await collect(agent.stream("hi", session_id="s"))
    assert err.value.code == "SESSION_NOT_FOUND" and "new thread" in err.value.user_message


async def test_balance_error_details_are_in_the_sentence(
    server: Server, http: aiohttp.ClientSession
) -> None:
    url = "https://eachlabs.example/billing?from=bot"
    estimate = {"current_balance": 0.42, "required_estimate": 1.2, "top_up_url": url}
    exact = {"current_balance": "3", "required_balance": 12.5}
    broke = {
        "type": "error",
        "message": "Insufficient balance",
        "error_code": "INSUFFICIENT_BALANCE",
    }
    server.script(
        sse(frame({**broke, "details": estimate}), DONE),
        sse(frame(chunk({**broke, "details": exact})), DONE),
        reply(
            402, {"detail": "no credit", "error_code": "INSUFFICIENT_BALANCE", "details": estimate}
        ),
        reply(402, {"detail": "Payment required", "details": {"current_balance": 0}}),
    )
    agent = client(http, server.url)
    with pytest.raises(PaymentRequired) as err:
        await collect(agent.stream("hi", session_id="s"))
    assert err.value.user_message == (
        "The Eachlabs account is out of credit (balance $0.42; this needs about $1.20). "
        f"An admin can top it up here: {url}"
    )
    assert "top_up_url" in err.value.detail  # the log keeps what was sent
    with pytest.raises(PaymentRequired) as err:
        await collect(agent.stream("hi", session_id="s"))
    assert err.value.user_message == (
        "The Eachlabs account is out of credit (balance $3.00; this needs $12.50). "
        "An admin needs to top it up."
    )
    with pytest.raises(PaymentRequired) as err:
        await agent.complete("hi", session_id="s")
    assert "balance $0.42" in err.value.user_message and url in err.value.user_message
    with pytest.raises(PaymentRequired) as err:
        await agent.complete("hi", session_id="s")
    assert "(balance $0.00)" in err.value.user_message


@pytest.mark.parametrize(
    ("code", "words"),
    [
        ("TIMEOUT", "each::sense ran out of time on this request"),
        ("CONTENT_FILTER", "each::sense's content filter blocked this request"),
    ],
)
async def test_timeout_and_content_filter_have_their_own_sentences(
    server: Server, http: aiohttp.ClientSession, code: str, words: str
) -> None:
    event = {"type": "error", "message": "internal wording", "error_code": code}
    server.script(sse(frame(event), DONE), reply(500, {"detail": "x", "error_code": code}))
    agent = client(http, server.url)
    with pytest.raises(AgentError) as err:
        await collect(agent.stream("hi", session_id="s"))
    assert err.value.code == code and err.value.user_message.startswith(words)
    with pytest.raises(AgentError) as err:
        await agent.complete("hi", session_id="s")
    assert err.value.code == code and err.value.user_message.startswith(words)
    assert len(server.seen) == 2  # neither is retried


async def test_error_body_with_code_is_agent_error_not_retried(
    server: Server, http: aiohttp.ClientSession
) -> None:
    server.script(reply(409, {"detail": "Session is busy", "error_code": "SESSION_BUSY"}))
    # (SESSION_BUSY itself is waited out unless that is turned off: see the tests below)
    with pytest.raises(AgentError) as err:
        await collect(client(http, server.url, busy_retry_seconds=0).stream("hi", session_id="s"))
    assert err.value.code == "SESSION_BUSY" and err.value.status == 409
    assert len(server.seen) == 1


BUSY = {"type": "error", "message": "busy", "error_code": "SESSION_BUSY"}


async def test_session_busy_before_any_event_is_sent_again(
    server: Server, http: aiohttp.ClientSession
) -> None:
    server.script(
        sse(frame(chunk(BUSY)), DONE),
        reply(409, {"detail": "Session is busy", "error_code": "SESSION_BUSY"}),
        sse(b": ping\n\n", frame(BUSY), DONE),  # a comment is not an event of the turn
        sse(frame({"type": "thinking_delta", "content": "x"}), frame(chunk(content="hi")), DONE),
    )
    events = await collect(client(http, server.url).stream("draw", session_id="s1"))
    assert events == [ThinkingDelta("x"), TextResponse("hi"), Complete()]
    assert len(server.seen) == 4
    assert all(seen.body == server.seen[0].body for seen in server.seen)
    gaps = [b.at - a.at for a, b in itertools.pairwise(server.seen)]
    assert all(gap >= 0.2 for gap in gaps) and gaps[1] > gaps[0]  # backing off


async def test_session_busy_after_an_event_is_never_sent_again(
    server: Server, http: aiohttp.ClientSession
) -> None:
    for first in ({"type": "thinking_delta", "content": "x"}, {"type": "task_started"}):
        server.seen.clear()
        server.script(sse(frame(first), frame(BUSY), DONE), sse(frame(chunk(content="no")), DONE))
        got: list[Event] = []
        with pytest.raises(AgentError) as err:
            await collect(client(http, server.url).stream("draw", session_id="s1"), got)
        assert err.value.code == "SESSION_BUSY"
        assert len(server.seen) == 1  # the turn had begun: it might be generating
        assert got == ([ThinkingDelta("x")] if first["type"] == "thinking_delta" else [])


async def test_session_busy_retries_are_bounded(
    server: Server, http: aiohttp.ClientSession
) -> None:
    server.script(sse(frame(BUSY), DONE))  # busy for ever
    started = time.monotonic()
    with pytest.raises(AgentError) as err:
        await collect(client(http, server.url, busy_retry_seconds=0.6).stream("x", session_id="s"))
    took = time.monotonic() - started
    assert err.value.code == "SESSION_BUSY" and "still answering" in err.value.user_message
    assert 0.55 < took < 3 and 2 <= len(server.seen) <= 4


async def test_complete_waits_out_a_busy_session(
    server: Server, http: aiohttp.ClientSession
) -> None:
    answer = {"choices": [{"message": {"content": "ok"}}], "session_id": "s"}
    server.script(
        reply(409, {"detail": "Session is busy", "error_code": "SESSION_BUSY"}),
        reply(200, answer),
    )
    done = await client(http, server.url).complete("x", session_id="s")
    assert done.content == "ok" and len(server.seen) == 2


# --- timeouts --------------------------------------------------------------------------


async def test_stall_is_idle_timeout(server: Server, http: aiohttp.ClientSession) -> None:
    server.script(stall_after(server, frame({"type": "thinking_delta", "content": "x"})))
    got: list[Event] = []
    start = time.monotonic()
    with pytest.raises(IdleTimeout):
        await collect(client(http, server.url, idle_timeout=0.2).stream("hi", session_id="s"), got)
    assert 0.15 < time.monotonic() - start < 3
    assert got == [ThinkingDelta("x")]
    assert len(server.seen) == 1


async def test_slow_but_steady_stream_is_not_a_timeout(
    server: Server, http: aiohttp.ClientSession
) -> None:
    pieces = [frame({"type": "progress", "message": f"{i}"}) for i in range(6)]
    server.script(sse(*pieces, DONE, gap=0.08))
    start = time.monotonic()
    events = await collect(client(http, server.url, idle_timeout=0.2).stream("hi", session_id="s"))
    assert time.monotonic() - start > 0.3  # longer in total than the idle timeout
    assert len(events) == 7 and events[-1] == Complete()


# --- complete() ------------------------------------------------------------------------


async def test_complete_parses_the_answer(server: Server, http: aiohttp.ClientSession) -> None:
    body = {
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Here you go"}}],
        "generations": ["https://cdn/1.png", "https://cdn/2.png"],
        "session_id": "sess",
        "task_id": "task",
    }
    server.script(reply(500, {"detail": "blip"}), reply(200, body))
    answer = await client(http, server.url).complete("draw", session_id="sess", mode="eco")
    assert answer == Completion(
        "Here you go", ("https://cdn/1.png", "https://cdn/2.png"), "sess", "task"
    )
    assert len(server.seen) == 2
    assert server.seen[1].body["stream"] is False and server.seen[1].body["mode"] == "eco"
    assert server.seen[1].headers["Accept"] == "application/json"


async def test_complete_errors(server: Server, http: aiohttp.ClientSession) -> None:
    server.script(
        reply(401, {"detail": "Invalid API key."}),
        reply(402, {"detail": "no credit", "error_code": "INSUFFICIENT_BALANCE"}),
        reply(500, {"detail": "failed", "error_code": "GENERATION_FAILED"}),
    )
    agent = client(http, server.url)
    with pytest.raises(AuthError):
        await agent.complete("x", session_id="s")
    with pytest.raises(PaymentRequired):
        await agent.complete("x", session_id="s")
    with pytest.raises(AgentError) as err:
        await agent.complete("x", session_id="s")
    assert err.value.code == "GENERATION_FAILED"
    assert len(server.seen) == 3  # a failure the agent reports is not retried


async def test_rate_limit_sentence_reads_well_for_one_second(
    server: Server, http: aiohttp.ClientSession
) -> None:
    server.script(reply(429, {"detail": "slow", "retry_after": 1}))
    with pytest.raises(RateLimited) as err:
        await collect(client(http, server.url, max_retries=0).stream("hi", session_id="s"))
    assert "try again in a second." in err.value.user_message
