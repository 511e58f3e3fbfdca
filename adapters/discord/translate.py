"""discord.py objects in, neutral objects out: one function per payload kind.

A slash command's options become one argument line (so parsing and its refusals are the
core's), a message in a thread becomes a `Message`, a button click a `Click`, a modal's
submission a `Submission`, a message context menu a `Shortcut`. Each carries a
`DiscordReply` where the person must be answered through the interaction. Attachments
become `ImageRef`s with what Discord declares (type, size): the core checks and re-hosts
them, since attachment URLs are signed and expire.
"""

from __future__ import annotations

import logging
import re
from typing import Any, cast

import discord

from adapters.discord.modals import FormModal, submitted_text
from bot.buttons import decode_button
from bot.models import (
    ButtonAction,
    ChannelKey,
    Click,
    Command,
    CommandName,
    Form,
    ImageRef,
    Message,
    Shortcut,
    Submission,
    ThreadKey,
)

log = logging.getLogger(__name__)

PLATFORM = "discord"
NO_MENTIONS = discord.AllowedMentions.none()


def strip_mention(text: str, bot_id: int) -> str:
    """`<@bot> hello` → `hello` (a mention is how follow-ups arrive without the intent)."""
    return re.sub(rf"^\s*<@!?{bot_id}>\s*", "", text or "").strip()


def parent_of(channel: object) -> discord.TextChannel | None:
    """The text channel a command's thread opens in (the parent when used in a thread)."""
    if isinstance(channel, discord.Thread):
        channel = channel.parent
    return channel if isinstance(channel, discord.TextChannel) else None


def adult(channel: object) -> bool:
    """Whether Discord marks the channel age-restricted (a thread: its parent)."""
    is_nsfw = getattr(channel, "is_nsfw", None)
    return bool(is_nsfw()) if callable(is_nsfw) else False


def image_ref(attachment: discord.Attachment) -> ImageRef:
    """An attachment as the core checks it: Discord's declared type and size, and its
    (signed, expiring) URL to download it from now."""
    return ImageRef(
        url=attachment.url,
        filename=attachment.filename,
        content_type=attachment.content_type,
        size=attachment.size,
    )


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
        adult=adult(interaction.channel),
        **extra,
    )


def to_message(message: discord.Message, *, bot_id: int, reads_content: bool) -> Message | None:
    """A person's message in a thread, or None (bots, DMs, unreadable without the intent)."""
    channel = message.channel
    if message.author.bot or message.guild is None:
        return None  # never answer a bot: two bots would answer each other forever
    if not isinstance(channel, discord.Thread) or channel.parent_id is None:
        return None
    mentioned = any(user.id == bot_id for user in message.mentions)
    if not reads_content and not mentioned:
        return None  # without the message content intent only mentions carry text
    return Message(
        key=ThreadKey(PLATFORM, str(message.guild.id), str(channel.parent_id), str(channel.id)),
        user_id=str(message.author.id),
        text=strip_mention(message.content, bot_id),
        message_id=str(message.id),
        images=tuple(image_ref(a) for a in message.attachments),
        adult=adult(channel),
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
        adult=adult(channel),
    )


def modal_of(interaction: discord.Interaction) -> tuple[ButtonAction, str, str] | None:
    """(action, value, typed text) of a submitted modal of ours, or None."""
    data = cast(dict[str, Any], interaction.data or {})
    decoded = decode_button(str(data.get("custom_id", "")))
    if decoded is None:
        return None
    action, value = decoded
    return action, value, submitted_text(data.get("components") or [])


def to_submission(
    interaction: discord.Interaction, action: ButtonAction, value: str, text: str
) -> Submission | None:
    """A modal sent from one of our threads (a generation's Remix form), or None."""
    channel = interaction.channel
    parent_id = getattr(channel, "parent_id", None)
    if channel is None or parent_id is None or interaction.guild_id is None:
        return None
    return Submission(
        key=ThreadKey(PLATFORM, str(interaction.guild_id), str(parent_id), str(channel.id)),
        user_id=str(interaction.user.id),
        action=action,
        value=value,
        text=text,
        reply=DiscordReply(interaction),
        event_id=str(interaction.id),
        adult=adult(channel),
    )


def message_target(message: discord.Message) -> str:
    """What a message action's form carries to find the message again: `<channel>:<id>`."""
    return f"{message.channel.id}:{message.id}"


def parse_target(target: str) -> tuple[int, int] | None:
    channel, sep, message = target.partition(":")
    if not sep or not channel.isdigit() or not message.isdigit():
        return None
    return int(channel), int(message)


def to_shortcut(
    interaction: discord.Interaction,
    message: discord.Message,
    action: ButtonAction,
    *,
    text: str | None = None,
) -> Shortcut:
    """A message context menu ("Remix with each::sense", "Animate") on `message`, or the
    Remix form sent for it (`text`). The thread is the message's own when it is in one."""
    channel = message.channel
    guild = str(interaction.guild_id or "")
    parent = parent_of(channel)
    key = None
    if isinstance(channel, discord.Thread) and channel.parent_id is not None:
        key = ThreadKey(PLATFORM, guild, str(channel.parent_id), str(channel.id))
    where = str(parent.id) if parent is not None else str(channel.id)
    return Shortcut(
        action=action,
        channel=ChannelKey(PLATFORM, guild, where),
        user_id=str(interaction.user.id),
        images=tuple(image_ref(a) for a in message.attachments),
        reply=DiscordReply(interaction),
        key=key,
        target=message_target(message),
        text=text,
        event_id=str(interaction.id),
        adult=adult(channel),
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

    async def form(self, form: Form) -> bool:
        """A modal is only ever the first response to an interaction."""
        if self._interaction.response.is_done():
            return False
        try:
            await self._interaction.response.send_modal(FormModal(form))
        except discord.HTTPException as exc:
            log.warning("discord: could not open a modal: %s", exc.status)
            return False
        return True

    async def opened(self, key: ThreadKey) -> None:
        self._original_used = True
        try:
            await self._interaction.edit_original_response(content=f"Answering in <#{key.thread}>")
        except discord.HTTPException as exc:
            log.warning("discord: could not point at the thread: %s", exc.status)

    def _thinking(self) -> bool:
        kind = self._interaction.response.type
        return kind is discord.InteractionResponseType.deferred_channel_message
