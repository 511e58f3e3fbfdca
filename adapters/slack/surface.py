"""`SlackSurface`: one Slack thread as the core sees it (`bot.ports.Surface`).

A View becomes a fallback `text` plus Block Kit blocks: a context block for the status line,
mrkdwn sections for the text, an actions block for the buttons. Everything a person or the
agent wrote is escaped (`&`, `<`, `>`), so nobody can smuggle `<!everyone>` or `<@U…>` into a
message; messages also go out with `link_names=False`.

Posts wait for the channel's budget and edits go through the workspace's `EditScheduler`
(see `ratelimit.py`); live edits return at once (the scheduler coalesces them), final edits
wait until Slack has them.

`chat.update` is one budget for the whole workspace, `chat.postMessage` one per channel. So a
message whose edit cannot get `chat.update` in time grows by *continuation* instead: the text
it does not show yet is posted, on the channel's budget, as the next message in the thread,
and later edits extend that one. A final edit does not wait for `chat.update` at all when the
channel can take a post now. The thread then shows the answer in a few consecutive messages
whose texts joined are exactly the answer; the status line and buttons stay on the first of
them while the answer streams and move to the last with the final edit (the first one is then
tidied up on `chat.update`'s budget, at the lowest priority). A continuation is only posted
while the message is the newest one this surface posted in the thread (never after a later
page or file, which would put text out of order) and only when its new text extends both what
is shown and what was asked for before (an answer growing, not a text being replaced).
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from dataclasses import dataclass
from functools import partial
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.ratelimit import SlackLimiter, retry_after_of
from bot.buttons import encode_button
from bot.errors import BotError
from bot.i18n import N_, _
from bot.models import ButtonAction, MediaFile, SurfaceLimits, View
from bot.render import split_text

log = logging.getLogger(__name__)

MIN_EDIT_INTERVAL = 1.0
MAX_TEXT = 3500  # Slack answers msg_too_long near 4,000 characters of text
SECTION_CHARS = 2900  # a section's text may hold 3,000
FALLBACK_CHARS = 3000
SLACK_MAX_UPLOAD = 1024**3  # Slack's own per-file cap
MAX_BUTTONS = 25  # per actions block
UPLOAD_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=300)
MAX_PARTS = 30  # continuations of one message before its edits just wait for chat.update
LOCKED_RETRY = 0.05  # seconds before a continuation tries again while a post is under way

_BOLD = re.compile(r"\*\*(.+?)\*\*", re.S)
_STRIKE = re.compile(r"~~(.+?)~~", re.S)
_LINK = re.compile(r"\[([^\]\n]+)\]\((https?://[^\s)]+)\)")
_HEADING = re.compile(r"^#{1,6}\s+(.+)$", re.M)
_LINK_LINES = {
    "image": N_("Generated image: {link}"),
    "video": N_("Generated video: {link}"),
    "audio": N_("Generated audio: {link}"),
    "file": N_("Generated file: {link}"),
}


def escape(text: str) -> str:
    """Slack's three control characters; after this no mention or link can be injected."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_mrkdwn(markdown: str) -> str:
    """The agent's Markdown as Slack mrkdwn, minimally: bold, strike, headings, links.
    Code spans and blocks are left as they are (Slack renders backticks the same way)."""
    pieces = re.split(r"(```.*?```|`[^`\n]*`)", markdown, flags=re.S)
    out: list[str] = []
    for i, piece in enumerate(pieces):
        if i % 2:  # code: escape only
            out.append(escape(piece))
            continue
        text = escape(piece)
        text = _LINK.sub(lambda m: f"<{m.group(2)}|{m.group(1).replace('|', '¦')}>", text)
        text = _BOLD.sub(r"*\1*", text)
        text = _STRIKE.sub(r"~\1~", text)
        text = _HEADING.sub(r"*\1*", text)
        out.append(text)
    return "".join(out)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render(view: View) -> tuple[str, list[dict[str, Any]]]:
    """(fallback text, blocks) for one View."""
    blocks: list[dict[str, Any]] = []
    body = to_mrkdwn(view.text) if view.text.strip() else ""
    if view.by:  # our own mention syntax, added after escaping: it cannot be forged
        body = f"<@{escape(view.by)}> {body}"
    for part in split_text(body, SECTION_CHARS):  # joined, the sections are the page exactly
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": part}})
    if view.status:
        status = _clip(to_mrkdwn(view.status), 2000)
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": status}]})
    blocks.extend(button_blocks(view))
    fallback = body or (escape(view.status) if view.status else "")
    return _clip(fallback, FALLBACK_CHARS) or "…", blocks


