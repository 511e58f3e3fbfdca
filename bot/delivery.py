"""The one outbound path shared by turns and jobs: generated media into a thread, notices,
who may act on whose request, and how durations read.

Turns (`conversations`) and direct runs (`jobs`) end the same way, with files to post and
sentences to say; writing that once keeps their behaviour (limits, fallbacks to links,
logging) identical.
"""

from __future__ import annotations

import contextlib
import logging

from bot.config import Settings
from bot.errors import MediaRejected
from bot.i18n import N_, _
from bot.media import MediaFetcher, kind_from_url
from bot.models import MediaKind, View
from bot.ports import Surface

log = logging.getLogger(__name__)

UPLOAD_FAILED = N_("The file could not be uploaded here.")


async def deliver(media: MediaFetcher, url: str, surface: Surface) -> MediaKind:
    """Upload one generated file (images, videos and audio show inline on the platforms;
    anything else is a file to download), or post its link when it cannot be uploaded; the
    kind of what was shown. A surface with no upload limit (the shell) shows links only."""
    limit = surface.limits.max_upload_bytes
    reason = ""
    if limit > 0:
        try:
            # any file: audio plays inline, a 3D model or an archive is a download
            async with media.fetch(url, max_bytes=limit, any_file=True) as fetched:
                await surface.upload(fetched)
                return fetched.kind
        except MediaRejected as err:
            reason = err.user_message
        except Exception:
            log.exception("could not upload a generated file")
            reason = _(UPLOAD_FAILED)
    kind = kind_from_url(url)
    with contextlib.suppress(Exception):
        await surface.post_link(url, kind=kind, reason=reason)
    return kind


async def say(surface: Surface, what: str | View) -> None:
    """Post a notice in the thread; a notice that cannot be posted is only logged."""
    try:
        await surface.post(what if isinstance(what, View) else View(text=what))
    except Exception:
        log.exception("could not post a notice")


def may_act(user_id: str, owner_id: str, *, admin: bool, settings: Settings) -> bool:
    """Stop and Cancel: the person who asked, an admin of the place, or `BOT_ADMINS`."""
    return user_id == owner_id or admin or user_id in settings.bot_admins


def clock_text(seconds: float) -> str:
    """`42s`, `1m 05s`, `1h 02m`: long video jobs run for minutes."""
    total = max(0, int(seconds))
    if total < 60:
        return f"{total}s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"
