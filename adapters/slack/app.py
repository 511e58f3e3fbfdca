"""The Slack adapter: slack-bolt (async) in front of the core's command flow.

Socket Mode when `SLACK_APP_TOKEN` is set; otherwise HTTP mode, where bolt's handler is
mounted at `POST /slack/events` on the bot's own server and bolt checks Slack's signature.

Every listener translates its payload (`commands.py`), acks at once (a command's refusal
goes in the ack itself) and hands the rest to `bot.commands` in a background task: Slack
gives three seconds for an ack and a turn takes minutes. A form the core opens goes out with
`views.open` and the payload's `trigger_id` (valid for 3 s, once); its submission comes back
through `app.view`. Dedupe, permissions and every sentence are the core's; this module
implements the `Platform` port.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import logging
import re
import time
from typing import Any

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.app.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack import commands
from adapters.slack.assistant import (
    STATUS_LIFETIME,
    AssistantSurface,
    is_assistant_thread,
    register_assistant,
)
from adapters.slack.errors import slack_errors
from adapters.slack.groups import UserGroups
from adapters.slack.home import register_home
from adapters.slack.modals import modal_view
from adapters.slack.ratelimit import PacedRetryHandler, SlackLimiter
from adapters.slack.surface import SlackSurface, StreamingSwitch, render, to_mrkdwn
from adapters.slack.text import user_ids_in
from bot.config import Settings
from bot.core import Core
from bot.errors import PlatformError, PlatformRefused
from bot.http import HttpServer
from bot.i18n import N_, _
from bot.models import ChannelKey, CommandName, Form, Inbound, ThreadKey, View
from bot.sessions import PLATFORM_CONNECTIONS, new_http_session
from bot.shared_budgets import SharedBudgets
from bot.tasks import BackgroundTasks

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
NAME_CACHE = 1000  # display names remembered for mentions
LOCALE_CACHE = 10_000  # people whose language (users.info `locale`) is remembered
LOCALE_TTL = 3600.0  # seconds a person's language is remembered (they may change it)
LOCALE_WAIT = 1.0  # the longest a look-up may hold a command's ack (due within 3 s)


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
        # with replicas, every budget is also drawn from the store: one workspace, one budget
        self.shared = SharedBudgets(core.shared_tokens) if core.shared_tokens else None
        self.limiter = limiter or SlackLimiter(state=self.shared)
        # A session of the Web API's own, with a few pooled connections (`bot.sessions`):
        # without one slack_sdk opens (and closes) a session and connection for every call.
        self.api_session = new_http_session(metrics=core.metrics, per_host=PLATFORM_CONNECTIONS)
        self.client = AsyncWebClient(
            token=settings.slack_bot_token.get_secret_value(),
            base_url=settings.slack_api_url,
            session=self.api_session,
        )
        # 429s of the methods our budgets pace go back to them; the rest are waited out here
        self.client.retry_handlers.append(PacedRetryHandler(max_retry_count=3))
        # the shared session's trace counts every Web API call and 429 in /metrics
        core.metrics.watch(settings.slack_api_url, platform=commands.PLATFORM)
        self._started = False
        self.events_seen = 0
        self._name_cache: dict[str, str] = {}
        self.groups = UserGroups(self.client, ttl=settings.access_roles_cache_seconds)
        self._locales: dict[str, tuple[str | None, float]] = {}  # user -> (locale, when)
        secret = settings.slack_signing_secret
        self.app = AsyncApp(
            client=self.client,
            signing_secret=secret.get_secret_value() if secret else "",
            request_verification_enabled=secret is not None,
            process_before_response=False,
        )
        self.streaming = StreamingSwitch(enabled=settings.slack_native_streaming)
        self.bot_user_id: str | None = None
        self.team_url = ""  # the workspace's address (auth.test), for links to threads
        self.status_lifetime = STATUS_LIFETIME  # how long Slack shows an assistant status
        self._tasks = BackgroundTasks("slack")
        self._socket: Any = None
        self._register()

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        who = await self.client.auth_test()
        self.bot_user_id = who.get("user_id")
        self.streaming.team_id = str(who.get("team_id") or "")
        if self.shared is not None:  # the replicas of this app in this workspace share them
            self.shared.scope = f"slack:{self.streaming.team_id}"
        self.team_url = str(who.get("url") or "")
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
        self._started = True

    async def stop(self) -> None:
        self._started = False
        if self._socket is not None:
            with contextlib.suppress(Exception):
                await self._socket.close_async()
        await self._tasks.cancel_all()
        await self.limiter.aclose()
        await self.api_session.close()

    async def handle_http(self, request: web.Request) -> web.Response:
        """Bolt's request handling (signature check included) behind our aiohttp server."""
        response = await self.app.async_dispatch(await to_bolt_request(request))
        return await to_aiohttp_response(response)

    async def wait_idle(self) -> None:
        """Wait until every background task has finished (tests, graceful shutdown)."""
        await self._tasks.wait_idle()

    # --- the Platform port --------------------------------------------------------------

    admins = N_("workspace admins and owners")

    @property
    def name(self) -> str:
        return commands.PLATFORM

    @property
    def connected(self) -> bool:
        return self._started

    def surface(self, key: ThreadKey, *, user_id: str | None = None) -> SlackSurface:
        options: dict[str, Any] = {}
        kind = SlackSurface
        if is_assistant_thread(key.channel, key.thread):
            kind, options["status_lifetime"] = AssistantSurface, self.status_lifetime
        return kind(
            **options,
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
        text, _blocks = render(root)
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
                _(
                    "I can't post in this channel ({code}). Invite me with `/invite @eachsense`."
                ).format(code=err.code),
                detail=err.detail,
                code=err.code,
            ) from err
        return ThreadKey(commands.PLATFORM, channel.workspace, channel.channel, str(posted["ts"]))

    async def is_admin(self, user_id: str, channel: ChannelKey) -> bool:
        """Workspace admins and owners (`users.info`)."""
        with slack_errors():
            user = (await self.client.users_info(user=user_id)).get("user") or {}
        return bool(user.get("is_admin") or user.get("is_owner") or user.get("is_primary_owner"))

    async def roles_of(
        self, user_id: str, channel: ChannelKey, *, among: frozenset[str]
    ) -> frozenset[str]:
        """The user groups among `among` the person is in (`usergroups.users.list`, cached):
        Slack payloads do not carry them."""
        return await self.groups.of(user_id, among)

    # --- wiring --------------------------------------------------------------------------

    def _register(self) -> None:
        app = self.app
        for name in CommandName:
            app.command(f"/{name.value}")(self._on_command)
        app.event("app_mention")(self._on_event)
        app.event("message")(self._on_event)
        app.action(re.compile(r"^sense:"))(self._on_button)
        app.view(re.compile(r"^sense:"))(self._on_view)
        for callback_id in commands.SHORTCUTS:
            app.shortcut(callback_id)(self._on_shortcut)
        register_assistant(self)  # the AI app surface: assistant threads
        register_home(self)  # App Home

    # for the listeners of the other surfaces (assistant.py, home.py)

    async def on_event(self, body: dict[str, Any], event: dict[str, Any]) -> None:
        await self._on_event(body, event)

    def hand_over(self, inbound: Inbound, what: str) -> None:
        self._handle(inbound, what)

    def spawn(self, work: Any, *, name: str) -> None:
        self._tasks.spawn(work, name=name)

    def _handle(self, inbound: Inbound, what: str) -> None:
        """Hand one translated payload to the core, after the ack."""
        self._tasks.spawn(self.core.commands.handle(self, inbound), name=f"slack-{what}")

    async def _on_command(self, ack: Any, body: dict[str, Any]) -> None:
        # no name look-ups here: the ack is due within 3 s (labels in the text still show);
        # the person's language is (cached, and bounded by LOCALE_WAIT): a refusal is in it
        locale = await self._locale(str(body.get("user_id") or ""))
        command = commands.to_command(body, reply=self._reply(body), locale=locale)
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
        self.events_seen += 1  # bolt runs listeners after the ack: tests wait on this
        names = await self._names(event.get("text") or "")
        if event.get("files"):
            event = {**event, "files": await self._file_info(event["files"])}
        message = commands.to_message(
            body, event, bot_user_id=self.bot_user_id, names=names, token=self._token
        )
        if message is not None:
            locale = await self._locale(message.user_id)
            self._handle(dataclasses.replace(message, locale=locale), "message")

    async def _on_button(self, ack: Any, body: dict[str, Any]) -> None:
        await ack()
        place = commands.thread_of_action(body)
        reply = self._reply(body, place=place)
        locale = await self._locale(str((body.get("user") or {}).get("id") or ""))
        click = commands.to_click(body, reply=reply, locale=locale)
        if click is not None:
            self._handle(click, "click")

    async def _on_view(self, ack: Any, body: dict[str, Any]) -> None:
        """A form sent: closing it is the ack; what it asks runs after."""
        await ack()
        metadata = _metadata(body.get("view") or {})
        place = (metadata.get("c"), metadata.get("t")) if metadata.get("c") else None
        reply = self._reply(body, place=place)
        inbound = commands.to_submission(body, reply=reply, token=self._token)
        if inbound is not None:
            self._handle(inbound, "form")

    async def _on_shortcut(self, ack: Any, body: dict[str, Any]) -> None:
        await ack()
        channel = (body.get("channel") or {}).get("id")
        thread = (body.get("message") or {}).get("thread_ts")
        reply = self._reply(body, place=(channel, thread) if channel else None)
        shortcut = commands.to_shortcut(body, reply=reply, token=self._token)
        if shortcut is not None:
            self._handle(shortcut, "shortcut")

    @property
    def _token(self) -> str:
        token = self.settings.slack_bot_token
        return token.get_secret_value() if token is not None else ""

    async def _file_info(self, files: Any) -> list[Any]:
        """Slack sometimes sends a shared file as a stub (`file_access: check_file_info`):
        `files.info` completes it. A failed look-up leaves the stub (it has no URL)."""
        complete: list[Any] = []
        for file in files if isinstance(files, list) else []:
            if isinstance(file, dict) and file.get("file_access") == "check_file_info":
                try:
                    with slack_errors():
                        info = await self.client.files_info(file=str(file.get("id")))
                    file = info.get("file") or file
                except PlatformError as err:
                    log.info("files.info failed: %s", err.code)
            complete.append(file)
        return complete

    async def _names(self, text: str) -> dict[str, str]:
        """Display names of the people a message mentions (cached), so the agent reads
        `@alice`, not `<@U123>`. A failed look-up leaves the id."""
        names: dict[str, str] = {}
        for user_id in user_ids_in(text) - {self.bot_user_id or ""}:
            name = self._name_cache.get(user_id)
            if name is None:
                try:
                    with slack_errors():
                        info = (await self.client.users_info(user=user_id)).get("user") or {}
                except PlatformError as err:
                    log.info("users.info for a mention failed: %s", err.code)
                    continue
                profile = info.get("profile") or {}
                name = profile.get("display_name") or info.get("real_name") or info.get("name")
                if not name:
                    continue
                if len(self._name_cache) >= NAME_CACHE:
                    self._name_cache.pop(next(iter(self._name_cache)))
                self._name_cache[user_id] = str(name)
            names[user_id] = str(name)
        return names

    async def _locale(self, user_id: str) -> str | None:
        """The person's Slack language (`users.info` with `include_locale`: `fr-FR`),
        remembered for LOCALE_TTL; None when Slack does not say within LOCALE_WAIT (then
        the core uses BOT_LANGUAGE, else English)."""
        if not user_id:
            return None
        cached = self._locales.get(user_id)
        if cached is not None and time.monotonic() - cached[1] < LOCALE_TTL:
            return cached[0]
        try:
            async with asyncio.timeout(LOCALE_WAIT):
                with slack_errors():
                    answer = await self.client.users_info(user=user_id, include_locale=True)
        except (PlatformError, TimeoutError) as err:
            log.info("users.info for a locale failed: %s", getattr(err, "code", "timeout"))
            return cached[0] if cached is not None else None
        locale = (answer.get("user") or {}).get("locale")
        found = str(locale) if locale else None
        if user_id not in self._locales and len(self._locales) >= LOCALE_CACHE:
            self._locales.pop(next(iter(self._locales)))
        self._locales[user_id] = (found, time.monotonic())
        return found

    def _reply(self, body: dict[str, Any], *, place: tuple[Any, Any] | None = None) -> SlackReply:
        """The payload's reply: its `response_url`, its `trigger_id` for a form, and the
        thread (`place`) for a private message when there is no `response_url`."""
        channel, thread = place if place is not None else (None, None)
        return SlackReply(
            self.core.session,
            body.get("response_url"),
            client=self.client,
            trigger_id=body.get("trigger_id"),
            channel=str(channel) if channel else None,
            thread_ts=str(thread) if thread else None,
            user_id=str((body.get("user") or {}).get("id") or body.get("user_id") or "") or None,
        )


