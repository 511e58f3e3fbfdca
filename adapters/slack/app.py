"""The Slack adapter: slack-bolt (async) in front of the core.

Socket Mode when `SLACK_APP_TOKEN` is set; otherwise HTTP mode, where bolt's handler is
mounted at `POST /slack/events` on the bot's own server and bolt checks Slack's signature.

Every listener acks at once and does the work in a task kept in `self._tasks`, because Slack
gives three seconds for an ack and a turn takes minutes. Slack redelivers events it thinks
timed out; each envelope's `event_id` is claimed in storage before any work is scheduled, so
a retry never starts a second generation (and several replicas agree on one winner).
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.app.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack import commands
from adapters.slack.ratelimit import SlackLimiter
from adapters.slack.surface import SlackSurface, StreamingSwitch, escape
from bot.buttons import decode_button
from bot.config import Settings
from bot.errors import InputError
from bot.http import HttpServer
from bot.jobs import parse_predict_args, parse_workflow_args
from bot.models import ButtonAction, ChannelKey, ThreadKey, Turn, TurnRecord
from bot.ports import Surface
from bot.runtime import Core
from bot.tasks import BackgroundTasks

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
INTERRUPTED = "The bot restarted while answering; please send your message again."
NO_JOBS = "Direct model runs and workflows are not available on this bot."


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
        self.client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=3))
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

    # --- surfaces ------------------------------------------------------------------------

    def surface(self, channel: str, thread_ts: str, *, user_id: str | None = None) -> SlackSurface:
        return SlackSurface(
            client=self.client,
            session=self.core.session,
            limiter=self.limiter,
            channel=channel,
            thread_ts=thread_ts,
            max_upload_bytes=self.settings.media_max_bytes,
            streaming=self.streaming,
            user_id=user_id,
        )

    async def surface_for(self, key: ThreadKey) -> Surface | None:
        """The surface of a stored thread (job resumption after a restart)."""
        if key.platform != commands.PLATFORM:
            return None
        return self.surface(key.channel, key.thread)

    async def notify_interrupted(self, turns: list[TurnRecord]) -> None:
        for turn in turns:
            if turn.key.platform != commands.PLATFORM:
                continue
            try:
                await self.limiter.before_post(turn.key.channel)
                await self.client.chat_postMessage(
                    channel=turn.key.channel, thread_ts=turn.key.thread, text=INTERRUPTED
                )
            except SlackApiError as err:
                log.warning("could not tell %s about a restart: %s", turn.key, err)

    # --- wiring --------------------------------------------------------------------------

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        self._tasks.spawn(work, name=name)

    def _register(self) -> None:
        app = self.app
        app.command("/sense")(self._on_sense)
        app.command("/sense-eco")(self._on_eco)
        app.command("/sense-predict")(self._on_predict)
        app.command("/sense-workflow")(self._on_workflow)
        app.event("app_mention")(self._on_mention)
        app.event("message")(self._on_message)
        app.action(re.compile(r"^sense:"))(self._on_button)

    # --- slash commands ------------------------------------------------------------------

    async def _on_sense(self, ack: Any, body: dict[str, Any]) -> None:
        try:
            prompt = self.core.conversations.check_prompt(body.get("text") or "")
        except InputError as err:
            await ack(text=err.user_message)
            return
        await ack()
        self._spawn(self._start_thread(body, prompt), "slack-sense")

    async def _start_thread(self, body: dict[str, Any], prompt: str) -> None:
        team, channel, user = commands.team_of(body), body["channel_id"], body["user_id"]
        conversations = self.core.conversations
        mode = await conversations.mode_for(ChannelKey(commands.PLATFORM, team, channel))
        root = await self._post_root(
            channel, commands.root_text(user_id=user, prompt=prompt, mode=mode), body
        )
        if root is None:
            return
        key = ThreadKey(commands.PLATFORM, team, channel, root)
        turn = Turn(key=key, user_id=user, text=prompt, new_thread=True)
        await conversations.run(turn, self.surface(channel, root, user_id=user))

    async def _post_root(self, channel: str, text: str, body: dict[str, Any]) -> str | None:
        """The channel message a new thread hangs under; tells the person when Slack
        refuses (for example a private channel the bot was not invited to)."""
        try:
            await self.limiter.before_post(channel)
            posted = await self.client.chat_postMessage(
                channel=channel, text=text, link_names=False, unfurl_links=False
            )
        except SlackApiError as err:
            error = err.response.get("error")
            log.warning("could not post the root message in %s: %s", channel, error)
            await self._tell(
                body,
                f"I can't post in this channel ({error}). Invite me with `/invite @eachsense`.",
            )
            return None
        return str(posted["ts"])

    async def _on_eco(self, ack: Any, body: dict[str, Any]) -> None:
        await ack()
        self._spawn(self._eco(body), "slack-eco")

    async def _eco(self, body: dict[str, Any]) -> None:
        user, action = body["user_id"], commands.split_command_text(body.get("text") or "")
        is_admin = False
        if action.lower() in ("on", "off"):
            is_admin = await self._is_admin(user)
        channel = ChannelKey(commands.PLATFORM, commands.team_of(body), body["channel_id"])
        text = await self.core.conversations.eco(channel, action, user_id=user, is_admin=is_admin)
        await self._tell(body, text)

    async def _is_admin(self, user_id: str) -> bool:
        """Workspace admins and owners (`users.info`) or ids in BOT_ADMINS."""
        if user_id in self.settings.bot_admins:
            return True
        try:
            user = (await self.client.users_info(user=user_id)).get("user") or {}
        except SlackApiError as err:
            log.warning("users.info failed: %s", err.response.get("error"))
            return False
        return bool(user.get("is_admin") or user.get("is_owner") or user.get("is_primary_owner"))

    async def _on_predict(self, ack: Any, body: dict[str, Any]) -> None:
        jobs = self.core.jobs
        if jobs is None:
            await ack(text=NO_JOBS)
            return
        try:
            model, prompt = parse_predict_args(body.get("text") or "")
        except InputError as err:
            await ack(text=err.user_message)
            return
        await ack()

        async def run(key: ThreadKey, surface: Surface) -> None:
            await jobs.run_prediction(
                key=key, user_id=body["user_id"], model=model, prompt=prompt, surface=surface
            )

        self._spawn(self._job_thread(body, f"ran `{model}` on", prompt, run), "slack-predict")

    async def _on_workflow(self, ack: Any, body: dict[str, Any]) -> None:
        jobs = self.core.jobs
        if jobs is None:
            await ack(text=NO_JOBS)
            return
        try:
            workflow_id, inputs = parse_workflow_args(body.get("text") or "")
        except InputError as err:
            await ack(text=err.user_message)
            return
        await ack()

        async def run(key: ThreadKey, surface: Surface) -> None:
            await jobs.run_workflow(
                key=key,
                user_id=body["user_id"],
                workflow_id=workflow_id,
                inputs=inputs,
                surface=surface,
            )

        shown = " ".join(f"{k}={v}" for k, v in inputs.items()) or "(no inputs)"
        self._spawn(
            self._job_thread(body, f"started workflow `{workflow_id}` with", shown, run),
            "slack-workflow",
        )

    async def _job_thread(
        self,
        body: dict[str, Any],
        what: str,
        shown: str,
        run: Callable[[ThreadKey, Surface], Awaitable[None]],
    ) -> None:
        team, channel, user = commands.team_of(body), body["channel_id"], body["user_id"]
        text = f"<@{user}> {what}: {escape(shown)}"
        root = await self._post_root(channel, text, body)
        if root is not None:
            key = ThreadKey(commands.PLATFORM, team, channel, root)
            await run(key, self.surface(channel, root, user_id=user))

    # --- events --------------------------------------------------------------------------

    async def _claim(self, body: dict[str, Any]) -> bool:
        """True the first time an envelope is seen; False for Slack's redeliveries."""
        event_id = body.get("event_id")
        if not event_id:
            return True
        return await self.core.conversations.claim_event(commands.PLATFORM, str(event_id))

    async def _on_mention(self, body: dict[str, Any], event: dict[str, Any]) -> None:
        incoming = commands.from_message_event(body, event, bot_user_id=self.bot_user_id)
        if incoming is None:
            return
        conversations = self.core.conversations
        if not incoming.top_level and await conversations.is_bot_thread(incoming.key):
            return  # the `message` event for the same post continues the session
        if not await self._claim(body):
            return
        self._spawn(self._run(incoming, new_thread=True), "slack-mention")

    async def _on_message(self, body: dict[str, Any], event: dict[str, Any]) -> None:
        incoming = commands.from_message_event(body, event, bot_user_id=self.bot_user_id)
        if incoming is None:
            return
        conversations = self.core.conversations
        if incoming.top_level:
            # top-level channel messages are not for us (mentions arrive as app_mention);
            # in a direct message every message is
            if event.get("channel_type") != "im":
                return
            new_thread = True
        elif await conversations.is_bot_thread(incoming.key):
            new_thread = False
        else:
            return
        if not await self._claim(body):
            return
        self._spawn(self._run(incoming, new_thread=new_thread), "slack-message")

    async def _run(self, incoming: commands.Incoming, *, new_thread: bool) -> None:
        key = incoming.key
        turn = Turn(key=key, user_id=incoming.user_id, text=incoming.text, new_thread=new_thread)
        surface = self.surface(key.channel, key.thread, user_id=incoming.user_id)
        await self.core.conversations.run(turn, surface)

    # --- buttons -------------------------------------------------------------------------

    async def _on_button(self, ack: Any, body: dict[str, Any]) -> None:
        await ack()
        self._spawn(self._button(body), "slack-button")

    async def _button(self, body: dict[str, Any]) -> None:
        actions = body.get("actions") or []
        place = commands.thread_of_action(body)
        decoded = decode_button(actions[0].get("action_id", "")) if actions else None
        if decoded is None or place is None:
            return
        action, value = decoded
        value = actions[0].get("value") or value  # the full value (ids may be cut to fit)
        user = (body.get("user") or {}).get("id", "")
        channel, thread_ts = place
        key = ThreadKey(commands.PLATFORM, commands.team_of(body), channel, thread_ts)
        surface = self.surface(channel, thread_ts, user_id=user)
        conversations = self.core.conversations
        if action is ButtonAction.STOP:
            await self._tell(body, await conversations.stop(value, user_id=user))
        elif action is ButtonAction.REGENERATE:
            await conversations.regenerate(value, user_id=user, surface=surface)
        elif action is ButtonAction.ANSWER:
            await conversations.run(Turn(key=key, user_id=user, text=value), surface)
        elif action is ButtonAction.CANCEL_JOB and self.core.jobs is not None:
            await self._tell(body, await self.core.jobs.cancel(value, user_id=user))

    # --- replies only the person sees ----------------------------------------------------

    async def _tell(self, body: dict[str, Any], text: str) -> None:
        """An ephemeral answer through the payload's `response_url` (works in DMs and in
        channels the bot is not a member of)."""
        url = body.get("response_url")
        if not url:
            log.info("no response_url to answer with: %s", text)
            return
        payload = {
            "text": text.replace("**", "*"),
            "response_type": "ephemeral",
            "replace_original": False,
        }
        try:
            async with self.core.session.post(url, json=payload) as response:
                if response.status >= 400:
                    log.warning("response_url answered %s", response.status)
        except Exception as err:  # the reply is a courtesy; the action itself happened
            log.warning("could not answer via response_url: %r", err)


__all__ = ["EVENTS_PATH", "SlackBot"]
