"""An offline each::sense that speaks the real protocol over HTTP.

`make run` without credentials, every end-to-end test and the benchmarks talk to this
instead of Eachlabs: same paths, same auth headers, same bodies, both documented stream
shapes (`raw` events and OpenAI chunks with an `eachlabs` object), real PNG/MP4 files for the
generations. Being a real server (not a mock of our client) is the point: the client, the
official `openai` SDK and the product page's `requests` loop all run unchanged against it.

Words in the prompt (case-insensitive) script what a turn does:

=======================  =====================================================================
prompt contains          what happens
=======================  =====================================================================
``video``                one MP4 generation (a longer turn)
``audio``, ``music``,    one MP3 generation (text-to-speech, music)
``song``, ``speech``
``3d``                   one binary glTF (``.glb``) file: neither image, video nor audio
``image``, ``picture``,  one PNG generation; also the default for any other prompt
``draw``
``images:N``             N PNG generations
``no media``,            text only
``just text``
``ask``                  a ``clarification_needed`` event (3 options), no generation
``long``                 about 6,000 characters of text (text only unless a media word is there)
``events:N``             exactly N tiny ``text_response`` events and no delays (benchmarks)
``fail:401``             HTTP 401 ``{"detail": "Invalid API key."}``
``fail:429``             HTTP 429 ``RATE_LIMITED``, ``retry_after: 1``, ``Retry-After: 1``, always
``fail:429-once``        the 429 only on the first attempt of a (session, prompt), then normal
``fail:500``             HTTP 500 ``{"detail": ...}``, always
``fail:500-once``        the 500 only on the first attempt of a (session, prompt), then normal
``fail:error``           a few events, then an ``error`` event ``GENERATION_FAILED``
``fail:balance``         a few events, then an ``error`` event ``INSUFFICIENT_BALANCE`` with
                         ``details`` (balance $0.42, about $1.20 needed, a top-up URL)
``fail:timeout``         a few events, then an ``error`` event ``TIMEOUT``
``fail:filter``          a few events, then an ``error`` event ``CONTENT_FILTER``
``fail:cut``             a few events, then the connection drops (no ``[DONE]``)
``fail:stall``           a few events, then silence until the client leaves or the sim stops
``fail:bigmedia[:B]``    the generation is ``/media/blob/B.mp4`` (default 25 MiB), streamed
=======================  =====================================================================

Without streaming (``stream: false``) the same script runs silently: an ``error`` event becomes
HTTP 402 (``INSUFFICIENT_BALANCE``) or 500 (``GENERATION_FAILED``) with ``error_code``, a cut
closes the connection before any response, and ``SESSION_BUSY`` is HTTP 409; other error codes
are HTTP 500. With streaming,
``SESSION_BUSY`` is an ``error`` event, as the real service sends it.

What the simulator remembers is bounded, since it also serves a keyless bot on real platforms
for as long as that runs: the newest `max_requests` requests (`requests`), the
`max_sessions` most recently used sessions (`sessions`, least recently used dropped first),
and likewise for the job endpoints' records (see `simulator.jobs`).

Other request fields honoured: ``session_id`` (history kept per session, a missing one gets a
fresh id), ``mode`` (``eco`` halves every delay and its text says "eco mode"), ``web_search``
(adds ``web_search_query``/``web_search_citations``), ``image_urls`` (at most 4 http(s) URLs,
else 422; mentioned in the text), ``behavior`` (``plan``: the answer is a numbered plan with
an estimated cost and nothing is generated; ``agent`` and ``ask`` run as usual),
``enable_safety_checker`` (recorded; ``false`` is said in the text).

each::storage (presign, PUT, public URLs) is `simulator.storage`; what was uploaded is in
`Simulator.storage`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import struct
import time
import uuid
import zlib
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from aiohttp import web

log = logging.getLogger(__name__)

DEFAULT_MODEL = "eachsense/beta"
BIGMEDIA_DEFAULT_BYTES = 25 * 1024 * 1024
MAX_HISTORY = 50  # the real service keeps about 50 messages per session
MAX_REQUESTS = 1000  # requests kept for inspection
MAX_SESSIONS = 1000  # sessions kept (least recently used dropped first)
STALL_SECONDS = 3600.0
_BLOB_CHUNK = 64 * 1024

Shape = Literal["openai", "raw"]
Step = tuple[float, dict[str, Any]]
T = TypeVar("T")
K = TypeVar("K")
V = TypeVar("V")


class Recent(list[T]):
    """A list that keeps only its newest `maxlen` items (older ones are dropped as new ones
    are appended). A list, not a deque, so tests keep comparing, slicing and unpacking it."""

    def __init__(self, maxlen: int, items: Iterable[T] = ()) -> None:
        if maxlen < 1:
            raise ValueError("maxlen must be at least 1")
        super().__init__(items)
        self.maxlen = maxlen
        self._trim()

    def append(self, item: T) -> None:
        super().append(item)
        self._trim()

    def _trim(self) -> None:
        if len(self) > self.maxlen:
            del self[: len(self) - self.maxlen]


class Lru(OrderedDict[K, V]):
    """A dict of at most `maxsize` entries; `touch` marks one used, the least recently used
    goes first when a new key would exceed the size."""

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        super().__init__()
        self.maxsize = maxsize

    def __setitem__(self, key: K, value: V) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > self.maxsize:
            self.popitem(last=False)

    def touch(self, key: K) -> None:
        if key in self:
            self.move_to_end(key)


@dataclass(slots=True)
class SimRequest:
    """One chat request as the simulator received it (recorded even when rejected)."""

    path: str
    headers: dict[str, str]
    json: Any
    time: float

    def header(self, name: str) -> str | None:
        """Case-insensitive header lookup (clients differ in how they spell names)."""
        wanted = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == wanted), None)

    @property
    def body(self) -> dict[str, Any]:
        return self.json if isinstance(self.json, dict) else {}

    @property
    def mode(self) -> str | None:
        return self.body.get("mode")

    @property
    def session_id(self) -> str | None:
        return self.body.get("session_id")

    @property
    def prompt(self) -> str:
        return _prompt_of(self.body.get("messages"))


@dataclass(slots=True)
class _Turn:
    """Everything a turn's script needs, decided once when the request arrives."""

    prompt: str
    session_id: str
    task_id: str
    mode: str
    model: str
    number: int
    previous: str | None
    base_url: str
    web_search: bool = False
    image_urls: list[str] = field(default_factory=list)
    behavior: str = "agent"
    safety_checker: bool = True

    @property
    def words(self) -> str:
        return self.prompt.lower()


