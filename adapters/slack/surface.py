"""`SlackSurface`: one Slack thread as the core sees it (`bot.ports.Surface`).

A View becomes a fallback `text` plus Block Kit blocks: a context block for the status line,
mrkdwn sections for the text, an actions block for the buttons. Everything a person or the
agent wrote is escaped (`&`, `<`, `>`), so nobody can smuggle `<!everyone>` or `<@U…>` into a
message; messages also go out with `link_names=False`.

Posts wait for the channel's bucket and edits go through the workspace's `EditScheduler`
(see `ratelimit.py`); live edits return at once (the scheduler coalesces them), final edits
wait until Slack has them.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.ratelimit import SlackLimiter
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

    @property
    def limits(self) -> SurfaceLimits:
        return self._limits

    # --- messages ------------------------------------------------------------------------

    async def post(self, view: View) -> str:
        if self._wants_stream(view):
            ts = await self._start_stream(view)
            if ts is not None:
                return ts
        text, blocks = render(view)
        await self._limiter.before_post(self.channel)
        try:
            response = await self.client.chat_postMessage(
                channel=self.channel,
                thread_ts=self.thread_ts,
                text=text,
                blocks=blocks,
                parse="none",
                link_names=False,
                unfurl_links=False,
                unfurl_media=False,
            )
        except SlackApiError as err:
            raise BotError(detail=f"chat.postMessage failed: {err.response.get('error')}") from err
        return str(response["ts"])

    async def edit(self, message_id: str, view: View, *, final: bool = False) -> None:
        stream = self._streams.get(message_id)
        if stream is not None and not stream.done:
            await self._edit_stream(stream, view, final=final)
            return

        async def send() -> None:
            # rendered when sent: a live edit superseded while queued costs no rendering
            text, blocks = render(view)
            await self.client.chat_update(
                channel=self.channel,
                ts=message_id,
                text=text,
                blocks=blocks,
                parse="none",
                link_names=False,
            )

        key = f"{self.channel}:{message_id}"
        if final:
            try:
                await self._limiter.edits.send_final(key, send)
            except SlackApiError as err:
                log.warning("final chat.update failed: %s", err.response.get("error"))
                raise BotError(detail="chat.update failed") from err
        else:
            self._limiter.edits.submit(key, send).add_done_callback(_log_failure)

    async def post_link(self, url: str, *, kind: str, reason: str) -> None:
        """The link is already mrkdwn (escaped here), so it is posted as `text` as is."""
        await self._limiter.before_post(self.channel)
        await self.client.chat_postMessage(
            channel=self.channel,
            thread_ts=self.thread_ts,
            text=link_text(url, kind=kind, reason=reason),
            link_names=False,
            unfurl_links=False,
        )

    # --- files ---------------------------------------------------------------------------

    async def upload(self, media: MediaFile) -> None:
        """The `files_upload_v2` flow, but streaming the file from disk: slack_sdk's helper
        reads the whole file into memory, which a video of hundreds of MB must not do."""
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
        await self._limiter.before_post(self.channel)
        try:
            response = await self.client.chat_startStream(
                channel=self.channel,
                thread_ts=self.thread_ts,
                markdown_text=escape(view.text) or None,
                recipient_team_id=self._streaming.team_id or None,
                recipient_user_id=self._user_id,
            )
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
