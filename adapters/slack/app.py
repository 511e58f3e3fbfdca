"""The Slack adapter: slack-bolt (async) in front of the core's command flow.

Socket Mode when `SLACK_APP_TOKEN` is set; otherwise HTTP mode, where bolt's handler is
mounted at `POST /slack/events` on the bot's own server and bolt checks Slack's signature.

Every listener translates its payload (`commands.py`), acks at once (a command's refusal
goes in the ack itself) and hands the rest to `bot.commands` in a background task: Slack
gives three seconds for an ack and a turn takes minutes. Dedupe, permissions and every
sentence are the core's; this module implements the `Platform` port.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
from typing import Any

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.app.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack import commands
from adapters.slack.errors import slack_errors
from adapters.slack.ratelimit import PacedRetryHandler, SlackLimiter
from adapters.slack.surface import SlackSurface, StreamingSwitch, render, to_mrkdwn
from bot.config import Settings
from bot.core import Core
from bot.errors import PlatformError, PlatformRefused
from bot.http import HttpServer
from bot.models import ChannelKey, CommandName, Inbound, ThreadKey, View
from bot.tasks import BackgroundTasks

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"


class SlackBot:
    """One Slack app (one bot token, one workspace) wired to the core."""

    def __init__(
        self,
        settings: Settings,
        core: Core,
        http: HttpServer | None = None,
        *,
        limiter: SlackLimiter | None = None,
    ) -> None:
        if settings.slack_bot_token is None:
            raise ValueError("SLACK_BOT_TOKEN is not set")
        self.settings = settings
        self.core = core
        self.http = http
        self.limiter = limiter or SlackLimiter()
        # The process's shared session: without one slack_sdk opens (and closes) a new
        # aiohttp session and connection for every call.
        self.client = AsyncWebClient(
            token=settings.slack_bot_token.get_secret_value(),
            base_url=settings.slack_api_url,
            session=core.session,
        )
        # 429s of the methods our budgets pace go back to them; the rest are waited out here
        self.client.retry_handlers.append(PacedRetryHandler(max_retry_count=3))
        secret = settings.slack_signing_secret
        self.app = AsyncApp(
            client=self.client,
            signing_secret=secret.get_secret_value() if secret else "",
            request_verification_enabled=secret is not None,
            process_before_response=False,
        )
        self.streaming = StreamingSwitch(enabled=settings.slack_native_streaming)
        self.bot_user_id: str | None = None
        self._tasks = BackgroundTasks("slack")
        self._socket: Any = None
        self._register()

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        who = await self.client.auth_test()
        self.bot_user_id = who.get("user_id")
        self.streaming.team_id = str(who.get("team_id") or "")
        log.info("Slack: connected as %s in team %s", who.get("user"), who.get("team_id"))
        if self.settings.slack_app_token is not None:
            from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

            self._socket = AsyncSocketModeHandler(
                self.app, self.settings.slack_app_token.get_secret_value()
            )
            await self._socket.connect_async()
            log.info("Slack: Socket Mode connected")
        elif self.http is not None:
            self.http.add_routes([web.post(EVENTS_PATH, self.handle_http)])
            log.info("Slack: HTTP mode, events at %s", EVENTS_PATH)
        else:
            raise ValueError("Slack HTTP mode needs the bot's HTTP server")

    async def stop(self) -> None:
        if self._socket is not None:
            with contextlib.suppress(Exception):
                await self._socket.close_async()
        await self._tasks.cancel_all()
        await self.limiter.aclose()

    async def handle_http(self, request: web.Request) -> web.Response:
        """Bolt's request handling (signature check included) behind our aiohttp server."""
        response = await self.app.async_dispatch(await to_bolt_request(request))
        return await to_aiohttp_response(response)

    async def wait_idle(self) -> None:
        """Wait until every background task has finished (tests, graceful shutdown)."""
        await self._tasks.wait_idle()

    # --- the Platform port --------------------------------------------------------------

    admins = "workspace admins and owners"

    @property
    def name(self) -> str:
        return commands.PLATFORM

    def surface(self, key: ThreadKey, *, user_id: str | None = None) -> SlackSurface:
        return SlackSurface(
            client=self.client,
            session=self.core.session,
            limiter=self.limiter,
            channel=key.channel,
            thread_ts=key.thread,
            max_upload_bytes=self.settings.media_max_bytes,
            streaming=self.streaming,
            user_id=user_id,
        )

    async def open_thread(self, channel: ChannelKey, *, root: View, title: str) -> ThreadKey:
        """A root message in the channel; its thread is the new conversation."""
        text, _ = render(root)
        post = functools.partial(
            self.client.chat_postMessage,
            channel=channel.channel,
            text=text,
            link_names=False,
            unfurl_links=False,
        )
        try:
            with slack_errors():
                posted = await self.limiter.post(channel.channel, post)
        except PlatformError as err:
            raise PlatformRefused(
                f"I can't post in this channel ({err.code}). Invite me with `/invite @eachsense`.",
                detail=err.detail,
                code=err.code,
            ) from err
        return ThreadKey(commands.PLATFORM, channel.workspace, channel.channel, str(posted["ts"]))

    async def is_admin(self, user_id: str, channel: ChannelKey) -> bool:
        """Workspace admins and owners (`users.info`)."""
        with slack_errors():
            user = (await self.client.users_info(user=user_id)).get("user") or {}
        return bool(user.get("is_admin") or user.get("is_owner") or user.get("is_primary_owner"))

    # --- wiring --------------------------------------------------------------------------

    def _register(self) -> None:
        app = self.app
        for name in CommandName:
            app.command(f"/{name.value}")(self._on_command)
        app.event("app_mention")(self._on_event)
        app.event("message")(self._on_event)
        app.action(re.compile(r"^sense:"))(self._on_button)

    def _handle(self, inbound: Inbound, what: str) -> None:
        """Hand one translated payload to the core, after the ack."""
        self._tasks.spawn(self.core.commands.handle(self, inbound), name=f"slack-{what}")

    async def _on_command(self, ack: Any, body: dict[str, Any]) -> None:
        command = commands.to_command(body, reply=self._reply(body))
        if command is None:
            await ack()
            return
        refusal = self.core.commands.precheck(command)
        if refusal is not None:  # refused in the ack itself: nothing else happens
            await ack(text=to_mrkdwn(refusal))
            return
        await ack()
        self._handle(command, command.name.value)

    async def _on_event(self, body: dict[str, Any], event: dict[str, Any]) -> None:
        message = commands.to_message(body, event, bot_user_id=self.bot_user_id)
        if message is not None:
            self._handle(message, "message")

    async def _on_button(self, ack: Any, body: dict[str, Any]) -> None:
        await ack()
        click = commands.to_click(body, reply=self._reply(body))
        if click is not None:
            self._handle(click, "click")

    def _reply(self, body: dict[str, Any]) -> SlackReply:
        return SlackReply(self.core.session, body.get("response_url"))


class SlackReply:
    """Answers through the payload's `response_url` (works in DMs and in channels the bot
    is not a member of)."""

    def __init__(self, session: aiohttp.ClientSession, response_url: str | None) -> None:
        self._session = session
        self._url = response_url

    async def tell(self, text: str, *, public: bool = False) -> None:
        if not self._url:
            log.info("no response_url to answer with")
            return
        payload = {
            "text": to_mrkdwn(text),
            "response_type": "in_channel" if public else "ephemeral",
            "replace_original": False,
        }
        try:
            async with self._session.post(self._url, json=payload) as response:
                if response.status >= 400:
                    log.warning("response_url answered %s", response.status)
        except (aiohttp.ClientError, TimeoutError) as err:  # a courtesy: the action happened
            log.warning("could not answer via response_url: %s", type(err).__name__)

    async def opened(self, key: ThreadKey) -> None:
        """Slack shows the root message in the channel: nothing to point at."""


__all__ = ["EVENTS_PATH", "SlackBot", "SlackReply"]