class Simulator:
    """each::sense on 127.0.0.1 for tests, `make run` and benchmarks.

    `speed` divides every delay (tests use 1000 for near-instant turns); `shape` picks the
    stream shape. With `api_key` set, only that key is accepted; without, anything is.
    `busy_after_stream` keeps a session answering `SESSION_BUSY` for that many seconds (wall
    time, not divided by `speed`) after each of its turns ended, as the real server may while
    it releases the session; `make_busy(session_id, requests=N)` makes its next N requests
    answer `SESSION_BUSY`.
    No global lock sits on the streaming path: only a per-session busy flag, so thousands of
    concurrent streams are fine.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        shape: Shape = "openai",
        speed: float = 1.0,
        api_key: str | None = None,
        max_requests: int = MAX_REQUESTS,
        max_sessions: int = MAX_SESSIONS,
        busy_after_stream: float = 0.0,
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.host = host
        self.port = port
        self.shape: Shape = shape
        self.speed = speed
        self.api_key = api_key
        self.max_requests = max_requests
        self.requests: Recent[SimRequest] = Recent(max_requests)
        self.sessions: Lru[str, list[dict[str, Any]]] = Lru(max_sessions)
        self._busy: set[str] = set()
        self._attempts: Lru[tuple[str, str], int] = Lru(max_sessions)
        # Scripted SESSION_BUSY (the real server's release lag): see `make_busy`.
        self.busy_after_stream = busy_after_stream
        self._busy_requests: Lru[str, int] = Lru(max_sessions)
        self._ended: Lru[str, float] = Lru(max_sessions)
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()
        self.app = self._build_app()

    # --- lifecycle -----------------------------------------------------------------------

    def _build_app(self) -> web.Application:
        from simulator import jobs as simulator_jobs  # that module may refer back to this one
        from simulator import storage as simulator_storage

        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/healthz", self._health)
        app.router.add_get(r"/media/blob/{size:\d+}.mp4", self._blob)
        app.router.add_get("/media/{name}", self._media)
        simulator_jobs.add_routes(app, self)
        simulator_storage.add_routes(app, self)
        return app

    async def start(self) -> None:
        """Listen; with port 0 the OS picks a free port (read it back from `url`)."""
        self._closing.clear()
        # handler_cancellation: a stalled stream ends when its client goes away.
        runner = web.AppRunner(
            self.app, handler_cancellation=True, shutdown_timeout=1.0, access_log=None
        )
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, backlog=4096)
        await site.start()
        self._runner = runner
        self.port = int(runner.addresses[0][1])  # the real port when 0 was asked for
        log.debug("simulator listening on %s", self.url)

    async def stop(self) -> None:
        self._closing.set()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """What `EACHSENSE_BASE_URL` points at."""
        return f"{self.url}/v1"

    def media_url(self, name: str) -> str:
        return f"{self.url}/media/{name}"

    @property
    def storage(self) -> Any:
        """What was uploaded to each::storage (a `simulator.storage.SimStorage`)."""
        from simulator.storage import STORAGE_KEY

        return self.app[STORAGE_KEY]

    # --- chat ----------------------------------------------------------------------------

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await _read_json(request)
        self.requests.append(SimRequest(request.path, dict(request.headers), body, time.time()))
        if not self._authorized(request):
            return _error_body(401, "Invalid API key.")
        problems = _validate(body)
        if problems:
            return web.json_response({"detail": problems}, status=422)
        assert isinstance(body, dict)
        prompt = _prompt_of(body["messages"])
        stream = body.get("stream", True) is not False  # the server's default is streaming
        failure = self._http_failure(prompt, str(body.get("session_id") or ""))
        if failure is not None:
            return failure
        session_id = str(body.get("session_id") or f"sess_{uuid.uuid4().hex[:16]}")
        if session_id in self._busy or self._still_busy(session_id):
            return await self._busy_response(request, session_id=session_id, stream=stream)
        self._busy.add(session_id)
        try:
            turn = self._begin_turn(body, prompt=prompt, session_id=session_id)
            if stream:
                return await self._stream(request, turn)
            return await self._complete(request, turn)
        finally:
            self._busy.discard(session_id)
            if self.busy_after_stream > 0:
                self._ended[session_id] = time.monotonic()

    def make_busy(self, session_id: str, *, requests: int) -> None:
        """Answer `SESSION_BUSY` to the next `requests` requests in `session_id`."""
        self._busy_requests[session_id] = requests

    def _still_busy(self, session_id: str) -> bool:
        """The scripted busy answers (`make_busy`, `busy_after_stream`), counted here."""
        left = self._busy_requests.get(session_id, 0)
        if left > 0:
            self._busy_requests[session_id] = left - 1
            return True
        ended = self._ended.get(session_id)
        return ended is not None and time.monotonic() - ended < self.busy_after_stream

    def _authorized(self, request: web.Request) -> bool:
        """Bearer (documented today) and X-API-Key (the raw examples) are both accepted."""
        if self.api_key is None:
            return True
        auth = request.headers.get("Authorization", "")
        bearer = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        return self.api_key in (bearer, request.headers.get("X-API-Key", ""))

    def _http_failure(self, prompt: str, session_key: str) -> web.Response | None:
        """The scripted HTTP-level failures, checked before any streaming starts."""
        words = prompt.lower()
        attempt = 0
        if "-once" in words:  # counted only here, so ordinary traffic leaves no trace
            attempt = self._attempts.get((session_key, prompt), 0) + 1
            self._attempts[(session_key, prompt)] = attempt
        if "fail:401" in words:
            return _error_body(401, "Invalid API key.")
        if ("fail:429-once" in words and attempt == 1) or re.search(r"fail:429(?!-)", words):
            return web.json_response(
                {
                    "detail": "Rate limit exceeded. Please slow down.",
                    "error_code": "RATE_LIMITED",
                    "retry_after": 1,
                },
                status=429,
                headers={"Retry-After": "1"},
            )
        if ("fail:500-once" in words and attempt == 1) or re.search(r"fail:500(?!-)", words):
            return _error_body(500, "Internal server error (simulated).")
        return None

    async def _busy_response(
        self, request: web.Request, *, session_id: str, stream: bool
    ) -> web.StreamResponse:
        message = "Another request is already running in this session."
        if not stream:
            body = {"detail": message, "error_code": "SESSION_BUSY", "session_id": session_id}
            return web.json_response(body, status=409)
        turn = self._make_turn({}, prompt="", session_id=session_id, history=[])
        resp = await self._open_stream(request, session_id)
        encode = _Encoder(self.shape, turn)
        event = {"type": "error", "message": message, "error_code": "SESSION_BUSY"}
        await resp.write(encode(event) + b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    def _begin_turn(self, body: dict[str, Any], *, prompt: str, session_id: str) -> _Turn:
        history = self._history(session_id)
        turn = self._make_turn(body, prompt=prompt, session_id=session_id, history=history)
        history.append({"role": "user", "content": prompt})
        del history[:-MAX_HISTORY]
        return turn

    def _make_turn(
        self,
        body: dict[str, Any],
        *,
        prompt: str,
        session_id: str,
        history: list[dict[str, Any]],
    ) -> _Turn:
        earlier = [m["content"] for m in history if m.get("role") == "user"]
        image_urls = body.get("image_urls")
        return _Turn(
            prompt=prompt,
            session_id=session_id,
            task_id=f"task_{uuid.uuid4().hex[:16]}",
            mode="eco" if body.get("mode") == "eco" else "max",
            model=str(body.get("model") or DEFAULT_MODEL),
            number=len(earlier) + 1,
            previous=earlier[-1] if earlier else None,
            base_url=self.url,
            web_search=bool(body.get("web_search")),
            behavior=str(body.get("behavior") or "agent"),
            safety_checker=body.get("enable_safety_checker") is not False,
            image_urls=list(image_urls) if isinstance(image_urls, list) else [],
        )

    async def _open_stream(self, request: web.Request, session_id: str) -> web.StreamResponse:
        resp = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
                "X-Session-Id": session_id,
            }
        )
        await resp.prepare(request)
        return resp

    async def _stream(self, request: web.Request, turn: _Turn) -> web.StreamResponse:
        resp = await self._open_stream(request, turn.session_id)
        encode = _Encoder(self.shape, turn)
        text: list[str] = []
        try:
            await resp.write(b": ping\n\n")
            for delay, event in _script(turn):
                await self._sleep(delay, turn.mode)
                kind = event["type"]
                if kind == "_cut":
                    _drop(request)
                    return resp
                if kind == "_stall":
                    await self._stall()
                    return resp
                if kind == "text_response":
                    text.append(event["content"])
                elif kind == "clarification_needed":
                    text.append(event["question"])
                elif kind == "complete":
                    self._remember(turn, "".join(text))
                await resp.write(encode(event))
                if kind == "progress":
                    await resp.write(b": ping\n\n")  # what the real server does in long waits
            await resp.write(b"data: [DONE]\n\n")
            await resp.write_eof()
        except ConnectionError:
            log.debug("client left stream of session %s", turn.session_id)
        return resp

    async def _complete(self, request: web.Request, turn: _Turn) -> web.StreamResponse:
        text: list[str] = []
        generations: list[str] = []
        for delay, event in _script(turn):
            await self._sleep(delay, turn.mode)
            kind = event["type"]
            if kind == "_cut":
                _drop(request)
                return web.Response(status=500)  # never reaches the client: it is gone
            if kind == "_stall":
                await self._stall()
                return _error_body(504, "Simulated stall ended.")
            if kind == "error":
                status = 402 if event["error_code"] == "INSUFFICIENT_BALANCE" else 500
                error = {"detail": event["message"], "error_code": event["error_code"]}
                if "details" in event:
                    error["details"] = event["details"]
                return web.json_response(error, status=status)
            if kind == "text_response":
                text.append(event["content"])
            elif kind == "clarification_needed":
                options = "\n".join(f"{i}. {o}" for i, o in enumerate(event["options"], 1))
                text.append(f"{event['question']}\n{options}")
            elif kind == "generation_response":
                generations.append(event["url"])
        content = "".join(text)
        self._remember(turn, content)
        prompt_tokens = len(turn.prompt.split())
        completion_tokens = len(content.split())
        return web.json_response(
            {
                "id": f"chatcmpl-{turn.task_id}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": turn.model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
                "generations": generations,
                "session_id": turn.session_id,
                "task_id": turn.task_id,
            }
        )

    def _remember(self, turn: _Turn, content: str) -> None:
        history = self._history(turn.session_id)
        history.append({"role": "assistant", "content": content})
        del history[:-MAX_HISTORY]

    def _history(self, session_id: str) -> list[dict[str, Any]]:
        """The session's messages (a new session if unknown), marked as just used."""
        history = self.sessions.get(session_id)
        if history is None:
            history = self.sessions[session_id] = []
        else:
            self.sessions.touch(session_id)
        return history

    async def _sleep(self, delay: float, mode: str) -> None:
        if delay <= 0:
            return
        await asyncio.sleep(delay * (0.5 if mode == "eco" else 1.0) / self.speed)

    async def _stall(self) -> None:
        """Silence without closing; ends when the client leaves (cancelled) or on `stop()`."""
        try:
            await asyncio.wait_for(self._closing.wait(), timeout=STALL_SECONDS)
        except TimeoutError:
            pass

    # --- other endpoints -----------------------------------------------------------------

    async def _models(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _error_body(401, "Invalid API key.")
        created = int(time.time())
        return web.json_response(
            {
                "object": "list",
                "data": [
                    {
                        "id": DEFAULT_MODEL,
                        "object": "model",
                        "created": created,
                        "owned_by": "eachlabs",
                    },
                ],
            }
        )

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _media(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if not re.fullmatch(r"[A-Za-z0-9_.-]+\.(png|mp4|mp3|glb)", name):
            raise web.HTTPNotFound()
        if name.endswith(".png"):
            return web.Response(body=png_bytes(name), content_type="image/png")
        if name.endswith(".mp3"):
            return web.Response(body=mp3_bytes(name), content_type="audio/mpeg")
        if name.endswith(".glb"):
            return web.Response(body=glb_bytes(name), content_type="model/gltf-binary")
        return web.Response(body=mp4_bytes(name), content_type="video/mp4")

    async def _blob(self, request: web.Request) -> web.StreamResponse:
        """`size` bytes of MP4-looking data, streamed so a 1 GiB blob costs no memory."""
        size = int(request.match_info["size"])
        resp = web.StreamResponse(headers={"Content-Type": "video/mp4"})
        resp.content_length = size
        await resp.prepare(request)
        if request.method == "HEAD":
            return resp
        header = _ftyp() + struct.pack(">I", 0) + b"mdat"  # size 0: the box runs to the end
        filler = bytes(_BLOB_CHUNK)
        try:
            await resp.write(header[:size])
            left = size - min(size, len(header))
            while left > 0:
                piece = filler if left >= _BLOB_CHUNK else filler[:left]
                await resp.write(piece)
                left -= len(piece)
            await resp.write_eof()
        except ConnectionError:
            log.debug("client left blob download of %d bytes", size)
        return resp


# --- the script of a turn --------------------------------------------------------------------


def _script(turn: _Turn) -> Iterator[Step]:
    """The events of one turn, each with the delay (seconds at speed 1, max mode) before it.

    Events whose type starts with `_` are actions for the writer (drop, stall), never sent.
    A generator, so a 2,000-event benchmark turn never sits in memory.
    """
    words = turn.words
    count = re.search(r"events:(\d+)", words)
    if count:
        for i in range(int(count.group(1))):
            yield 0.0, {"type": "text_response", "content": f"t{i} "}
        yield 0.0, _complete_event(turn, [])
        return
    yield from _thinking(turn)
    if turn.web_search:
        yield from _web_search(turn)
    if turn.behavior == "plan":
        yield from _plan(turn)
        return
    failure = re.search(r"fail:(error|balance|timeout|filter|cut|stall)", words)
    if failure:
        yield from _failure(failure.group(1), turn)
        return
    if re.search(r"\bask\b", words):
        yield (
            0.2,
            {
                "type": "clarification_needed",
                "question": f'Which style would you like for "{_short(turn.prompt)}"?',
                "options": ["Photorealistic", "Watercolor", "Pixel art"],
                "context": "The request can be drawn in several styles.",
            },
        )
        yield 0.05, _complete_event(turn, [])
        return
    kind, count_media = _media_plan(words)
    yield from _text(_intro(turn, kind, count_media), delay=0.02)
    generations: list[str] = []
    for index in range(count_media):
        url = _media_url_for(turn, kind=kind, index=index)
        yield from _generation(turn, url=url, kind=kind, generations=generations, total=count_media)
    yield from _text(_outro(kind, count_media), delay=0.02)
    if re.search(r"\blong\b", words):
        yield from _text(_long_text(), delay=0.005, words_per_piece=8)
    yield 0.05, _complete_event(turn, generations)


def _thinking(turn: _Turn) -> Iterator[Step]:
    pieces = [
        "Let me think… ",
        f'the person wants "{_short(turn.prompt, 60)}". ',
        "I'll plan the steps, ",
        "pick a model ",
        f"and keep it quick ({turn.mode} mode).",
    ]
    for piece in pieces:
        yield 0.08, {"type": "thinking_delta", "content": piece}
    yield 0.1, {"type": "status", "message": "Planning the request", "tool_name": "planner"}


def _plan(turn: _Turn) -> Iterator[Step]:
    """`behavior: "plan"`: what would run and what it would cost, and nothing generated."""
    kind, count = _media_plan(turn.words)
    what = "a text answer" if count == 0 else f"{count} {kind}(s)"
    cost = 0.0 if count == 0 else count * (0.35 if kind == "video" else 0.04)
    plan = (
        f'**Plan** for "{_short(turn.prompt)}" ({turn.mode} mode):\n'
        f"1. Write a detailed prompt from the request.\n"
        f"2. Generate {what} with {'veo3-fast' if kind == 'video' else 'flux-2-pro'}.\n"
        f"3. Check the result and describe it.\n\n"
        f"**Estimated cost:** about ${cost:.2f}. Nothing has run yet."
    )
    yield from _text(plan, delay=0.01)
    yield 0.05, _complete_event(turn, [])


def _web_search(turn: _Turn) -> Iterator[Step]:
    yield 0.1, {"type": "web_search_query", "query": _short(turn.prompt, 80)}
    citation = {
        "title": "Example reference",
        "url": "https://example.com/reference",
        "snippet": "A page the agent read while answering.",
    }
    yield 0.2, {"type": "web_search_citations", "citations": [citation]}


_ERROR_EVENTS: dict[str, tuple[str, str]] = {
    "error": ("GENERATION_FAILED", "The generation failed (simulated)."),
    "balance": ("INSUFFICIENT_BALANCE", "Insufficient balance. Please top up your account."),
    "timeout": ("TIMEOUT", "The request took too long (simulated)."),
    "filter": ("CONTENT_FILTER", "The request was blocked by the content filter (simulated)."),
}


def _failure(kind: str, turn: _Turn) -> Iterator[Step]:
    yield 0.1, {"type": "status", "message": "Generating", "tool_name": "image_generation"}
    yield 0.1, {"type": "progress", "message": "Generating", "percent": 10}
    if kind not in _ERROR_EVENTS:
        yield 0.05, {"type": f"_{kind}"}
        return
    code, message = _ERROR_EVENTS[kind]
    event: dict[str, Any] = {"type": "error", "message": message, "error_code": code}
    if kind == "balance":
        event["details"] = {
            "current_balance": 0.42,
            "required_estimate": 1.2,
            "top_up_url": f"{turn.base_url}/top-up",
        }
    yield 0.1, event


def _media_plan(words: str) -> tuple[str, int]:
    """(kind, how many) of the generations a prompt asks for."""
    if "no media" in words or "just text" in words:
        return "text", 0
    if "fail:bigmedia" in words or "video" in words:
        return "video", 1
    if re.search(r"\b(audio|music|song|speech)\b", words):
        return "audio", 1
    if re.search(r"\b3d\b", words):
        return "model", 1
    many = re.search(r"images:(\d+)", words)
    if many:
        return "image", int(many.group(1))
    if re.search(r"\blong\b", words) and not re.search(r"image|picture|draw", words):
        return "text", 0
    return "image", 1


def _media_url_for(turn: _Turn, *, kind: str, index: int) -> str:
    big = re.search(r"fail:bigmedia(?::(\d+))?", turn.words)
    if big:
        size = int(big.group(1) or BIGMEDIA_DEFAULT_BYTES)
        return f"{turn.base_url}/media/blob/{size}.mp4"
    ext = {"video": "mp4", "audio": "mp3", "model": "glb"}.get(kind, "png")
    return f"{turn.base_url}/media/{turn.task_id}-{index}.{ext}"


def _generation(
    turn: _Turn, *, url: str, kind: str, generations: list[str], total: int
) -> Iterator[Step]:
    tool = "video_generation" if kind == "video" else "image_generation"
    model = "veo3-fast" if kind == "video" else "flux-2-pro"
    steps = 8 if kind == "video" else 4
    step_delay = 0.35 if kind == "video" else 0.25
    yield 0.1, {"type": "status", "message": f"Generating {kind}", "tool_name": tool}
    yield (
        0.05,
        {
            "type": "tool_call",
            "name": f"generate_{kind}",
            "input": {"prompt": _short(turn.prompt, 120), "model": model},
        },
    )
    for step in range(1, steps + 1):
        percent = round(100 * step / steps)
        yield step_delay, {"type": "progress", "message": f"Generating {kind}", "percent": percent}
    generations.append(url)
    yield (
        0.15,
        {
            "type": "generation_response",
            "url": url,
            "generations": list(generations),
            "total": total,
            "model": model,
            "execution_time_ms": int(step_delay * steps * 1000),
        },
    )


def _text(text: str, *, delay: float, words_per_piece: int = 1) -> Iterator[Step]:
    """Split text into word-sized pieces that join back to exactly `text`."""
    tokens = re.findall(r"\S+\s*|\s+", text)
    for start in range(0, len(tokens), words_per_piece):
        piece = "".join(tokens[start : start + words_per_piece])
        yield delay, {"type": "text_response", "content": piece}


def _intro(turn: _Turn, kind: str, count: int) -> str:
    memory = f'; earlier you asked: "{_short(turn.previous, 80)}"' if turn.previous else ""
    refs = f" with {len(turn.image_urls)} reference image(s)" if turn.image_urls else ""
    if not turn.safety_checker:
        refs += " (safety checker off)"
    what = (
        "a text answer"
        if count == 0
        else (f"{count} {kind}(s)" if count > 1 else f"{_article(kind)} {kind}")
    )
    return (
        f'Working on "{_short(turn.prompt)}"{refs} in {turn.mode} mode '
        f"(turn {turn.number} in this session{memory}). I'll make {what}. "
    )


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _outro(kind: str, count: int) -> str:
    if count == 0:
        return "This is a text-only answer from the simulator."
    if count == 1:
        return f"Here is your {kind}."
    return f"Here are your {count} {kind}s."


def _long_text() -> str:
    """About 6,000 characters in numbered paragraphs, to exercise splitting at limits."""
    sentence = (
        "This paragraph is part of a long answer that exercises splitting at message limits, "
        "so it keeps going with plain words and numbered sentences."
    )
    paragraphs: list[str] = []
    length = 0
    while length < 6000:
        paragraphs.append(f"\n\n{len(paragraphs) + 1}. {sentence}")
        length += len(paragraphs[-1])
    return "".join(paragraphs)


def _complete_event(turn: _Turn, generations: list[str]) -> dict[str, Any]:
    return {
        "type": "complete",
        "status": "completed",
        "generations": list(generations),
        "task_id": turn.task_id,
        "session_id": turn.session_id,
    }


def _short(text: str | None, limit: int = 200) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Encoder:
    """Turns an event into its SSE frame in the configured shape."""

    def __init__(self, shape: Shape, turn: _Turn) -> None:
        self.shape = shape
        self.turn = turn
        self.created = int(time.time())

    def __call__(self, event: dict[str, Any]) -> bytes:
        payload = event if self.shape == "raw" else self._chunk(event)
        return b"data: " + json.dumps(payload, ensure_ascii=False).encode() + b"\n\n"

    def _chunk(self, event: dict[str, Any]) -> dict[str, Any]:
        last = event["type"] == "complete"
        content = event.get("content", "") if event["type"] == "text_response" else ""
        chunk: dict[str, Any] = {
            "id": f"chatcmpl-{self.turn.task_id}",
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.turn.model,
            "choices": [
                {
                    "index": 0,
                    "delta": {} if last else {"content": content},
                    "finish_reason": "stop" if last else None,
                }
            ],
            "session_id": self.turn.session_id,
            "eachlabs": event,
        }
        if last:
            chunk["generations"] = event["generations"]
        return chunk


# --- media files -----------------------------------------------------------------------------


def png_bytes(seed: str, *, size: int = 96) -> bytes:
    """A real PNG: a checkerboard of two colours derived from `seed` (same seed, same bytes)."""
    digest = hashlib.sha256(seed.encode()).digest()
    first, second = digest[0:3], digest[3:6]
    rows = []
    for y in range(size):
        row = bytearray(b"\x00")  # filter type 0 for every scanline
        for x in range(size):
            row += first if (x // 12 + y // 12) % 2 == 0 else second
        rows.append(bytes(row))
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"".join(rows), 9))
        + _png_chunk(b"IEND", b"")
    )


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(tag + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)


