"""The Discord adapter: discord.py in front of the core's command flow (`Platform` port).

Commands, messages and clicks are translated in `translate.py` and handed to
`bot.commands`. Commands work in DMs and as a user-installed app; where no thread can open
the conversation goes on in the DM or through the interaction (`dms.py`). Discord wants
an answer within 3 s: a refused command is answered at once, eco and Stop are answered in
the interaction's own response, everything else is deferred first. Threads open from a
root message in the channel and the answer goes there as ordinary messages, so a long
video never depends on the 15-minute interaction token. Buttons are decoded from their
`custom_id` in `on_interaction`, so they work across restarts. Nothing here decides
anything: the core does.
A deferred command shows a public "thinking" response, so the core's admission check
(access lists, quotas) runs before the defer for the commands that defer publicly, and its
refusal is the private response; `/sense-usage` and `/sense-admin` defer privately.
Buttons and modal submissions are decoded from their `custom_id` in `on_interaction`; a
click or context menu that may open a modal (Remix) is handed to the core before anything
else answers it: a modal must be the interaction's response.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import discord
from discord import app_commands

from adapters.discord.commands import register_commands
from adapters.discord.dms import DMSurface, InteractionSurface, Places
from adapters.discord.endpoints import use_endpoints
from adapters.discord.errors import discord_errors
from adapters.discord.i18n import CatalogTranslator
from adapters.discord.ratelimit import (
    LIVE_SHARE,
    LOW_SHARE,
    RESERVE,
    ChannelLimiter,
    StreamGate,
    opening,
    opening_since,
    paid,
    route_through,
    watch_answers,
)
from adapters.discord.spec import discord_application_id
from adapters.discord.surface import DEFAULT_UPLOAD_LIMIT, MIN_EDIT_INTERVAL, DiscordSurface
from adapters.discord.translate import (
    PLATFORM,
    is_dm,
    is_via,
    modal_of,
    parse_target,
    to_click,
    to_command,
    to_message,
    to_shortcut,
    to_submission,
)
from adapters.discord.views import content_of
from bot.config import Settings
from bot.core import Core
from bot.errors import BotError, PlatformError, PlatformRefused
from bot.i18n import N_, _
from bot.models import ButtonAction, ChannelKey, CommandName, Inbound, ThreadKey, View
from bot.tasks import BackgroundTasks

log = logging.getLogger(__name__)

READY_TIMEOUT = 60.0
# deferred with a public "thinking" response: admitted before it, so a refusal stays private
DEFERRED_PUBLICLY = (CommandName.SENSE, CommandName.PREDICT, CommandName.WORKFLOW)
DEFERRED_PRIVATELY = (CommandName.USAGE, CommandName.ADMIN)
LOCALE_CACHE = 10_000  # people whose interaction locale is remembered for their messages
GUILD_POLL = 0.005  # seconds between looks at which guilds have arrived, while starting
NO_MENTIONS = discord.AllowedMentions.none()

# View Channels, Send Messages, Send Messages in Threads, Create Public Threads, Embed Links,
# Attach Files, Read Message History: everything the bot does, nothing more.
INVITE_PERMISSIONS = discord.Permissions(
    view_channel=True,
    send_messages=True,
    send_messages_in_threads=True,
    create_public_threads=True,
    embed_links=True,
    attach_files=True,
    read_message_history=True,
)


def invite_url(application_id: int) -> str:
    """The OAuth2 URL that adds the bot to a server with exactly the permissions it needs."""
    return (
        "https://discord.com/oauth2/authorize"
        f"?client_id={application_id}&permissions={INVITE_PERMISSIONS.value}"
        "&scope=bot+applications.commands"
    )


def intents_for(settings: Settings) -> discord.Intents:
    """Guilds, guild messages and (when enabled in the developer portal) message content:
    without it follow-ups in a thread must mention the bot."""
    intents = discord.Intents.none()
    intents.guilds = True
    intents.guild_messages = True
    intents.dm_messages = True  # DMs continue their conversation (content comes with them)
    intents.message_content = settings.discord_message_content
    return intents


def client_for(settings: Settings, **options: Any) -> discord.Client:
    """A plain client, or with `DISCORD_SHARD_COUNT` an `AutoShardedClient` running this
    process's shard range (`DISCORD_SHARD_IDS`; all shards when empty): guild `g` is on shard
    `(g >> 22) % count`, so several processes with disjoint ranges share one bot's guilds."""
    common: dict[str, Any] = {"intents": intents_for(settings), "allowed_mentions": NO_MENTIONS}
    if settings.discord_shard_count is None:
        return discord.Client(**common, **options)
    if settings.discord_shard_ids:
        options["shard_ids"] = list(settings.discord_shard_ids)
    return discord.AutoShardedClient(**common, shard_count=settings.discord_shard_count, **options)


