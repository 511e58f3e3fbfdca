"""Opening a thread for an inbound payload: one place for what every opener does.

A slash command, a message action and whatever comes next all open their thread the same
way: post the root, open the thread under it, point the payload's reply at it, and when the
platform refuses, tell the person why (privately) instead of failing.
"""

from __future__ import annotations

import logging
from typing import Any

from bot.errors import PlatformError
from bot.models import ChannelKey, ThreadKey, View
from bot.ports import Platform

log = logging.getLogger(__name__)

TITLE_MAX = 90


async def open_thread(
    platform: Platform, channel: ChannelKey, reply: Any, *, root: View, title: str
) -> ThreadKey | None:
    """The new thread, or None after telling the person (through `reply`) why not."""
    name = " ".join(title.split())[:TITLE_MAX] or "each::sense"
    try:
        key = await platform.open_thread(channel, root=root, title=name)
    except PlatformError as err:
        log.warning("%s: no thread in %s: %s", platform.name, channel, err.detail)
        await reply.tell("⚠️ " + err.user_message)
        return None
    await reply.opened(key)
    return key
