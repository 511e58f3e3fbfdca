"""discord.py objects in, neutral objects out: one function per payload kind.

A slash command's options become one argument line (so parsing and its refusals are the
core's), a message in a thread becomes a `Message`, a button click a `Click`. Each carries a
`DiscordReply` where the person must be answered through the interaction.
"""

from __future__ import annotations

import logging
import re
from typing import Any, cast

import discord

from bot.buttons import decode_button
from bot.i18n import _
from bot.models import ChannelKey, Click, Command, CommandName, Message, ThreadKey

log = logging.getLogger(__name__)

PLATFORM = "discord"
MAX_IMAGES = 4  # each::sense takes up to 4 reference images
NO_MENTIONS = discord.AllowedMentions.none()


def strip_mention(text: str, bot_id: int) -> str:
    """`<@bot> hello` → `hello` (a mention is how follow-ups arrive without the intent)."""
    return re.sub(rf"^\s*<@!?{bot_id}>\s*", "", text or "").strip()


def parent_of(channel: object) -> discord.TextChannel | None:
    """The text channel a command's thread opens in (the parent when used in a thread)."""
    if isinstance(channel, discord.Thread):
        channel = channel.parent
    return channel if isinstance(channel, discord.TextChannel) else None


def locale_of(interaction: discord.Interaction) -> str | None:
    """The person's client language (`fr`, `ja`, `en-US`), as every interaction carries it."""
    locale = getattr(interaction, "locale", None)
    return str(locale.value) if isinstance(locale, discord.Locale) else None


def to_command(
    interaction: discord.Interaction, name: CommandName, text: str, **extra: Any
) -> Command:
    parent = parent_of(interaction.channel)
    guild = str(interaction.guild_id or "")
    channel_id = str(parent.id) if parent is not None else str(interaction.channel_id or "")
    return Command(
        name=name,
        channel=ChannelKey(PLATFORM, guild, channel_id),
        user_id=str(interaction.user.id),
        text=text,
        reply=DiscordReply(interaction),
        admin=interaction.permissions.manage_channels,
        event_id=str(interaction.id),
        threadable=parent is not None,
        locale=locale_of(interaction),
        **extra,
    )


def to_message(
    message: discord.Message, *, bot_id: int, reads_content: bool, locale: str | None = None
) -> Message | None:
    """A person's message in a thread, or None (bots, DMs, unreadable without the intent).
    Messages carry no locale: `locale` is the author's, when known (their last interaction's)."""
    channel = message.channel
    if message.author.bot or message.guild is None:
        return None  # never answer a bot: two bots would answer each other forever
    if not isinstance(channel, discord.Thread) or channel.parent_id is None:
        return None
    mentioned = any(user.id == bot_id for user in message.mentions)
    if not reads_content and not mentioned:
        return None  # without the message content intent only mentions carry text
    images = tuple(
        a.url for a in message.attachments if (a.content_type or "").startswith("image/")
    )[:MAX_IMAGES]
    return Message(
        key=ThreadKey(PLATFORM, str(message.guild.id), str(channel.parent_id), str(channel.id)),
        user_id=str(message.author.id),
        text=strip_mention(message.content, bot_id),
        message_id=str(message.id),
        image_urls=images,
        locale=locale,
    )


def to_click(interaction: discord.Interaction) -> Click | None:
    """A click on one of our buttons in a thread, or None."""
    data = cast(dict[str, Any], interaction.data or {})
    decoded = decode_button(str(data.get("custom_id", "")))
    channel = interaction.channel
    parent_id = getattr(channel, "parent_id", None)
    if decoded is None or channel is None or parent_id is None or interaction.guild_id is None:
        return None
    action, value = decoded
    return Click(
        key=ThreadKey(PLATFORM, str(interaction.guild_id), str(parent_id), str(channel.id)),
        user_id=str(interaction.user.id),
        action=action,
        value=value,
        reply=DiscordReply(interaction, edit_original=False),
        event_id=str(interaction.id),
        locale=locale_of(interaction),
    )


class DiscordReply:
    """Answers through the interaction: its response when not yet answered, else the
    deferred response (while it still says "thinking"), else an ephemeral followup."""

    def __init__(self, interaction: discord.Interaction, *, edit_original: bool = True) -> None:
        self._interaction = interaction
        # a command's deferred "thinking" response becomes its answer; a click's stays
        self._original_used = not edit_original

    async def tell(self, text: str, *, public: bool = False) -> None:
        interaction = self._interaction
        try:
            if not interaction.response.is_done():
                await interaction.response.send_message(
                    text, ephemeral=not public, allowed_mentions=NO_MENTIONS
                )
            elif self._thinking() and not self._original_used:
                self._original_used = True
                await interaction.edit_original_response(content=text)
            else:
                await interaction.followup.send(
                    text, ephemeral=not public, allowed_mentions=NO_MENTIONS
                )
        except discord.HTTPException as exc:
            log.warning("discord: could not answer an interaction: %s", exc.status)

    async def opened(self, key: ThreadKey) -> None:
        self._original_used = True
        try:
            answering = _("Answering in {thread}").format(thread=f"<#{key.thread}>")
            await self._interaction.edit_original_response(content=answering)
        except discord.HTTPException as exc:
            log.warning("discord: could not point at the thread: %s", exc.status)

    def _thinking(self) -> bool:
        kind = self._interaction.response.type
        return kind is discord.InteractionResponseType.deferred_channel_message
