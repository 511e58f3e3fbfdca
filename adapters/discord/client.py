"""The Discord adapter: discord.py events in, `Turn`s out, threads as each::sense sessions.

`/sense` defers at once (Discord wants an answer within 3 s), posts a root message in the
channel, opens a public thread from it and answers there with ordinary messages, so a long
video never depends on the 15-minute interaction token. Every later message in the thread
continues the same session. Buttons are decoded from their `custom_id` in `on_interaction`,
so they work across restarts. Nothing here decides anything: the core does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Literal, cast

import discord
from discord import app_commands

from adapters.discord.commands import register_commands
from adapters.discord.endpoints import use_endpoints
from adapters.discord.ratelimit import ChannelLimiter, paid, route_through
from adapters.discord.surface import DEFAULT_UPLOAD_LIMIT, DiscordSurface
from bot.buttons import decode_button
from bot.config import Settings
from bot.conversations import INTERRUPTED
from bot.errors import BotError, InputError
from bot.jobs import parse_workflow_args
from bot.models import ButtonAction, ChannelKey, ThreadKey, Turn, TurnRecord, View
from bot.ports import Surface
from bot.tasks import BackgroundTasks

if TYPE_CHECKING:
    from bot.runtime import Core

log = logging.getLogger(__name__)

PLATFORM = "discord"
THREAD_NAME_MAX = 90
ROOT_PROMPT_MAX = 1500  # the root message repeats the prompt; the full one goes to the agent
MAX_IMAGES = 4  # each::sense takes up to 4 reference images
READY_TIMEOUT = 60.0
NO_MENTIONS = discord.AllowedMentions.none()
UNAVAILABLE = "Direct model runs and workflows are not available on this bot."

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


def strip_mention(text: str, bot_id: int) -> str:
    """`<@bot> hello` → `hello` (a mention is how follow-ups arrive without the intent)."""
    return re.sub(rf"^\s*<@!?{bot_id}>\s*", "", text or "").strip()


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
        self.limiter = ChannelLimiter()
        # Every REST call discord.py makes for this bot counts against Discord's global limit.
        route_through(self.client.http, self.limiter)
        self._tasks = BackgroundTasks("discord")
        self._connection: asyncio.Task[None] | None = None
        self.client.on_message = self._on_message  # type: ignore[attr-defined]
        self.client.on_interaction = self._on_interaction  # type: ignore[attr-defined]

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Log in, connect in the background and return once the Gateway is READY."""
        await self._login()
        self._connection = asyncio.create_task(self.client.connect(), name="discord-gateway")
        ready = asyncio.create_task(self.client.wait_until_ready())
        done, _ = await asyncio.wait(
            {ready, self._connection}, timeout=READY_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
        )
        if ready not in done:
            ready.cancel()
            if self._connection in done:
                await self._connection  # raises why the connection ended
            raise TimeoutError("Discord did not become ready in time")
        log.info("discord: ready as %s in %d guilds", self.client.user, len(self.client.guilds))

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

    async def notify_interrupted(self, turns: list[TurnRecord]) -> None:
        """Tell each thread whose answer a restart cut off to send its message again."""
        for turn in turns:
            surface = await self.surface_for(turn.key)
            if surface is None:
                continue
            try:
                await surface.post(View(text=INTERRUPTED))
            except discord.HTTPException as exc:
                log.warning("discord: could not notify thread %s: %s", turn.key.thread, exc)

    async def surface_for(
        self, key: ThreadKey, *, upload_limit: int | None = None
    ) -> Surface | None:
        """The surface for one of our threads; None for another platform's key."""
        if key.platform != PLATFORM:
            return None
        if upload_limit is None:
            guild = self.client.get_guild(int(key.workspace))
            upload_limit = guild.filesize_limit if guild is not None else DEFAULT_UPLOAD_LIMIT
        return DiscordSurface(
            client=self.client, key=key, limiter=self.limiter, upload_limit=upload_limit
        )

    def _spawn(self, work: Coroutine[Any, Any, None], *, name: str) -> None:
        """Run long work after the platform has been answered."""
        self._tasks.spawn(work, name=name)

    @property
    def _core(self) -> Core:
        if self.core is None:
            raise RuntimeError("this DiscordBot was built for sync-commands only")
        return self.core

    # --- slash commands -----------------------------------------------------------------

    async def sense(
        self, interaction: discord.Interaction, prompt: str, mode: Literal["eco", "max"] | None
    ) -> None:
        await interaction.response.defer(thinking=True)
        conversations = self._core.conversations
        try:
            text = conversations.check_prompt(prompt)
        except InputError as err:
            await interaction.edit_original_response(content="⚠️ " + err.user_message)
            return
        parent = self._parent_of(interaction)
        if parent is None:
            await interaction.edit_original_response(content=_NOT_HERE)
            return
        shown = await conversations.mode_for(
            ChannelKey(PLATFORM, str(parent.guild.id), str(parent.id)), mode
        )
        root = f"{interaction.user.mention} asked: {_clip(text)} · {shown} mode"
        key = await self._open_thread(interaction, parent, name=text, root=root)
        if key is None:
            return
        surface = await self.surface_for(key, upload_limit=interaction.filesize_limit)
        assert surface is not None
        turn = Turn(
            key=key,
            user_id=str(interaction.user.id),
            text=text,
            new_thread=True,
            mode=mode,
            event_id=str(interaction.id),
        )
        self._spawn(conversations.run(turn, surface), name=f"sense-{interaction.id}")

    async def eco(self, interaction: discord.Interaction, action: str) -> None:
        parent = self._parent_of(interaction)
        if parent is None:
            await interaction.response.send_message(_NOT_HERE, ephemeral=True)
            return
        user_id = str(interaction.user.id)
        is_admin = interaction.permissions.manage_channels
        sentence = await self._core.conversations.eco(
            ChannelKey(PLATFORM, str(parent.guild.id), str(parent.id)),
            action,
            user_id=user_id,
            is_admin=is_admin,
        )
        changes = action in ("on", "off") and (is_admin or user_id in self.settings.bot_admins)
        await interaction.response.send_message(
            sentence, ephemeral=not changes, allowed_mentions=NO_MENTIONS
        )

    async def predict(self, interaction: discord.Interaction, model: str, prompt: str) -> None:
        jobs = self._core.jobs
        if jobs is None:
            await interaction.response.send_message(UNAVAILABLE, ephemeral=True)
            return
        user_id = str(interaction.user.id)

        def run(key: ThreadKey, surface: Surface) -> Coroutine[Any, Any, None]:
            return jobs.run_prediction(
                key=key, user_id=user_id, model=model, prompt=prompt, surface=surface
            )

        root = f"{interaction.user.mention} ran `{model[:100]}`: {_clip(prompt)}"
        await self._job_thread(interaction, name=f"{model}: {prompt}", root=root, run=run)

    async def workflow(
        self, interaction: discord.Interaction, workflow_id: str, inputs: str
    ) -> None:
        jobs = self._core.jobs
        if jobs is None:
            await interaction.response.send_message(UNAVAILABLE, ephemeral=True)
            return
        try:
            wf_id, values = parse_workflow_args(f"{workflow_id} {inputs}")
        except InputError as err:
            await interaction.response.send_message("⚠️ " + err.user_message, ephemeral=True)
            return
        user_id = str(interaction.user.id)

        def run(key: ThreadKey, surface: Surface) -> Coroutine[Any, Any, None]:
            return jobs.run_workflow(
                key=key, user_id=user_id, workflow_id=wf_id, inputs=values, surface=surface
            )

        root = f"{interaction.user.mention} ran workflow `{wf_id[:100]}`"
        await self._job_thread(interaction, name=f"workflow {wf_id}", root=root, run=run)

    async def _job_thread(
        self,
        interaction: discord.Interaction,
        *,
        name: str,
        root: str,
        run: Callable[[ThreadKey, Surface], Coroutine[Any, Any, None]],
    ) -> None:
        """A direct run's thread, opened like `/sense`'s; the run goes on in the background."""
        await interaction.response.defer(thinking=True)
        parent = self._parent_of(interaction)
        if parent is None:
            await interaction.edit_original_response(content=_NOT_HERE)
            return
        key = await self._open_thread(interaction, parent, name=name, root=root)
        if key is None:
            return
        surface = await self.surface_for(key, upload_limit=interaction.filesize_limit)
        assert surface is not None
        self._spawn(run(key, surface), name=f"job-{interaction.id}")

    async def models(self, query: str) -> list[tuple[str, str]]:
        jobs = self._core.jobs
        if jobs is None:
            return []
        try:
            return await jobs.models(query)
        except BotError as err:
            log.info("discord: model autocomplete failed: %s", err.detail)
            return []

    def _parent_of(self, interaction: discord.Interaction) -> discord.TextChannel | None:
        """The text channel a command's thread opens in (the parent when used in a thread)."""
        channel = interaction.channel
        if isinstance(channel, discord.Thread):
            channel = channel.parent
        return channel if isinstance(channel, discord.TextChannel) else None

    async def _open_thread(
        self, interaction: discord.Interaction, parent: discord.TextChannel, *, name: str, root: str
    ) -> ThreadKey | None:
        """Post the root message, open a public thread from it and point the deferred
        response at it. None (after telling the person) when Discord refuses.

        The root post takes a slot in the parent channel (and the global window); creating
        the thread takes a global slot in `route_through`."""
        try:
            await self.limiter.acquire(str(parent.id))
            with paid():
                message = await parent.send(root, allowed_mentions=NO_MENTIONS)
            title = " ".join(name.split())[:THREAD_NAME_MAX] or "each::sense"
            thread = await parent.create_thread(
                name=title, message=message, auto_archive_duration=1440
            )
        except discord.HTTPException as exc:
            log.warning("discord: could not open a thread in %s: %s", parent.id, exc)
            await interaction.edit_original_response(content=_NO_THREAD)
            return None
        await interaction.edit_original_response(content=f"Answering in {thread.mention}")
        return ThreadKey(PLATFORM, str(parent.guild.id), str(parent.id), str(thread.id))

    # --- messages and buttons -----------------------------------------------------------

    async def _on_message(self, message: discord.Message) -> None:
        """A message in one of our threads continues its session."""
        me = self.client.user
        channel = message.channel
        if message.author.bot or me is None or message.guild is None:
            return
        if not isinstance(channel, discord.Thread) or channel.parent_id is None:
            return
        mentioned = any(user.id == me.id for user in message.mentions)
        if not self.settings.discord_message_content and not mentioned:
            return
        text = strip_mention(message.content, me.id)
        if not text:
            return
        key = ThreadKey(PLATFORM, str(message.guild.id), str(channel.parent_id), str(channel.id))
        if self.core is None or not await self.core.conversations.is_bot_thread(key):
            return
        images = tuple(
            a.url for a in message.attachments if (a.content_type or "").startswith("image/")
        )[:MAX_IMAGES]
        turn = Turn(
            key=key,
            user_id=str(message.author.id),
            text=text,
            event_id=str(message.id),
            image_urls=images,
        )
        surface = await self.surface_for(key)
        assert surface is not None
        self._spawn(self.core.conversations.run(turn, surface), name=f"message-{message.id}")

    async def _on_interaction(self, interaction: discord.Interaction) -> None:
        """Button clicks: everything needed is in the custom_id (works after a restart)."""
        if interaction.type != discord.InteractionType.component or self.core is None:
            return
        data = cast(dict[str, Any], interaction.data or {})
        decoded = decode_button(str(data.get("custom_id", "")))
        key = self._thread_key(interaction)
        if decoded is None or key is None:
            return
        action, value = decoded
        user_id = str(interaction.user.id)
        conversations = self.core.conversations
        if action is ButtonAction.STOP:
            sentence = await conversations.stop(value, user_id=user_id)
            await interaction.response.send_message(sentence, ephemeral=True)
        elif action is ButtonAction.CANCEL_JOB:
            # Eachlabs' cancel may take longer than the 3 s Discord gives a click: answer
            # first (privately), then say how it went.
            await interaction.response.defer(ephemeral=True, thinking=True)
            jobs = self.core.jobs
            sentence = await jobs.cancel(value, user_id=user_id) if jobs else UNAVAILABLE
            await interaction.followup.send(sentence, ephemeral=True, allowed_mentions=NO_MENTIONS)
        elif action is ButtonAction.REGENERATE:
            await interaction.response.defer()
            surface = await self.surface_for(key)
            assert surface is not None
            work = conversations.regenerate(value, user_id=user_id, surface=surface)
            self._spawn(work, name=f"regen-{interaction.id}")
        elif action is ButtonAction.ANSWER:
            await interaction.response.defer()
            surface = await self.surface_for(key)
            assert surface is not None
            turn = Turn(key=key, user_id=user_id, text=value, event_id=str(interaction.id))
            self._spawn(self._answer(turn, surface), name=f"answer-{interaction.id}")

    async def _answer(self, turn: Turn, surface: Surface) -> None:
        """A clarification option: show who chose what, then answer in the same session."""
        await surface.post(View(text=f"<@{turn.user_id}> chose: {turn.text}"))
        assert self.core is not None
        await self.core.conversations.run(turn, surface)

    @staticmethod
    def _thread_key(interaction: discord.Interaction) -> ThreadKey | None:
        channel = interaction.channel
        parent_id = getattr(channel, "parent_id", None)
        if channel is None or parent_id is None or interaction.guild_id is None:
            return None
        return ThreadKey(PLATFORM, str(interaction.guild_id), str(parent_id), str(channel.id))


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


def _clip(text: str) -> str:
    return text if len(text) <= ROOT_PROMPT_MAX else text[: ROOT_PROMPT_MAX - 1] + "…"


_NOT_HERE = "Use this command in a server text channel (I answer in a thread there)."
_NO_THREAD = (
    "I could not open a thread here. I need these permissions in this channel: Send Messages, "
    "Create Public Threads and Send Messages in Threads."
)
