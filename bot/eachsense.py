"""The each::sense client: stream one turn as typed events, or ask for one complete answer.

each::sense speaks OpenAI's chat-completions wire format with its own events on top (see the
protocol note). Its public docs show two shapes for the same stream events, a raw
`{"type": ...}` object and an OpenAI chunk carrying an `eachlabs` object; both are accepted.

Failures become the errors of `bot.errors`, each with a sentence a person can read. Requests
are retried (429 after the server's wait, 5xx and connection failures with backoff) only
until the server has accepted the turn: once a stream is open nothing is sent again, so a
turn that started generating (and costing credit) is never run twice. The one exception is a
`SESSION_BUSY` refusal that arrives before any event of the turn: nothing was generated, and
the turn is sent again within `busy_retry_seconds` (`EACHSENSE_BUSY_RETRY_SECONDS`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import aiohttp

from bot.config import Settings
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
    balance_message,
)
from bot.i18n import N_, _, ngettext
from bot.models import (
    AgentMessage,
    ClarificationNeeded,
    Complete,
    Completion,
    Event,
    GenerationResponse,
    Mode,
    Progress,
    Status,
    TextResponse,
    ThinkingDelta,
    ToolCall,
    WebSearchCitations,
    WebSearchQuery,
    WorkflowEvent,
)
from bot.sse import SSEDecoder

log = logging.getLogger(__name__)

MAX_IMAGE_URLS = 4
BACKOFF_BASE = 0.5  # seconds before the first retry of a 5xx or connection failure
BUSY_BACKOFF_BASE = 0.25  # seconds before the first retry of a SESSION_BUSY answer
BUSY_BACKOFF_MAX = 4.0
_MAX_ERROR_BODY = 64 * 1024
_SHORT_DETAIL = 200  # a server `detail` up to this long, on one line, is shown to people

_CODE_MESSAGES = {
    "SESSION_BUSY": N_(
        "This thread is still answering a previous message. "
        "Wait for it to finish, then send your message again."
    ),
    "SESSION_NOT_FOUND": N_(
        "each::sense no longer has this conversation (sessions expire after a while). "
        "Start a new thread to continue."
    ),
    "TIMEOUT": N_(
        "each::sense ran out of time on this request and stopped it. "
        "Send it again, or try a simpler request."
    ),
    "CONTENT_FILTER": N_(
        "each::sense's content filter blocked this request, so nothing was made. Try rewording it."
    ),
}


class _BusyRetry:
    """The waits before sending a turn again that each::sense refused with `SESSION_BUSY`.

    The server can take a moment to release a session after the stream of our previous turn
    ended, and the core never runs two turns of one thread at once, so a busy answer that
    arrives before any event of the turn means "not yet", not "someone else is answering".
    Nothing was generated for it (the turn was refused), so sending the same request again
    cannot run the turn twice. Waits double from `BUSY_BACKOFF_BASE` up to
    `BUSY_BACKOFF_MAX`, all of them within `budget` seconds of the first busy answer; a
    budget of 0 turns the retry off.
    """

    def __init__(self, budget: float) -> None:
        self.budget = budget
        self.attempt = 0
        self._deadline: float | None = None

    def wait(self, err: AgentError) -> float | None:
        """Seconds to wait before sending again, or None to give up (and raise `err`)."""
        if err.code != "SESSION_BUSY" or self.budget <= 0:
            return None
        now = time.monotonic()
        if self._deadline is None:
            self._deadline = now + self.budget
        left = self._deadline - now
        if left <= 0:
            return None
        self.attempt += 1
        return min(BUSY_BACKOFF_BASE * 2 ** (self.attempt - 1), BUSY_BACKOFF_MAX, left)


class EachSenseClient:
    """One per process, on the process's shared `aiohttp.ClientSession` (never its own)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        api_key: str | None,
        base_url: str,
        model: str = "eachsense/beta",
        idle_timeout: float = 300.0,
        connect_timeout: float = 15.0,
        max_retries: int = 3,
        max_retry_wait: float = 60.0,
        busy_retry_seconds: float = 30.0,
    ) -> None:
        self._session = session
        self._api_key = api_key or None
        self._url = base_url.rstrip("/") + "/chat/completions"
        self._model = model
        self._max_retries = max_retries
        self._max_retry_wait = max_retry_wait
        self._busy_retry_seconds = busy_retry_seconds
        # An *idle* timeout: a video turn streams progress for up to ten minutes, so only
        # silence (no byte for `idle_timeout` seconds) counts as a failure.
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout, sock_read=idle_timeout
        )

    @classmethod
    def from_settings(cls, session: aiohttp.ClientSession, settings: Settings) -> EachSenseClient:
        key = settings.eachsense_api_key
        return cls(
            session,
            api_key=key.get_secret_value() if key else None,
            base_url=settings.eachsense_base_url,
            model=settings.eachsense_model,
            idle_timeout=settings.eachsense_idle_timeout,
            connect_timeout=settings.eachsense_connect_timeout,
            max_retries=settings.eachsense_max_retries,
            max_retry_wait=settings.eachsense_max_retry_wait,
            busy_retry_seconds=settings.eachsense_busy_retry_seconds,
        )

    # --- public API --------------------------------------------------------------------

    def stream(
        self,
        prompt: str,
        *,
        session_id: str,
        mode: Mode = "max",
        image_urls: Sequence[str] = (),
        behavior: str | None = None,
        web_search: bool | None = None,
        enable_safety_checker: bool | None = None,
    ) -> AsyncIterator[Event]:
        """Send one user turn and yield its events as they arrive.

        A stream that ends normally always ends with exactly one `Complete`. Raises an
        `UpstreamError` subclass otherwise (`StreamCut`, `IdleTimeout`, `AgentError`, ...).
        Not itself a generator: it hands back `_events`, so each event passes through one
        generator, not two (the client's cost per event is what the stream adds).
        """
        body = self._body(
            prompt,
            stream=True,
            session_id=session_id,
            mode=mode,
            image_urls=image_urls,
            behavior=behavior,
            web_search=web_search,
            enable_safety_checker=enable_safety_checker,
        )
        return self._events(body)

    async def complete(
        self,
        prompt: str,
        *,
        session_id: str,
        mode: Mode = "max",
        image_urls: Sequence[str] = (),
    ) -> Completion:
        """Send one user turn and wait for the whole answer (no streaming)."""
        body = self._body(
            prompt, stream=False, session_id=session_id, mode=mode, image_urls=image_urls
        )
        busy = _BusyRetry(self._busy_retry_seconds)
        while True:
            try:
                async with await self._post(body, accept="application/json") as resp:
                    return self._completion(await self._read_json(resp))
            except AgentError as err:
                # An error answer generated nothing, so a busy session may be asked again.
                wait = busy.wait(err)
                if wait is None:
                    raise
            await self._wait_busy(body, busy, wait)

    # --- request and retries -----------------------------------------------------------

    def _body(
        self,
        prompt: str,
        *,
        stream: bool,
        session_id: str,
        mode: Mode,
        image_urls: Sequence[str],
        behavior: str | None = None,
        web_search: bool | None = None,
        enable_safety_checker: bool | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self._model,
            "messages": [{"role": "user", "content": prompt}],
            "stream": stream,  # the server's default is true: always say which we want
            "session_id": session_id,
            "mode": mode,
        }
        if image_urls:
            if len(image_urls) > MAX_IMAGE_URLS:
                log.info("sending the first %d of %d image URLs", MAX_IMAGE_URLS, len(image_urls))
            body["image_urls"] = list(image_urls[:MAX_IMAGE_URLS])
        if behavior is not None:
            body["behavior"] = behavior
        if web_search is not None:
            body["web_search"] = web_search
        if enable_safety_checker is not None:  # the server's default is on: sent only off
            body["enable_safety_checker"] = enable_safety_checker
        return body

    def _headers(self, accept: str) -> dict[str, str]:
        if not self._api_key:
            raise AuthError(
                _("each::sense is not set up: an admin needs to set EACHSENSE_API_KEY."),
                detail="no each::sense API key configured",
            )
        # Both headers: `Authorization` is what the docs show today, `X-API-Key` what the raw
        # examples use; the service accepts either.
        return {
            "Authorization": f"Bearer {self._api_key}",
            "X-API-Key": self._api_key,
            "Accept": accept,
        }

    async def _post(self, body: dict[str, Any], *, accept: str) -> aiohttp.ClientResponse:
        """POST until the server accepts (2xx), retrying what is safe to retry.

        Returns the open response; the caller owns (and closes) it.
        """
        headers = self._headers(accept)
        attempt = 0
        while True:
            try:
                resp = await self._session.post(
                    self._url, json=body, headers=headers, timeout=self._timeout
                )
            except TimeoutError as exc:  # aiohttp's timeouts are TimeoutErrors too
                if isinstance(exc, aiohttp.ConnectionTimeoutError):
                    error: UpstreamError = ConnectError(detail=self._scrub(f"connect: {exc!r}"))
                else:
                    # The request went out and nothing came back: it may be running, so
                    # sending it again could run the turn twice.
                    raise IdleTimeout(detail="no response headers before the idle timeout") from exc
            except aiohttp.ClientConnectionError as exc:
                error = ConnectError(detail=self._scrub(f"{type(exc).__name__}: {exc}"))
            else:
                if resp.status < 300:
                    return resp
                async with resp:
                    error = await self._http_error(resp)
            wait = self._retry_wait(error, attempt)
            if wait is None:
                raise error
            attempt += 1
            log.warning(
                "each::sense request failed (%s); retry %d/%d in %.2fs",
                error.detail,
                attempt,
                self._max_retries,
                wait,
            )
            await asyncio.sleep(wait)

    def _retry_wait(self, error: UpstreamError, attempt: int) -> float | None:
        """Seconds to wait before retrying `error`, or None to give up."""
        if attempt >= self._max_retries:
            return None
        if isinstance(error, RateLimited):
            wait = error.retry_after if error.retry_after is not None else BACKOFF_BASE * 2**attempt
        elif isinstance(error, ServerError | ConnectError):
            wait = BACKOFF_BASE * 2**attempt
        else:
            return None
        wait = min(wait, self._max_retry_wait)
        return wait + random.uniform(0, wait * 0.1)  # jitter spreads replicas apart

    async def _http_error(self, resp: aiohttp.ClientResponse) -> UpstreamError:
        """Map a non-2xx response to an error (its body is read here)."""
        status = resp.status
        raw = await resp.content.read(_MAX_ERROR_BODY)
        payload = _loads(raw)
        detail_value, code = _error_fields(payload)
        details = _error_details(payload)
        detail_text = self._scrub(_as_text(detail_value) or raw.decode("utf-8", "replace")[:500])
        detail = f"HTTP {status}: {detail_text}" + (f" ({code})" if code else "")
        if status == 429 or code == "RATE_LIMITED":
            retry_after = _number(payload.get("retry_after")) if payload else None
            if retry_after is None:
                retry_after = _number(resp.headers.get("Retry-After"))
            seconds = max(1, math.ceil(retry_after)) if retry_after is not None else 60
            return RateLimited(
                ngettext(
                    "each::sense is busy (rate limited). Please try again in a second.",
                    "each::sense is busy (rate limited). Please try again in about {seconds} "
                    "seconds.",
                    seconds,
                ).format(seconds=seconds),
                detail=detail,
                status=status,
                retry_after=retry_after,
            )
        if code:
            return self._agent_error(
                detail_text, code, details=details, status=status, detail=detail
            )
        if status == 401:
            return AuthError(detail=detail, status=status)
        if status == 402:
            return PaymentRequired(self._balance(details), detail=detail, status=status)
        if status >= 500:
            return ServerError(detail=detail, status=status)
        # Only a plain sentence is shown; structured details (422 validation lists) stay in logs.
        shown = _short(detail_text) if isinstance(detail_value, str) else ""
        user = (
            _("each::sense rejected that request: {reason}").format(reason=shown) if shown else None
        )
        return RequestRejected(user, detail=detail, status=status)

    def _agent_error(
        self,
        message: str,
        code: str | None,
        *,
        details: object = None,
        status: int | None = None,
        detail: str = "",
    ) -> UpstreamError:
        """The error for an `error` event or an error body carrying an `error_code`;
        `details` is the event's `details` object (balances and a top-up link for
        `INSUFFICIENT_BALANCE`)."""
        message = self._scrub(message)
        detail = detail or f"error event: {message}" + (f" ({code})" if code else "")
        if details:
            detail += f" details={self._scrub(_as_text(details))[:500]}"
        if code == "INSUFFICIENT_BALANCE":
            return PaymentRequired(self._balance(details), detail=detail, status=status)
        if code in _CODE_MESSAGES:
            return AgentError(_(_CODE_MESSAGES[code]), detail=detail, code=code, status=status)
        if code == "RATE_LIMITED":
            return RateLimited(detail=detail, status=status)
        shown = _short(message)
        user = _("each::sense reported an error: {reason}").format(reason=shown) if shown else None
        return AgentError(user, detail=detail, code=code, status=status)

    def _balance(self, details: object) -> str | None:
        """The out-of-credit sentence with the balance and top-up link, when given."""
        said = balance_message(details)
        return self._scrub(said) if said else None

    def _scrub(self, text: str) -> str:
        """Remove the API key from text bound for a log or an exception, should a server
        ever echo it back."""
        if self._api_key and self._api_key in text:
            return text.replace(self._api_key, "[key]")
        return text

    # --- responses ---------------------------------------------------------------------

    async def _read_json(self, resp: aiohttp.ClientResponse) -> dict[str, Any]:
        try:
            raw = await resp.read()
        except TimeoutError as exc:  # before ClientConnectionError: aiohttp's is both
            raise IdleTimeout(detail="the answer stopped arriving") from exc
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as exc:
            raise StreamCut(detail=self._scrub(f"reading the answer: {exc!r}")) from exc
        payload = _loads(raw)
        if payload is None:
            raise ServerError(
                _("each::sense sent an answer I could not read. Please try again."),
                detail=f"unparseable completion body: {raw[:200]!r}",
                status=resp.status,
            )
        return payload

    def _completion(self, payload: dict[str, Any]) -> Completion:
        detail_value, code = _error_fields(payload)
        if code or (payload.get("error") and not payload.get("choices")):
            raise self._agent_error(_as_text(detail_value), code, details=_error_details(payload))
        content = ""
        choices = payload.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            message = choices[0].get("message")
            if isinstance(message, dict):
                content = _as_text(message.get("content"))
        return Completion(
            content=content,
            generations=_urls(payload.get("generations")),
            session_id=_opt_str(payload.get("session_id")),
            task_id=_opt_str(payload.get("task_id")),
        )

    async def _events(self, body: dict[str, Any]) -> AsyncIterator[Event]:
        """POST the turn, then decode the SSE body as each network chunk arrives and yield
        events at once. A `SESSION_BUSY` answer before any event of the turn is waited out
        and the same request sent again (see `_BusyRetry`)."""
        busy = _BusyRetry(self._busy_retry_seconds)
        while True:
            started = False  # an event of this turn arrived: it is never sent again
            try:
                async with await self._post(body, accept="text/event-stream") as resp:
                    if resp.content_type == "application/json":
                        # Tolerance: a server that ignored `stream: true` answered in one piece.
                        completion = self._completion(await self._read_json(resp))
                        started = True
                        if completion.content:
                            yield TextResponse(completion.content)
                        yield Complete(
                            generations=completion.generations, task_id=completion.task_id
                        )
                        return
                    decoder = SSEDecoder()
                    finished = False  # an OpenAI `finish_reason` arrived: the turn is over
                    generations: tuple[str, ...] = ()
                    task_id: str | None = None
                    try:
                        read = resp.content.readany  # not `iter_any()`: one generator less
                        while chunk := await read():
                            for sse in decoder.feed(chunk):
                                data = sse.data
                                if data == "[DONE]":
                                    yield Complete(generations=generations, task_id=task_id)
                                    return
                                payload = _loads(data)
                                if payload is None:
                                    log.warning("skipping an unreadable stream line: %.200r", data)
                                    continue
                                event = self._parse(payload)
                                if event is not None:
                                    started = True
                                    yield event
                                    if type(event) is Complete:
                                        return
                                elif not started:
                                    started = _typed(payload)  # an event we do not know
                                if "choices" in payload:  # OpenAI shape: its last chunk ends it
                                    generations = _urls(payload.get("generations")) or generations
                                    task_id = _opt_str(payload.get("task_id")) or task_id
                                    finished = finished or _finish_reason(payload) is not None
                        # A server that closes without the final blank line still meant its
                        # last event.
                        for sse in decoder.close(dispatch_incomplete=True):
                            if sse.data == "[DONE]":
                                finished = True
                    except TimeoutError as exc:
                        raise IdleTimeout(
                            detail="no data from each::sense within the idle timeout"
                        ) from exc
                    except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as exc:
                        raise StreamCut(detail=self._scrub(f"stream broke: {exc!r}")) from exc
                    if not finished:
                        raise StreamCut(detail="the stream ended before [DONE] or a complete event")
                    yield Complete(generations=generations, task_id=task_id)
                    return
            except AgentError as err:
                wait = None if started else busy.wait(err)
                if wait is None:
                    raise
            await self._wait_busy(body, busy, wait)

    async def _wait_busy(self, body: Mapping[str, Any], busy: _BusyRetry, wait: float) -> None:
        log.info(
            "each::sense session %s is still busy; sending the turn again in %.2fs (retry %d)",
            body.get("session_id"),
            wait,
            busy.attempt,
        )
        await asyncio.sleep(wait)

    def _parse(self, chunk: dict[str, Any]) -> Event | None:
        """The event one stream payload carries (either documented shape), if any."""
        eachlabs = chunk.get("eachlabs")
        event = eachlabs if isinstance(eachlabs, dict) and eachlabs else chunk
        kind = event.get("type")
        if isinstance(kind, str):
            # With an `eachlabs` object, `delta.content` repeats it: never emit both.
            if kind == "error":
                raise self._agent_error(
                    _as_text(event.get("message") or event.get("detail")),
                    _opt_str(event.get("error_code") or event.get("code")),
                    details=event.get("details"),
                )
            parsed = _event(kind, event)
            if parsed is None:
                log.debug("skipping each::sense event of unknown type %r", kind)
            return parsed
        text = _delta_content(chunk)
        return TextResponse(text) if text else None