def mp4_bytes(seed: str) -> bytes:
    """A minimal ISO-BMFF file (ftyp, moov/mvhd, mdat) whose payload depends on `seed`."""
    duration_ms = 5000
    mvhd = (
        struct.pack(">B3xIIII", 0, 0, 0, 1000, duration_ms)
        + struct.pack(">IH10x", 0x00010000, 0x0100)  # rate 1.0, volume 1.0
        + struct.pack(">9I", 0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000)
        + bytes(24)
        + struct.pack(">I", 2)  # next track id
    )
    payload = b"".join(hashlib.sha256(f"{seed}:{i}".encode()).digest() for i in range(128))
    return _ftyp() + _box(b"moov", _box(b"mvhd", mvhd)) + _box(b"mdat", payload)


def mp3_bytes(seed: str) -> bytes:
    """An ID3v2 tag and a few MPEG-1 Layer III frame headers with `seed`-derived payloads."""
    tag = b"ID3\x04\x00\x00\x00\x00\x00\x00"
    frame = b"\xff\xfb\x90\x64"  # 128 kbit/s, 44.1 kHz: 417-byte frames
    payload = hashlib.sha256(seed.encode()).digest() * 13
    return tag + b"".join(frame + payload[:413] for _ in range(8))


def glb_bytes(seed: str) -> bytes:
    """A binary glTF 2.0 container with one JSON chunk (a 3D model's file format)."""
    body = json.dumps({"asset": {"version": "2.0", "generator": f"simulator {seed}"}}).encode()
    body += b" " * (-len(body) % 4)
    chunk = struct.pack("<II", len(body), 0x4E4F534A) + body
    return b"glTF" + struct.pack("<II", 2, 12 + len(chunk)) + chunk


