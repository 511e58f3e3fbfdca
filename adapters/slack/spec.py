"""The Slack adapter as the composition root sees it: configured?, build, doctor.

Light on purpose: slack-bolt is imported only when the adapter is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import aiohttp

from bot.config import Settings
from bot.doctor import BAD, OK, WARN, line

if TYPE_CHECKING:
    from bot.http import HttpServer
    from bot.ports import Platform


class SlackSpec:
    name = "slack"
    not_configured = "Slack is not configured (SLACK_BOT_TOKEN and an app token or signing secret)."

    def configured(self, settings: Settings) -> bool:
        return settings.slack_enabled

    def build(self, settings: Settings, core: Any, http: HttpServer) -> Platform:
        from adapters.slack.app import SlackBot

        return SlackBot(settings, core, http)

    async def doctor(self, settings: Settings, session: aiohttp.ClientSession) -> int:
        if not settings.slack_bot_token:
            line(WARN, "Slack: SLACK_BOT_TOKEN not set (Slack disabled).")
            return 0
        if not (settings.slack_app_token or settings.slack_signing_secret):
            line(
                BAD, "Slack: set SLACK_APP_TOKEN (Socket Mode) or SLACK_SIGNING_SECRET (HTTP mode)."
            )
            return 1
        token = settings.slack_bot_token.get_secret_value()
        url = settings.slack_api_url.rstrip("/") + "/auth.test"
        try:
            async with session.post(url, headers={"Authorization": f"Bearer {token}"}) as resp:
                body = await resp.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError, ValueError) as err:
            line(BAD, f"Slack API at {settings.slack_api_url}: unreachable ({type(err).__name__})")
            return 1
        if not body.get("ok"):
            line(BAD, f"Slack: auth.test said {body.get('error')!r}: check SLACK_BOT_TOKEN.")
            return 1
        mode = "Socket Mode" if settings.slack_app_token else "HTTP mode (/slack/events)"
        line(OK, f"Slack: signed in to team {body.get('team')!r} as {body.get('user')!r}; {mode}")
        return 0


SPEC = SlackSpec()
