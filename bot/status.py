"""A turn's status line, also shown where a platform has a place for it outside the messages.

Some threads have a status of their own besides the bot's messages (Slack's assistant threads:
"each::sense is thinking…" under the thread, `StatusSurface`). The renderer already says what
the turn is doing in every live view's status line, so this module watches what the renderer
sends (a `Surface` wrapped around the platform's) and keeps that status current:

- a new status line is shown at most every `MIN_INTERVAL` seconds (the renderer may change it
  every second; the latest one wins);
- the platform clears a status by itself after `status_lifetime` seconds (Slack: 2 minutes)
  and whenever the bot posts in the thread, while a video turn runs for ten: so the line is
  shown again after every post, upload or link, and refreshed at `REFRESH_SHARE` of the
  lifetime when nothing changed;
- the turn's final edit clears it (and so does `release`, whatever happened).

Showing a status is a courtesy: a failure is logged once and the keeper stops, the turn goes on.
Written once here so every platform with such a place behaves alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, cast

from bot.models import MediaFile, SurfaceLimits, View
from bot.ports import StatusSurface, Surface, TitledSurface

log = logging.getLogger(__name__)

MIN_INTERVAL = 3.0  # seconds between two different status lines
REFRESH_SHARE = 0.5  # refresh an unchanged status after this share of its lifetime
MAX_STATUS = 150  # a status is one short line
TITLE_MAX = 80


def keep_status(surface: Surface) -> Surface:
    """`surface` itself, or, when it can show a status, a `StatusKeeper` around it."""
    if isinstance(surface, StatusSurface) and not isinstance(surface, StatusKeeper):
        return StatusKeeper(surface)
    return surface


async def release(surface: Surface) -> None:
    """The turn or run is over: clear the status `keep_status` kept, if any."""
    if isinstance(surface, StatusKeeper):
        await surface.aclose()


async def set_title(surface: Surface, prompt: str) -> None:
    """Title the thread after the prompt that began it, where the thread has a title."""
    inner = surface.inner if isinstance(surface, StatusKeeper) else surface
    if not isinstance(inner, TitledSurface):
        return
    title = " ".join(prompt.split())
    if len(title) > TITLE_MAX:
        title = title[: TITLE_MAX - 1] + "…"
    try:
        await inner.set_title(title or "each::sense")
    except Exception as err:  # a courtesy: the answer matters more than its title
        log.info("could not title the thread: %r", err)


class StatusKeeper:
    """A `Surface` that forwards everything and mirrors live status lines to the platform's
    own status place, on a background task so no edit ever waits for it."""

    def __init__(
        self,
        inner: StatusSurface,
        *,
        min_interval: float = MIN_INTERVAL,
        clock: Any = time.monotonic,
    ) -> None:
        self.inner = inner
        self._surface = cast(Surface, inner)
        self._min_interval = min_interval
        self._clock = clock
        self._wanted = ""  # what the thread should show now
        self._sent = ""  # what was last shown ("" after a post cleared it)
        self._sent_at = float("-inf")
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    # --- the Surface port, forwarded ---------------------------------------------------

    @property
    def limits(self) -> SurfaceLimits:
        return self._surface.limits

    async def post(self, view: View) -> str:
        message_id = await self._surface.post(view)
        self._posted()
        self._want(view.status)
        return message_id

    async def edit(self, message_id: str, view: View, *, final: bool = False) -> None:
        await self._surface.edit(message_id, view, final=final)
        if final:
            await self.aclose()
        else:
            self._want(view.status)

    async def upload(self, media: MediaFile) -> None:
        await self._surface.upload(media)
        self._posted()

    async def post_link(self, url: str, *, kind: str, reason: str) -> None:
        await self._surface.post_link(url, kind=kind, reason=reason)
        self._posted()

    # --- keeping the status ------------------------------------------------------------

    def _want(self, status: str) -> None:
        line = " ".join(status.split())[:MAX_STATUS]
        if self._closed or not line or line == self._wanted:
            return
        self._wanted = line
        self._kick()

    def _posted(self) -> None:
        """The platform clears the status when the bot posts: show it again."""
        self._sent = ""
        if self._wanted:
            self._kick()

    def _kick(self) -> None:
        if self._closed:
            return
        self._wake.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="status-keeper")

    async def _run(self) -> None:
        """Show the wanted line when it is due: at once when nothing is shown (never yet, or
        a post cleared it), a new line no sooner than `min_interval` after the last (and never
        later than the refresh), an unchanged one again at the refresh."""
        refresh = max(0.05, self.inner.status_lifetime * REFRESH_SHARE)
        while not self._closed:
            self._wake.clear()  # before looking: news from now on wakes the wait below
            due = self._due(refresh)
            if due is None or due > self._clock():
                timeout = None if due is None else due - self._clock()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await self._wake.wait()
                continue
            if not await self._show(self._wanted):
                return

    def _due(self, refresh: float) -> float | None:
        """When the wanted line should be shown next (None: nothing to show)."""
        if not self._wanted:
            return None
        if not self._sent:
            return float("-inf")
        if self._wanted != self._sent:
            return self._sent_at + min(self._min_interval, refresh)
        return self._sent_at + refresh

    async def _show(self, text: str) -> bool:
        try:
            await self.inner.show_status(text)
        except Exception as err:
            log.info("status not shown (%r); not trying again for this turn", err)
            self._closed = True
            return False
        self._sent, self._sent_at = text, self._clock()
        return True

    async def aclose(self) -> None:
        """Stop keeping the status and clear it (once; later calls do nothing)."""
        if self._closed:
            return
        self._closed = True
        task = self._task
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._task is not None:  # something was shown (or about to be): clear it
            with contextlib.suppress(Exception):
                await self.inner.show_status("")


__all__ = ["StatusKeeper", "keep_status", "release", "set_title"]
