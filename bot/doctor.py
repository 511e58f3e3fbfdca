"""`eachsense-bot doctor`: what is configured, what is reachable, and how to fix the rest.

It prints whether each secret is set (never its value) and makes one cheap request to each
configured service, so a new user sees in one screen why the bot would not work.
"""

from __future__ import annotations

import base64
import contextlib

import aiohttp

from bot.config import Settings

OK, WARN, BAD = "ok  ", "warn", "FAIL"


def _line(level: str, text: str) -> None:
    print(f"[{level}] {text}")


async def _reach(session: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> str | None:
    """None when the service answered (any HTTP status below 500), else why not."""
    try:
        async with session.get(url, headers=headers) as resp:
            if resp.status == 401:
                return "the key was rejected (401)"
            if resp.status >= 500:
                return f"it answered HTTP {resp.status}"
            return None
    except (TimeoutError, aiohttp.ClientError) as err:
        return f"unreachable ({type(err).__name__})"


def discord_application_id(token: str) -> int | None:
    """A bot token's first part is the base64 of the bot's user id (= its application id)."""
    head = token.split(".", 1)[0]
    with contextlib.suppress(ValueError):
        return int(base64.b64decode(head + "=" * (-len(head) % 4)).decode())
    return None


async def doctor(settings: Settings) -> int:
    problems = 0
    timeout = aiohttp.ClientTimeout(total=8)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        if settings.has_eachsense_key:
            key = settings.eachsense_api_key.get_secret_value()  # type: ignore[union-attr]
            headers = {"Authorization": f"Bearer {key}", "X-API-Key": key}
            why = await _reach(session, settings.eachsense_base_url + "/models", headers)
            if why:
                problems += 1
                _line(BAD, f"each::sense at {settings.eachsense_base_url}: {why}")
            else:
                _line(OK, f"each::sense reachable at {settings.eachsense_base_url}")
        else:
            _line(WARN, "EACHSENSE_API_KEY is not set: the bot will use the offline simulator.")
        problems += await _slack(session, settings)
    problems += _discord(settings)
    if settings.public_url:
        _line(
            OK, f"webhooks at {settings.public_url}/webhooks/eachlabs/… (port {settings.http_port})"
        )
    else:
        _line(WARN, "PUBLIC_URL is not set: direct runs are followed by polling only.")
    _line(OK if problems == 0 else BAD, f"{problems} problem(s) found")
    return 0 if problems == 0 else 1


async def _slack(session: aiohttp.ClientSession, settings: Settings) -> int:
    if not settings.slack_bot_token:
        _line(WARN, "Slack: SLACK_BOT_TOKEN not set (Slack disabled).")
        return 0
    if not (settings.slack_app_token or settings.slack_signing_secret):
        _line(BAD, "Slack: set SLACK_APP_TOKEN (Socket Mode) or SLACK_SIGNING_SECRET (HTTP mode).")
        return 1
    token = settings.slack_bot_token.get_secret_value()
    url = settings.slack_api_url.rstrip("/") + "/auth.test"
    try:
        async with session.post(url, headers={"Authorization": f"Bearer {token}"}) as resp:
            body = await resp.json(content_type=None)
    except (TimeoutError, aiohttp.ClientError, ValueError) as err:
        _line(BAD, f"Slack API at {settings.slack_api_url}: unreachable ({type(err).__name__})")
        return 1
    if not body.get("ok"):
        _line(BAD, f"Slack: auth.test said {body.get('error')!r}: check SLACK_BOT_TOKEN.")
        return 1
    mode = "Socket Mode" if settings.slack_app_token else "HTTP mode (/slack/events)"
    _line(OK, f"Slack: signed in to team {body.get('team')!r} as {body.get('user')!r}; {mode}")
    return 0


def _discord(settings: Settings) -> int:
    if not settings.discord_token:
        _line(WARN, "Discord: DISCORD_TOKEN not set (Discord disabled).")
        return 0
    app_id = discord_application_id(settings.discord_token.get_secret_value())
    if app_id is None:
        _line(BAD, "Discord: DISCORD_TOKEN does not look like a bot token.")
        return 1
    from adapters.discord.client import invite_url

    _line(OK, f"Discord: application {app_id}. Invite the bot with:\n       {invite_url(app_id)}")
    if not settings.discord_message_content:
        _line(WARN, "Discord: message content intent off: follow-ups must mention the bot.")
    return 0