# --- payload helpers (pure) ----------------------------------------------------------------


def _event(kind: str, e: Mapping[str, Any]) -> Event | None:
    """One typed event from a wire event object; None for types we do not know."""
    if kind == "text_response":  # by far the most frequent: first
        content = e.get("content")
        return TextResponse(content if type(content) is str else _as_text(content))
    if kind == "thinking_delta":
        return ThinkingDelta(_as_text(e.get("content")))
    if kind == "status":
        return Status(_as_text(e.get("message")), _opt_str(e.get("tool_name")))
    if kind == "progress":
        return Progress(_as_text(e.get("message")), _number(e.get("percent")))
    if kind == "tool_call":
        return ToolCall(_as_text(e.get("name")), e.get("input"))
    if kind == "message":
        return AgentMessage(_as_text(e.get("content")))
    if kind == "generation_response":
        generations = _urls(e.get("generations"))
        url = _opt_str(e.get("url")) or (generations[-1] if generations else None)
        if not url:
            return None
        total = _number(e.get("total"))
        elapsed = _number(e.get("execution_time_ms"))
        return GenerationResponse(
            url=url,
            generations=generations or (url,),
            total=int(total) if total is not None else None,
            model=_opt_str(e.get("model")),
            execution_time_ms=int(elapsed) if elapsed is not None else None,
        )
    if kind == "clarification_needed":
        options = e.get("options")
        return ClarificationNeeded(
            question=_as_text(e.get("question")),
            options=tuple(_option(o) for o in options) if isinstance(options, list) else (),
            context=_opt_str(e.get("context")),
        )
    if kind == "web_search_query":
        return WebSearchQuery(_as_text(e.get("query")))
    if kind == "web_search_citations":
        return WebSearchCitations(_citations(e.get("citations")))
    if kind.startswith(("workflow_", "execution_")):
        return WorkflowEvent(kind, {k: v for k, v in e.items() if k != "type"})
    if kind == "complete":
        return Complete(
            status=_as_text(e.get("status")) or "completed",
            generations=_urls(e.get("generations")),
            task_id=_opt_str(e.get("task_id")),
        )
    return None


