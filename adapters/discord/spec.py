"""The Discord adapter as the composition root sees it: configured?, build, doctor.

Light on purpose: discord.py is imported only when the adapter is built or checked.
"""

from __future__ import annotations

import base64
import contextlib
from typing import TYPE_CHECKING, Any

from bot.config import Settings
from bot.doctor import BAD, OK, WARN, line

if TYPE_CHECKING:
    import aiohttp

    from bot.http import HttpServer
    from bot.ports import Platform


def discord_application_id(token: str) -> int | None:
    """A bot token's first part is the base64 of the bot's user id (= its application id)."""
    head = token.split(".", 1)[0]
    with contextlib.suppress(ValueError):
        return int(base64.b64decode(head + "=" * (-len(head) % 4)).decode())
    return None


class DiscordSpec:
    name = "discord"
    not_configured = "Discord is not configured (DISCORD_TOKEN)."

    def configured(self, settings: Settings) -> bool:
        return settings.discord_enabled

    def build(self, settings: Settings, core: Any, http: HttpServer) -> Platform:
        from adapters.discord.client import DiscordBot

        return DiscordBot(settings, core)

    async def doctor(self, settings: Settings, session: aiohttp.ClientSession) -> int:
        if not settings.discord_token:
            line(WARN, "Discord: DISCORD_TOKEN not set (Discord disabled).")
            return 0
        app_id = discord_application_id(settings.discord_token.get_secret_value())
        if app_id is None:
            line(BAD, "Discord: DISCORD_TOKEN does not look like a bot token.")
            return 1
        from adapters.discord.client import invite_url

        invite = invite_url(app_id)
        line(OK, f"Discord: application {app_id}. Invite the bot with:\n       {invite}")
        if not settings.discord_message_content:
            line(WARN, "Discord: message content intent off: follow-ups must mention the bot.")
        return 0


SPEC = DiscordSpec()