def button_blocks(view: View) -> list[dict[str, Any]]:
    elements: list[dict[str, Any]] = []
    for button in view.buttons[:MAX_BUTTONS]:
        element: dict[str, Any] = {
            "type": "button",
            "text": {"type": "plain_text", "text": _clip(button.label, 75), "emoji": True},
            "action_id": encode_button(button),
            "value": button.value[:2000],
        }
        if button.style:
            element["style"] = button.style
        elements.append(element)
    return [{"type": "actions", "elements": elements}] if elements else []


def link_text(url: str, *, kind: str, reason: str) -> str:
    safe = url.replace("&", "&amp;").replace("<", "%3C").replace(">", "%3E").replace("|", "%7C")
    line = _(_LINK_LINES.get(kind, _LINK_LINES["file"])).format(link=f"<{safe}>")
    return f"{line}\n_{escape(reason)}_" if reason else line


@dataclass(slots=True)
class _Part:
    """One Slack message showing part of a message's text, from `start` on."""

    ts: str
    start: int
    shown: View | None  # what it shows (None: unknown, it was posted by an earlier process)


@dataclass(slots=True)
class _Message:
    """A message as the core sees it (its id is its first part's ts) and its parts."""

    parts: list[_Part]
    wanted: View  # the newest view asked for
    written_at: float  # when it was last written (the limiter's clock)
    closed: bool = False  # its final edit was asked for
    growing: bool = True  # the newest view's text extends the one asked for before it

    def shown_text(self) -> str | None:
        if any(part.shown is None for part in self.parts):
            return None
        return "".join(part.shown.text for part in self.parts if part.shown is not None)

    def desired(self, index: int) -> View:
        """What part `index` should show: its slice of the text; the status line and buttons
        on the first part while live, on the last once closed (a first part left without text,
        the "thinking" message the answer went past, keeps the final status line)."""
        view, parts = self.wanted, self.parts
        start = parts[index].start
        end = parts[index + 1].start if index + 1 < len(parts) else len(view.text)
        text = view.text[start:end]
        dressed = index == (len(parts) - 1 if self.closed else 0)
        by = view.by if index == 0 else None
        if dressed:
            return View(text=text, status=view.status, buttons=view.buttons, by=by)
        if index == 0 and not text and not by:
            return View(status=view.status)
        return View(text=text, by=by)


@dataclass
class _Stream:
    """A message being written with Slack's native streaming methods."""

    ts: str
    sent: str = ""
    done: bool = False


@dataclass
class StreamingSwitch:
    """Whether native streaming is on for this workspace; turned off on the first refusal
    so later turns go straight to postMessage + update."""

    enabled: bool
    team_id: str = ""