_SCAN = json.JSONDecoder().scan_once  # type: ignore[attr-defined]  # set in __init__


def _loads(raw: str | bytes) -> dict[str, Any] | None:
    """One JSON object. The decoder's scanner directly when the whole string is one value
    (what every event is: about 1.4x faster than `json.loads`, which also checks for trailing
    whitespace), `json.loads` for anything else (bytes, padding, errors)."""
    if isinstance(raw, str) and raw[:1] == "{":
        try:
            value, end = _SCAN(raw, 0)
        except (ValueError, StopIteration):
            return None
        if end == len(raw):
            return value if isinstance(value, dict) else None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _error_fields(payload: dict[str, Any] | None) -> tuple[Any, str | None]:
    """(detail, error_code) from FastAPI-style `{detail, error_code}` or OpenAI-style
    `{error: {message, code}}` bodies."""
    if not payload:
        return None, None
    detail = payload.get("detail")
    code = payload.get("error_code")
    error = payload.get("error")
    if isinstance(error, dict):
        detail = detail or error.get("message")
        code = code or error.get("code")
    elif isinstance(error, str):
        detail = detail or error
    return detail, code if isinstance(code, str) and code else None


def _error_details(payload: dict[str, Any] | None) -> object:
    """An error body's `details` (top level, or inside an OpenAI-style `error` object)."""
    if not payload:
        return None
    details = payload.get("details")
    error = payload.get("error")
    if details is None and isinstance(error, dict):
        details = error.get("details")
    return details


