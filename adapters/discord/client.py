"""The Discord adapter: discord.py in front of the core's command flow (`Platform` port).

Commands, messages and clicks are translated in `translate.py` and handed to
`bot.commands`. Discord wants an answer within 3 s: a refused command is answered at once,
eco and Stop are answered in the interaction's own response, everything else is deferred
first. Threads open from a root message in the channel and the answer goes there as
ordinary messages, so a long video never depends on the 15-minute interaction token.
Buttons are decoded from their `custom_id` in `on_interaction`, so they work across
restarts. Nothing here decides anything: the core does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import discord
from discord import app_commands

from adapters.discord.commands import register_commands
from adapters.discord.endpoints import use_endpoints
from adapters.discord.errors import discord_errors
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
)
from adapters.discord.surface import DEFAULT_UPLOAD_LIMIT, MIN_EDIT_INTERVAL, DiscordSurface
from adapters.discord.translate import PLATFORM, to_click, to_command, to_message
from adapters.discord.views import content_of
from bot.config import Settings
from bot.core import Core
from bot.errors import BotError, PlatformError, PlatformRefused
from bot.models import ButtonAction, ChannelKey, CommandName, Inbound, ThreadKey, View
from bot.tasks import BackgroundTasks

log = logging.getLogger(__name__)

READY_TIMEOUT = 60.0
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
    intents.message_content = settings.discord_message_content
    return intents


class DiscordBot:
    """One Discord connection serving every guild the bot is in."""

    def __init__(self, settings: Settings, core: Core | None, **client_options: Any) -> None:
        self.settings = settings
        self.core = core
        self.client = discord.Client(
            intents=intents_for(settings), allowed_mentions=NO_MENTIONS, **client_options
        )
        self.tree = app_commands.CommandTree(self.client)
        register_commands(self.tree, self)
        self.limiter = ChannelLimiter(reserve=RESERVE, low_share=LOW_SHARE)
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
        self._connection: asyncio.Task[None] | None = None
        self.client.on_message = self._on_message  # type: ignore[attr-defined]
        self.client.on_interaction = self._on_interaction  # type: ignore[attr-defined]

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
        await self.client.close()
        if self._connection is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(self._connection, 10)

    async def sync_commands(self, guild_id: int | None) -> list[str]:
        """Register the slash commands: in one guild (instant) or globally (up to an hour).
        Deliberately not done at every start: Discord caps daily command creations."""
        await self._login()
        if guild_id is None:
            synced = await self.tree.sync()
        else:
            guild = discord.Object(id=guild_id)
            self.tree.copy_global_to(guild=guild)
            synced = await self.tree.sync(guild=guild)
        return [command.name for command in synced]

    # --- the Platform port ---------------------------------------------------------------

    admins = "people with Manage Channels"

    @property
    def name(self) -> str:
        return PLATFORM

    def surface(self, key: ThreadKey, *, user_id: str | None = None) -> DiscordSurface:
        """The surface of one of our threads; uploads up to the guild's limit."""
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
            raise PlatformRefused(NO_THREAD, detail=f"channel {channel.channel} not cached")
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
            raise PlatformRefused(NO_THREAD, detail=err.detail, code=err.code) from err
        return ThreadKey(PLATFORM, channel.workspace, channel.channel, str(thread.id))

    async def is_admin(self, user_id: str, channel: ChannelKey) -> bool:
        """Never asked: every interaction carries the person's permissions (the hint)."""
        return False

    def _learn_upload_limit(self, interaction: discord.Interaction) -> None:
        """Interactions carry the upload limit that applies (boosts included): remember it
        per guild for the surfaces of its threads."""
        if interaction.guild_id is not None:
            self._upload_limits[str(interaction.guild_id)] = interaction.filesize_limit

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
        refusal = self._core.commands.precheck(command)
        if refusal is not None:
            await command.reply.tell(refusal)
            return
        if name is CommandName.ECO:  # quick: answered in the interaction's own response
            await self._core.commands.handle(self, command)
            return
        await interaction.response.defer(thinking=True)
        self._handle(command, f"{name.value}-{interaction.id}")

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
            message, bot_id=me.id, reads_content=self.settings.discord_message_content
        )
        if inbound is not None:
            self._handle(inbound, f"message-{message.id}")

    async def _on_interaction(self, interaction: discord.Interaction) -> None:
        """Button clicks: everything needed is in the custom_id (works after a restart)."""
        if interaction.type != discord.InteractionType.component or self.core is None:
            return
        click = to_click(interaction)
        if click is None:
            return
        self._learn_upload_limit(interaction)
        if click.action is ButtonAction.STOP:  # quick: answered in the click's response
            await self._core.commands.handle(self, click)
            return
        if click.action is ButtonAction.CANCEL_JOB:
            # Eachlabs' cancel may take longer than the 3 s Discord gives a click: answer
            # first (privately), then say how it went.
            await interaction.response.defer(ephemeral=True, thinking=True)
        else:
            await interaction.response.defer()
        self._handle(click, f"click-{interaction.id}")


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


NO_THREAD = (
    "I could not open a thread here. I need these permissions in this channel: Send Messages, "
    "Create Public Threads and Send Messages in Threads."
)
