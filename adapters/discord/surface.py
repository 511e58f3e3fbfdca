"""`DiscordSurface`: one Discord thread as the core's `Surface`.

Every request takes a slot from the bot's shared limiter first (one in the thread's window for
its kind, posts or edits, and one in the bot's global window), so the bot stays inside
Discord's ~5 per 5 s per channel and 50 requests/s per bot instead of learning them from
429s. Edits of the same message coalesce: while one waits for a slot, a newer edit replaces
what it will send, so under contention a live message updates less often but always shows
the newest text.

What waits for what: a turn's final edit (and the page it posts) is urgent and may take the
slot each window keeps in reserve, so it never waits for the window; a finished page that
only loses its status line and Stop button is a tidy-up and goes last; the first message of
a conversation that is not a live answer waits behind the running answers; a live answer's
first message waits (`StreamGate`) until the global budget can keep one more answer fresh.
The limiter serves the thread that has gone longest without a write first.
Everything is sent with mentions disabled, and discord.py's errors leave as `PlatformError`
(`errors.py`), as the `Surface` port promises.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import discord

from adapters.discord.errors import discord_errors, platform_error
from adapters.discord.ratelimit import ChannelLimiter, StreamGate, paid, until_answered
from adapters.discord.views import components_of, content_of
from bot.errors import MediaRejected
from bot.i18n import N_, _
from bot.media import format_size
from bot.models import ButtonAction, MediaFile, SurfaceLimits, ThreadKey, View

log = logging.getLogger(__name__)

# Discord: ~5 edits per 5 s per channel (our window: 5 per 5.2 s). One live edit per 1.3 s
# uses 4 of those 5; the fifth is kept for the final edit (`ChannelLimiter.reserve`). Posts
# (page turns, uploads) have a window of their own, with a slot kept for the final's page.
MIN_EDIT_INTERVAL = 1.3
DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024
TOO_LARGE = 40005  # Discord's "Request entity too large"
NO_MENTIONS = discord.AllowedMentions.none()
_KIND_ICONS = {"image": "🖼️", "video": "🎬", "audio": "🎵"}
_LINK_TITLES = {
    "image": N_("Open the generated image"),
    "video": N_("Open the generated video"),
    "audio": N_("Open the generated audio"),
    "file": N_("Open the generated file"),
}


@dataclass
class _PendingEdit:
    view: View
    final: bool
    done: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class DiscordSurface:
    """Posts, edits and uploads in one thread (`key.thread` is the thread's channel id)."""

    def __init__(
        self,
        *,
        client: discord.Client,
        key: ThreadKey,
        limiter: ChannelLimiter,
        upload_limit: int = DEFAULT_UPLOAD_LIMIT,
        gate: StreamGate | None = None,
    ) -> None:
        self.key = key
        self._limiter = limiter
        self._gate = gate
        self._upload_limit = upload_limit
        self._channel = self._messageable(client, key)
        self._bucket = self._channel_id(key)  # the limiter's window: the channel written to
        self._pending: dict[str, _PendingEdit] = {}
        self._sent: dict[str, View] = {}  # what each of our messages shows
        self._send_lock = asyncio.Lock()
        # when this thread was last written: the limiter serves the longest-waiting first
        self._written = time.monotonic()

    # Where messages go; the DM and interaction surfaces (`dms.py`) override these three.

    def _messageable(self, client: discord.Client, key: ThreadKey) -> discord.PartialMessageable:
        return client.get_partial_messageable(
            int(key.thread), guild_id=int(key.workspace), type=discord.ChannelType.public_thread
        )

    def _channel_id(self, key: ThreadKey) -> str:
        return key.thread

    async def _send(self, **fields: Any) -> str:
        """Post one message (`fields` as `Messageable.send` takes them); its id."""
        message = await self._channel.send(allowed_mentions=NO_MENTIONS, **fields)
        return str(message.id)

    async def _edit_message(self, message_id: str, **fields: Any) -> None:
        await self._channel.get_partial_message(int(message_id)).edit(
            allowed_mentions=NO_MENTIONS, **fields
        )

    @property
    def limits(self) -> SurfaceLimits:
        return SurfaceLimits(
            min_edit_interval=MIN_EDIT_INTERVAL,
            max_text=2000,
            max_upload_bytes=self._upload_limit,
        )

    async def post(self, view: View) -> str:
        first = not self._sent
        answer = first and _is_live(view)  # a live answer's first message: the turn begins
        if answer and self._gate is not None:
            await self._gate.begin()  # once the budget can keep one more answer fresh
        await self._limiter.acquire(
            self._bucket,
            urgent=_is_final(view),
            start=first and not answer,  # other openings wait behind running answers
            since=self._written,
        )
        content, rows = content_of(view), components_of(view)
        with discord_errors(), paid():
            if rows is None:
                message_id = await self._send(content=content)
            else:
                message_id = await self._send(content=content, view=rows)
        self._written = time.monotonic()
        self._sent[message_id] = view
        return message_id

    async def edit(self, message_id: str, view: View, *, final: bool = False) -> None:
        pending = self._pending.get(message_id)
        if pending is not None:  # an older edit still waits for a slot: send ours instead
            pending.view = view
            pending.final = pending.final or final
            await asyncio.shield(pending.done)
            return
        pending = self._pending[message_id] = _PendingEdit(view, final)
        shown = self._sent.get(message_id)
        # a finished page that only loses its status line and Stop button: no reader waits
        tidy = bool(
            final
            and not (view.status or view.buttons)
            and shown is not None
            and (shown.text, shown.by) == (view.text, view.by)
        )
        try:
            await self._limiter.acquire(
                self._bucket,
                urgent=final and not tidy,
                tidy=tidy,
                kind="edit",
                since=self._written,
            )
        finally:
            del self._pending[message_id]
        try:
            async with self._send_lock:  # edits of one message must reach Discord in order
                with discord_errors(), paid():
                    # returns once Discord has the edit, not when discord.py is done
                    # sleeping on the bucket the edit emptied (the final's kept slot)
                    await until_answered(
                        lambda: self._edit_message(
                            message_id,
                            content=content_of(pending.view),
                            view=components_of(pending.view),
                        ),
                        self._limiter.trailing,
                    )
                self._written = time.monotonic()
                self._sent[message_id] = pending.view
        finally:
            pending.done.set_result(None)

    async def upload(self, media: MediaFile) -> None:
        if media.size > self._upload_limit:
            raise self._too_big(media.size)
        await self._limiter.acquire(self._bucket)
        # discord.File opens the path and aiohttp streams it: the file is never read whole.
        file = discord.File(media.path, filename=media.filename)
        try:
            with paid():
                await self._send(file=file)
        except discord.HTTPException as exc:
            if exc.status == 413 or exc.code == TOO_LARGE:
                raise self._too_big(media.size) from exc
            raise platform_error(exc) from exc
        finally:
            file.close()

    async def post_link(self, url: str, *, kind: str, reason: str) -> None:
        await self._limiter.acquire(self._bucket)
        icon = _KIND_ICONS.get(kind, "📎")
        title = _(_LINK_TITLES.get(kind, _LINK_TITLES["file"]))
        embed = discord.Embed(title=f"{icon} {title}", url=url)
        embed.description = f"{reason}\n{url}" if reason else url
        with discord_errors(), paid():
            await self._send(embed=embed)

    def _too_big(self, size: int) -> MediaRejected:
        return MediaRejected(
            _(
                "The file ({size}) is over this server's upload limit ({limit}), "
                "so here is a link instead."
            ).format(size=format_size(size), limit=format_size(self._upload_limit)),
            detail=f"upload of {size} bytes over limit {self._upload_limit}",
        )


def _is_final(view: View) -> bool:
    """A message posted with a turn's final buttons (no Stop) is part of the final edit: the
    page a final answer needed, which must not wait behind live page turns."""
    return bool(view.buttons) and not any(b.action is ButtonAction.STOP for b in view.buttons)


def _is_live(view: View) -> bool:
    """A message with a Stop button: a live answer (its turn streams until the final)."""
    return any(b.action is ButtonAction.STOP for b in view.buttons)