def _typed(chunk: Mapping[str, Any]) -> bool:
    """True when a payload carries a typed each::sense event (of either shape)."""
    eachlabs = chunk.get("eachlabs")
    event = eachlabs if isinstance(eachlabs, dict) and eachlabs else chunk
    return isinstance(event.get("type"), str)


def _delta_content(chunk: Mapping[str, Any]) -> str:
    choices = chunk.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        delta = choices[0].get("delta")
        if isinstance(delta, dict):
            return _as_text(delta.get("content"))
    return ""


def _finish_reason(chunk: Mapping[str, Any]) -> str | None:
    choices = chunk.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        return _opt_str(choices[0].get("finish_reason"))
    return None


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _opt_str(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else str(value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _urls(value: Any) -> tuple[str, ...]:
    """Generations as URL strings; entries may be strings or objects with a `url`."""
    if not isinstance(value, list):
        return ()
    urls = []
    for item in value:
        url = item.get("url") if isinstance(item, dict) else item
        if isinstance(url, str) and url:
            urls.append(url)
    return tuple(urls)


def _option(value: Any) -> str:
    if isinstance(value, dict):
        return _as_text(value.get("label") or value.get("value") or value.get("text"))
    return _as_text(value)


def _citations(value: Any) -> tuple[tuple[str, str], ...]:
    """(title, url) pairs from bare URLs or `{title, url, snippet}` objects."""
    if not isinstance(value, list):
        return ()
    pairs = []
    for item in value:
        if isinstance(item, str) and item:
            pairs.append((item, item))
        elif isinstance(item, dict) and isinstance(item.get("url"), str) and item["url"]:
            pairs.append((_as_text(item.get("title")) or item["url"], item["url"]))
    return tuple(pairs)


def _short(text: str) -> str:
    """`text` if it is safe to show a person as is (short, one line), else ""."""
    text = text.strip()
    if not text or len(text) > _SHORT_DETAIL or "\n" in text:
        return ""
    return text if text.endswith((".", "!", "?")) else text + "."