def _metadata(view: dict[str, Any]) -> dict[str, Any]:
    try:
        loaded = json.loads(view.get("private_metadata") or "{}")
    except ValueError:
        return {}
    return loaded if isinstance(loaded, dict) else {}


class SlackReply:
    """Answers through the payload's `response_url` (works in DMs and in channels the bot
    is not a member of); a payload without one (a view submission) answers with
    `chat.postEphemeral` in its thread. Forms open with `views.open` and the payload's
    `trigger_id`."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        response_url: str | None,
        *,
        client: AsyncWebClient | None = None,
        trigger_id: str | None = None,
        channel: str | None = None,
        thread_ts: str | None = None,
        user_id: str | None = None,
    ) -> None:
        self._session = session
        self._url = response_url
        self._client = client
        self._trigger = trigger_id
        self._channel = channel
        self._thread = thread_ts
        self._user = user_id

    async def form(self, form: Form) -> bool:
        """`views.open` within the trigger's 3 s; a trigger works once."""
        if self._client is None or not self._trigger:
            return False
        trigger, self._trigger = self._trigger, None
        view = modal_view(form, channel=self._channel, thread_ts=self._thread)
        try:
            with slack_errors():
                await self._client.views_open(trigger_id=trigger, view=view)
        except PlatformError as err:
            log.warning("views.open failed: %s", err.code)
            return False
        return True

    async def tell(self, text: str, *, public: bool = False) -> None:
        if not self._url:
            await self._ephemeral(text)
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

    async def _ephemeral(self, text: str) -> None:
        if self._client is None or not (self._channel and self._user):
            log.info("no response_url or thread to answer in")
            return
        try:
            with slack_errors():
                await self._client.chat_postEphemeral(
                    channel=self._channel,
                    user=self._user,
                    thread_ts=self._thread,
                    text=to_mrkdwn(text),
                )
        except PlatformError as err:  # a courtesy, as above
            log.warning("chat.postEphemeral failed: %s", err.code)

    async def opened(self, key: ThreadKey) -> None:
        """Slack shows the root message in the channel: nothing to point at."""


__all__ = ["EVENTS_PATH", "SlackBot", "SlackReply"]