class SlackSurface:
    """One Slack thread: `channel` + `thread_ts`."""

    def __init__(
        self,
        *,
        client: AsyncWebClient,
        session: aiohttp.ClientSession,
        limiter: SlackLimiter,
        channel: str,
        thread_ts: str,
        max_upload_bytes: int,
        streaming: StreamingSwitch | None = None,
        user_id: str | None = None,
    ) -> None:
        self.client = client
        self.channel = channel
        self.thread_ts = thread_ts
        self._session = session
        self._limiter = limiter
        self._limits = SurfaceLimits(
            min_edit_interval=MIN_EDIT_INTERVAL,
            max_text=MAX_TEXT,
            max_upload_bytes=min(max_upload_bytes, SLACK_MAX_UPLOAD),
        )
        self._streaming = streaming
        self._user_id = user_id
        self._streams: dict[str, _Stream] = {}
        self._messages: dict[str, _Message] = {}
        self._post_lock = asyncio.Lock()  # posts in this thread land in the order decided
        self._newest: str | None = None  # the last message this surface posted here

    @property
    def limits(self) -> SurfaceLimits:
        return self._limits

    # --- messages ------------------------------------------------------------------------

    async def post(self, view: View) -> str:
        if self._wants_stream(view):
            ts = await self._start_stream(view)
            if ts is not None:
                return ts
        async with self._post_lock:
            try:
                response = await self._limiter.post(self.channel, partial(self._post_view, view))
            except SlackApiError as err:
                raise BotError(
                    detail=f"chat.postMessage failed: {err.response.get('error')}"
                ) from err
            ts = str(response["ts"])
            self._newest = ts
        self._messages[ts] = _Message([_Part(ts, 0, view)], view, self._limiter.clock())
        return ts

    async def _post_view(self, view: View) -> Any:
        text, blocks = render(view)
        return await self.client.chat_postMessage(
            channel=self.channel,
            thread_ts=self.thread_ts,
            text=text,
            blocks=blocks,
            parse="none",
            link_names=False,
            unfurl_links=False,
            unfurl_media=False,
        )

    async def edit(self, message_id: str, view: View, *, final: bool = False) -> None:
        stream = self._streams.get(message_id)
        if stream is not None and not stream.done:
            await self._edit_stream(stream, view, final=final)
            return
        message = self._messages.get(message_id)
        if message is None:  # not posted by this surface: one part, content unknown
            message = _Message([_Part(message_id, 0, None)], view, self._limiter.clock())
            self._messages[message_id] = message
        message.growing = view.text.startswith(message.wanted.text)
        message.wanted = view
        key = f"{self.channel}:{message_id}"
        edits = self._limiter.edits
        sync, grow = partial(self._sync, message), partial(self._continue, message)
        if not final:
            due = message.written_at + self._limiter.patience()
            edits.submit(key, sync, fallback=grow, fallback_at=due).add_done_callback(_log_failure)
            return
        message.closed = True
        if not view.status and not view.buttons and self._only_dress(message, key):
            # an earlier page losing its status line and Stop button: its text is all there,
            # so this must not hold the turn up (chat.update may be busy for a while)
            edits.submit(key, sync, tidy=True).add_done_callback(_log_failure)
            self._tidy(message)
            return
        try:
            await edits.send_final(key, sync, fallback=grow)
        except SlackApiError as err:
            log.warning("final chat.update failed: %s", err.response.get("error"))
            raise BotError(detail="chat.update failed") from err
        self._tidy(message)

    def _only_dress(self, message: _Message, key: str) -> bool:
        """Whether every part already shows its text (only the status line and buttons
        differ) and nothing of this message is under way."""
        if self._limiter.edits.busy(key):
            return False
        for index, part in enumerate(message.parts):
            if part.shown is None or part.shown.text != message.desired(index).text:
                return False
        return True

    async def _sync(self, message: _Message) -> bool:
        """Bring the message up to its wanted view with chat.update: its last part (where
        the text grows), and any earlier part whose text is wrong; an earlier part whose
        status line and buttons alone are out of date is left to the tidy-up. False when no
        call was needed."""
        called = False
        last = len(message.parts) - 1
        for index, part in enumerate(message.parts):
            want = message.desired(index)
            if part.shown == want:
                continue
            if index != last and part.shown is not None and part.shown.text == want.text:
                continue
            await self._update(part, want)
            message.written_at = self._limiter.clock()
            called = True
        return called

    async def _sync_part(self, message: _Message, index: int) -> bool:
        part = message.parts[index]
        want = message.desired(index)
        if part.shown == want:
            return False
        await self._update(part, want)
        return True

    async def _update(self, part: _Part, view: View) -> None:
        # rendered when sent: a live edit superseded while queued costs no rendering
        text, blocks = render(view)
        await self.client.chat_update(
            channel=self.channel,
            ts=part.ts,
            text=text,
            blocks=blocks,
            parse="none",
            link_names=False,
        )
        part.shown = view

    def _tidy(self, message: _Message) -> None:
        """Queue chat.update for the earlier parts of a closed message that still show the
        live status line and Stop button (lowest priority: their text is complete)."""
        edits = self._limiter.edits
        for index, part in enumerate(message.parts[:-1]):
            if part.shown != message.desired(index):
                key = f"{self.channel}:{part.ts}:tidy"
                sync = partial(self._sync_part, message, index)
                edits.submit(key, sync, tidy=True).add_done_callback(_log_failure)

    async def _continue(self, message: _Message) -> float:
        """Post what the message does not show yet as its next part, on the channel's post
        budget (the scheduler's fallback). 0 when posted; else seconds to try again later,
        or `inf` when a continuation cannot show this edit."""
        shown = message.shown_text()
        view = message.wanted
        if shown is None or len(message.parts) >= MAX_PARTS or not view.text.startswith(shown):
            return math.inf
        if not message.growing:  # the text was replaced, not extended: not an answer growing
            return math.inf
        rest = view.text[len(shown) :]
        if not message.closed and not rest.strip():
            return math.inf  # nothing new to show (a status change waits for chat.update)
        if self._post_lock.locked():
            return LOCKED_RETRY
        async with self._post_lock:
            if message.parts[-1].ts != self._newest:
                return math.inf  # a later message follows it: text posted now would be out of order
            budget = self._limiter.post_budget(self.channel)
            wait = budget.take()
            if wait > 0:
                return wait
            if message.closed:
                part_view = View(text=rest, status=view.status, buttons=view.buttons)
            else:
                part_view = View(text=rest)
            try:
                response = await self._post_view(part_view)
            except SlackApiError as err:
                retry_after = retry_after_of(err)
                budget.settle(retry_after=retry_after)
                if retry_after is None:
                    raise
                return max(retry_after, LOCKED_RETRY)
            budget.settle()
            ts = str(response["ts"])
            self._newest = ts
            message.parts.append(_Part(ts, len(shown), part_view))
            message.written_at = self._limiter.clock()
        return 0.0

    async def post_link(self, url: str, *, kind: str, reason: str) -> None:
        """The link is already mrkdwn (escaped here), so it is posted as `text` as is."""

        async def send() -> Any:
            return await self.client.chat_postMessage(
                channel=self.channel,
                thread_ts=self.thread_ts,
                text=link_text(url, kind=kind, reason=reason),
                link_names=False,
                unfurl_links=False,
            )

        async with self._post_lock:
            response = await self._limiter.post(self.channel, send)
            self._newest = str(response.get("ts") or "") or None

    # --- files ---------------------------------------------------------------------------

    async def upload(self, media: MediaFile) -> None:
        """The `files_upload_v2` flow, but streaming the file from disk: slack_sdk's helper
        reads the whole file into memory, which a video of hundreds of MB must not do."""
        async with self._post_lock:
            self._newest = None  # the file's message follows whatever was posted before
        got = await self.client.files_getUploadURLExternal(
            filename=media.filename, length=media.size
        )
        handle = await asyncio.to_thread(media.path.open, "rb")
        try:
            async with self._session.post(
                str(got["upload_url"]),
                data=handle,
                headers={"Content-Type": "application/octet-stream"},
                timeout=UPLOAD_TIMEOUT,
            ) as response:
                if response.status != 200:
                    raise BotError(detail=f"upload POST answered {response.status}")
        finally:
            await asyncio.to_thread(handle.close)
        await self.client.files_completeUploadExternal(
            files=[{"id": str(got["file_id"]), "title": media.filename}],
            channel_id=self.channel,
            thread_ts=self.thread_ts,
        )

    # --- native streaming ----------------------------------------------------------------

    # Streamed text is escaped like every other path (`escape` works character by character,
    # so escaping each appended piece equals escaping the whole): without it, `<!channel>`
    # written by the agent would reach Slack as a mention.

    def _wants_stream(self, view: View) -> bool:
        """A live answer (it carries Stop) streams when the workspace allows it."""
        return bool(
            self._streaming is not None
            and self._streaming.enabled
            and any(b.action is ButtonAction.STOP for b in view.buttons)
        )

    async def _start_stream(self, view: View) -> str | None:
        assert self._streaming is not None
        start = partial(
            self.client.chat_startStream,
            channel=self.channel,
            thread_ts=self.thread_ts,
            markdown_text=escape(view.text) or None,
            recipient_team_id=self._streaming.team_id or None,
            recipient_user_id=self._user_id,
        )
        try:
            async with self._post_lock:
                response = await self._limiter.post(self.channel, start)
                self._newest = str(response["ts"])
        except SlackApiError as err:
            if err.response.status_code == 429:
                raise BotError(detail="chat.startStream rate limited") from err
            log.warning(
                "native streaming refused (%s); using chat.update", err.response.get("error")
            )
            self._streaming.enabled = False
            return None
        ts = str(response["ts"])
        self._streams[ts] = _Stream(ts, sent=view.text)
        return ts

    async def _edit_stream(self, stream: _Stream, view: View, *, final: bool) -> None:
        """Append what is new; stop the stream on the final edit or when the renderer moved
        the live part (the Stop button) to a newer message."""
        closing = final or not any(b.action is ButtonAction.STOP for b in view.buttons)
        delta = view.text[len(stream.sent) :] if view.text.startswith(stream.sent) else ""
        try:
            if closing:
                stream.done = True
                footer = View(status=view.status, buttons=view.buttons)
                _, blocks = render(footer)
                await self.client.chat_stopStream(
                    channel=self.channel,
                    ts=stream.ts,
                    markdown_text=escape(delta) or None,
                    blocks=blocks,
                )
            elif delta:
                await self.client.chat_appendStream(
                    channel=self.channel, ts=stream.ts, markdown_text=escape(delta)
                )
            stream.sent += delta
        except SlackApiError as err:
            log.warning("stream update failed: %s", err.response.get("error"))
            if final:
                raise BotError(detail="chat.stopStream failed") from err


def _log_failure(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        err = future.exception()
        detail = err.response.get("error") if isinstance(err, SlackApiError) else repr(err)
        log.warning("chat.update failed: %s", detail)