class DiscordBot:
    """One Discord connection serving every guild the bot is in."""

    def __init__(self, settings: Settings, core: Core | None, **client_options: Any) -> None:
        self.settings = settings
        self.core = core
        if core is not None:  # every REST call counted in /metrics, 429s included
            core.metrics.watch(settings.discord_api_url, platform=PLATFORM)
            client_options.setdefault("http_trace", core.metrics.trace_config())
        # edits return once Discord answered them (`until_answered`)
        client_options["http_trace"] = watch_answers(
            client_options.get("http_trace") or aiohttp.TraceConfig()
        )
        self.client = client_for(settings, **client_options)
        self.tree = app_commands.CommandTree(self.client)
        register_commands(self.tree, self)
        self.limiter = ChannelLimiter(
            reserve=RESERVE, low_share=LOW_SHARE, shared=self._shared_global(core)
        )
        # live answers start while the global budget can keep every streaming one fresh
        self.streams = StreamGate(
            budget=self.limiter.global_rate / self.limiter.global_per * LIVE_SHARE,
            per_stream=1 / MIN_EDIT_INTERVAL,
            load=self.limiter.live_rate,
        )
        # Every REST call discord.py makes for this bot counts against Discord's global limit.
        route_through(self.client.http, self.limiter)
        self._tasks = BackgroundTasks("discord")
        self._upload_limits: dict[str, int] = {}
        # conversations answered through interactions (DMs and places the bot is not in)
        self.places = Places(self.client)
        self._locales: dict[str, str] = {}  # user id -> the locale of their last interaction
        self._connection: asyncio.Task[None] | None = None
        self.client.on_message = self._on_message  # type: ignore[attr-defined]
        self.client.on_interaction = self._on_interaction  # type: ignore[attr-defined]

    def _shared_global(self, core: Core | None) -> Callable[[float, float], float] | None:
        """With replicas, the global budget (50 requests a second per bot token, whatever
        the number of shards and processes) is also drawn from the store."""
        tokens = core.shared_tokens if core is not None else None
        if tokens is None or self.settings.discord_token is None:
            return None
        token = self.settings.discord_token.get_secret_value()
        bot = discord_application_id(token) or hashlib.sha256(token.encode()).hexdigest()[:16]
        name = f"discord:{bot}:global"

        def take(rate: float, burst: float) -> float:
            return tokens.take(name, rate=rate, burst=burst)

        return take

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Log in, connect in the background and return once every guild the Gateway listed
        in READY has arrived (its GUILD_CREATE), without waiting out discord.py's
        `guild_ready_timeout` (2 s of quiet after the last one) when nothing else will come."""
        await self._login()
        connected = asyncio.Event()

        async def on_connect() -> None:
            connected.set()

        self.client.on_connect = on_connect  # type: ignore[attr-defined]
        self._connection = asyncio.create_task(self.client.connect(), name="discord-gateway")
        if isinstance(self.client, discord.AutoShardedClient):
            # every shard must be up: discord.py's own ready waits for all of them
            ready = asyncio.create_task(self.client.wait_until_ready())
        else:
            ready = asyncio.create_task(self._guilds_arrived(connected))
        done, _ = await asyncio.wait(
            {ready, self._connection}, timeout=READY_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
        )
        if ready not in done:
            ready.cancel()
            if self._connection in done:
                await self._connection  # raises why the connection ended
            raise TimeoutError("Discord did not become ready in time")
        log.info("discord: ready as %s in %d guilds", self.client.user, len(self.client.guilds))

    async def _guilds_arrived(self, connected: asyncio.Event) -> None:
        """READY lists the session's guilds (as unavailable); each then arrives in a
        GUILD_CREATE. Done when all of them have, or when discord.py says it is ready."""
        waiting = asyncio.ensure_future(self.client.wait_until_ready())
        listed = asyncio.ensure_future(connected.wait())
        try:
            await asyncio.wait({waiting, listed}, return_when=asyncio.FIRST_COMPLETED)
            while not waiting.done():
                if all(not guild.unavailable for guild in self.client.guilds):
                    return
                await asyncio.wait({waiting}, timeout=GUILD_POLL)
        finally:
            waiting.cancel()
            listed.cancel()

    async def _login(self) -> None:
        if self.client.application_id is not None:
            return
        if self.settings.discord_token is None:
            raise RuntimeError("DISCORD_TOKEN is not set")
        use_endpoints(
            api_url=self.settings.discord_api_url, gateway_url=self.settings.discord_gateway_url
        )
        await self.client.login(self.settings.discord_token.get_secret_value())

    async def stop(self) -> None:
        await self._tasks.cancel_all()
        for task in list(self.limiter.trailing):  # answered already: only discord.py waits
            task.cancel()
        await self.client.close()
        if self._connection is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(self._connection, 10)

    async def sync_commands(self, guild_id: int | None) -> list[str]:
        """Register the slash commands: in one guild (instant) or globally (up to an hour).
        Deliberately not done at every start: Discord caps daily command creations."""
        await self._login()
        if self.tree.translator is None:  # descriptions in every language with a catalog
            await self.tree.set_translator(CatalogTranslator())
        if guild_id is None:
            synced = await self.tree.sync()
        else:
            guild = discord.Object(id=guild_id)
            self.tree.copy_global_to(guild=guild)
            synced = await self.tree.sync(guild=guild)
        return [command.name for command in synced]

    # --- the Platform port ---------------------------------------------------------------

    admins = N_("people with Manage Channels")

    @property
    def name(self) -> str:
        return PLATFORM

    @property
    def connected(self) -> bool:
        return self.client.is_ready() and not self.client.is_closed()

    def surface(self, key: ThreadKey, *, user_id: str | None = None) -> DiscordSurface:
        """The surface of one of our threads (uploads up to the guild's limit), of a DM, or
        of a conversation answered through its interactions (`dms.py`)."""
        if is_via(key):
            place = self.places.get(key)
            return InteractionSurface(
                client=self.client, key=key, limiter=self.limiter, places=self.places, place=place
            )
        if is_dm(key):
            return DMSurface(client=self.client, key=key, limiter=self.limiter)
        upload_limit = self._upload_limits.get(key.workspace)
        if upload_limit is None:
            guild = self.client.get_guild(int(key.workspace))
            upload_limit = guild.filesize_limit if guild is not None else DEFAULT_UPLOAD_LIMIT
        return DiscordSurface(
            client=self.client,
            key=key,
            limiter=self.limiter,
            upload_limit=upload_limit,
            gate=self.streams,
        )

    async def open_thread(self, channel: ChannelKey, *, root: View, title: str) -> ThreadKey:
        """Post the root message and open a public thread from it.

        The root post takes a slot in the parent channel (and the global window); creating
        the thread takes a global slot in `route_through`."""
        parent = self.client.get_channel(int(channel.channel))
        if not isinstance(parent, discord.TextChannel):
            raise PlatformRefused(_(NO_THREAD), detail=f"channel {channel.channel} not cached")
        try:
            with opening(time.monotonic()):
                await self.limiter.acquire(str(parent.id), start=True, since=opening_since())
                with discord_errors(), paid():
                    message = await parent.send(content_of(root), allowed_mentions=NO_MENTIONS)
                with discord_errors():
                    thread = await parent.create_thread(
                        name=title, message=message, auto_archive_duration=1440
                    )
        except PlatformError as err:
            raise PlatformRefused(_(NO_THREAD), detail=err.detail, code=err.code) from err
        return ThreadKey(PLATFORM, channel.workspace, channel.channel, str(thread.id))

    async def is_admin(self, user_id: str, channel: ChannelKey) -> bool:
        """Never asked: every interaction carries the person's permissions (the hint)."""
        return False

    async def roles_of(
        self, user_id: str, channel: ChannelKey, *, among: frozenset[str]
    ) -> frozenset[str]:
        """Never asked: every interaction and guild message carries the member's roles."""
        return frozenset()

    def _learn_upload_limit(self, interaction: discord.Interaction) -> None:
        """Interactions carry the upload limit that applies (boosts included): remember it
        per guild for the surfaces of its threads."""
        if interaction.guild_id is not None:
            self._upload_limits[str(interaction.guild_id)] = interaction.filesize_limit

    def _learn_locale(self, user_id: str, locale: str | None) -> None:
        """Messages carry no locale: a person's messages get their last interaction's."""
        if locale is None or self._locales.get(user_id) == locale:
            return
        if len(self._locales) >= LOCALE_CACHE:
            self._locales.pop(next(iter(self._locales)))
        self._locales[user_id] = locale

    def _handle(self, inbound: Inbound, name: str) -> None:
        self._tasks.spawn(self._core.commands.handle(self, inbound), name=name)

    @property
    def _core(self) -> Core:
        if self.core is None:
            raise RuntimeError("this DiscordBot was built for sync-commands only")
        return self.core

    # --- slash commands: translate, answer within 3 s, hand over ------------------------

    async def on_command(
        self, interaction: discord.Interaction, name: CommandName, text: str, **extra: Any
    ) -> None:
        """Every slash command: refused at once, answered directly (eco) or deferred."""
        self._learn_upload_limit(interaction)
        command = to_command(interaction, name, text, **extra)
        self._learn_locale(command.user_id, command.locale)
        if command.place is not None and is_via(command.place):
            self.places.note(command.place, interaction)
        commands = self._core.commands
        refusal = commands.precheck(command)
        if refusal is None and name in DEFERRED_PUBLICLY:
            refusal, command = await commands.admit(self, command)
        if refusal is not None:
            await command.reply.tell(refusal)
            return
        if name in (CommandName.ECO, CommandName.SETTINGS):  # quick: answered at once
            await commands.handle(self, command)
            return
        # with an attachment the answer may be a refusal of it: private, as every refusal is
        private = name in DEFERRED_PRIVATELY or bool(command.images)
        await interaction.response.defer(thinking=True, ephemeral=private)
        self._handle(command, f"{name.value}-{interaction.id}")

    async def on_message_action(
        self, interaction: discord.Interaction, message: discord.Message, action: ButtonAction
    ) -> None:
        """A message context menu: Remix goes to the core at once (it answers with the
        prompt form), Animate is deferred first (re-hosting the image takes a while)."""
        self._learn_upload_limit(interaction)
        shortcut = to_shortcut(interaction, message, action)
        if action is ButtonAction.REMIX:
            await self._core.commands.handle(self, shortcut)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        self._handle(shortcut, f"shortcut-{interaction.id}")

    async def models(self, query: str) -> list[tuple[str, str]]:
        try:
            return await self._core.jobs.models(query)
        except BotError as err:
            log.info("discord: model autocomplete failed: %s", err.detail)
            return []

    # --- messages and buttons -----------------------------------------------------------

    async def _on_message(self, message: discord.Message) -> None:
        me = self.client.user
        if self.core is None or me is None:
            return
        inbound = to_message(
            message,
            bot_id=me.id,
            reads_content=self.settings.discord_message_content,
            locale=self._locales.get(str(message.author.id)),
        )
        if inbound is not None:
            self._handle(inbound, f"message-{message.id}")

    async def _on_interaction(self, interaction: discord.Interaction) -> None:
        """Button clicks and modal submissions: everything needed is in the custom_id
        (works after a restart)."""
        if self.core is None:
            return
        if interaction.type == discord.InteractionType.modal_submit:
            await self._on_modal(interaction)
            return
        if interaction.type != discord.InteractionType.component:
            return
        click = to_click(interaction)
        if click is None:
            return
        if is_via(click.key):  # a click is a fresh interaction: its token answers from now on
            self.places.note(click.key, interaction)
        self._learn_upload_limit(interaction)
        self._learn_locale(click.user_id, click.locale)
        if click.action in (ButtonAction.STOP, ButtonAction.REMIX):
            # quick, and answered in the click's own response (Remix: with its form)
            await self._core.commands.handle(self, click)
            return
        if click.action is ButtonAction.CANCEL_JOB:
            # Eachlabs' cancel may take longer than the 3 s Discord gives a click: answer
            # first (privately), then say how it went.
            await interaction.response.defer(ephemeral=True, thinking=True)
        else:
            await interaction.response.defer()
        self._handle(click, f"click-{interaction.id}")

    async def _on_modal(self, interaction: discord.Interaction) -> None:
        """A form sent: a generation's Remix (in its thread), or a message action's Remix,
        whose message is looked up again for its images."""
        decoded = modal_of(interaction)
        if decoded is None:
            return
        action, value, text = decoded
        self._learn_upload_limit(interaction)
        if action is ButtonAction.REMIX_MESSAGE:
            await interaction.response.defer(ephemeral=True, thinking=True)
            self._tasks.spawn(self._message_remix(interaction, value, text), name="remix-form")
            return
        submission = to_submission(interaction, action, value, text)
        if submission is None:
            return
        await interaction.response.defer()
        self._handle(submission, f"form-{interaction.id}")

    async def _message_remix(
        self, interaction: discord.Interaction, target: str, text: str
    ) -> None:
        place = parse_target(target)
        message = None
        if place is not None:
            try:
                # the cached channel (a thread knows its parent), else a partial one
                channel: Any = self.client.get_channel(place[0])
                if not hasattr(channel, "fetch_message"):
                    channel = self.client.get_partial_messageable(
                        place[0], guild_id=interaction.guild_id
                    )
                with discord_errors():
                    message = await channel.fetch_message(place[1])
            except PlatformError as err:
                log.info("discord: the remixed message is gone: %s", err.detail)
        if message is None:
            await interaction.followup.send(GONE_MESSAGE, ephemeral=True)
            return
        shortcut = to_shortcut(interaction, message, ButtonAction.REMIX, text=text)
        await self._core.commands.handle(self, shortcut)


async def sync_commands(settings: Settings, guilds: list[int | None]) -> list[str]:
    """For `eachsense-bot sync-commands`: register the commands in each guild (None =
    globally) over REST only, without connecting to the Gateway."""
    bot = DiscordBot(settings, None)
    names: list[str] = []
    try:
        for guild in guilds:
            synced = await bot.sync_commands(guild)
            where = f"guild {guild}" if guild else "globally"
            names.extend(f"/{name} ({where})" for name in synced)
    finally:
        await bot.stop()
    return names


GONE_MESSAGE = "I can't find that message any more, so I can't remix its image."
NO_THREAD = N_(
    "I could not open a thread here. I need these permissions in this channel: Send Messages, "
    "Create Public Threads and Send Messages in Threads."
)