def _ftyp() -> bytes:
    return _box(b"ftyp", b"isom" + struct.pack(">I", 512) + b"isomiso2avc1mp41")


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


# --- request helpers -------------------------------------------------------------------------


async def _read_json(request: web.Request) -> Any:
    try:
        return await request.json()
    except (ValueError, UnicodeDecodeError):
        return None


def _validate(body: Any) -> list[dict[str, Any]]:
    """FastAPI-style 422 details for what the real server rejects."""
    if not isinstance(body, dict):
        return [{"type": "json_invalid", "loc": ["body"], "msg": "JSON object expected"}]
    messages = body.get("messages")
    if messages is None:
        return [{"type": "missing", "loc": ["body", "messages"], "msg": "Field required"}]
    if not isinstance(messages, list) or not messages:
        return [
            {
                "type": "too_short",
                "loc": ["body", "messages"],
                "msg": "List should have at least 1 item",
            }
        ]
    image_urls = body.get("image_urls")
    if image_urls is not None and (
        not isinstance(image_urls, list)
        or len(image_urls) > 4
        or not all(isinstance(u, str) and u.startswith(("https://", "http://")) for u in image_urls)
    ):
        return [
            {
                "type": "value_error",
                "loc": ["body", "image_urls"],
                "msg": "At most 4 public image URLs",
            }
        ]
    if not _prompt_of(messages).strip():
        return [
            {"type": "missing", "loc": ["body", "messages", -1, "content"], "msg": "Empty prompt"}
        ]
    return []


def _prompt_of(messages: Any) -> str:
    """The text of the last user message; content may be a string or OpenAI content parts."""
    if not isinstance(messages, list):
        return ""
    for message in reversed(messages):
        if not isinstance(message, dict) or message.get("role", "user") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return " ".join(
                str(part.get("text", ""))
                for part in content
                if isinstance(part, dict) and part.get("type") == "text"
            )
    return ""


def _error_body(status: int, detail: str) -> web.Response:
    return web.json_response({"detail": detail}, status=status)


def _drop(request: web.Request) -> None:
    """Close the socket mid-response so the client sees a broken stream, not a clean end."""
    transport = request.transport
    if transport is not None:
        transport.abort()


async def serve(*, host: str, port: int, shape: str, speed: float) -> None:
    """Run a simulator until cancelled (the `eachsense-bot simulate` command)."""
    chosen: Shape = "raw" if shape == "raw" else "openai"
    sim = Simulator(host=host, port=port, shape=chosen, speed=speed)
    await sim.start()
    log.info("each::sense simulator on %s (set EACHSENSE_BASE_URL=%s)", sim.url, sim.base_url)
    try:
        await asyncio.Event().wait()
    finally:
        await sim.stop()
