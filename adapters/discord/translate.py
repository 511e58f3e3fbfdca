"""discord.py objects in, neutral objects out: one function per payload kind.

A slash command's options become one argument line (so parsing and its refusals are the
core's), a message in a thread becomes a `Message`, a button click a `Click`, a modal's
submission a `Submission`, a message context menu a `Shortcut`. Each carries a
`DiscordReply` where the person must be answered through the interaction. Attachments
become `ImageRef`s with what Discord declares (type, size): the core checks and re-hosts
them, since attachment URLs are signed and expire. Each also carries the person's role ids
(every interaction and guild message carries the member's roles), so access rules by role
need no extra call.
"""

from __future__ import annotations

import logging
import re
from typing import Any, cast

import discord

from adapters.discord.modals import FormModal, submitted_text
from bot.buttons import decode_button
from bot.i18n import _
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
# `ThreadKey.thread` of a conversation where no thread can open (see `dms.py`)
DM = "dm:"  # the bot's DM with a person: dm:<user id>
VIA = "via:"  # answered through interactions (the bot is not there): via:<user id>
MAX_IMAGES = 4  # each::sense takes up to 4 reference images
# A mention of a person (`<@1>`, `<@!1>`), a role (`<@&1>`) or a channel (`<#1>`), as a
# string option carries it when the person picks one while typing.
_MENTION = re.compile(r"<(?:@[!&]?|#)(\d+)>")
NO_MENTIONS = discord.AllowedMentions.none()


def strip_mention(text: str, bot_id: int) -> str:
    """`<@bot> hello` → `hello` (a mention is how follow-ups arrive without the intent)."""
    return re.sub(rf"^\s*<@!?{bot_id}>\s*", "", text or "").strip()


def parent_of(channel: object) -> discord.TextChannel | None:
    """The text channel a command's thread opens in (the parent when used in a thread)."""
    if isinstance(channel, discord.Thread):
        channel = channel.parent
    return channel if isinstance(channel, discord.TextChannel) else None


def role_ids(person: object) -> frozenset[str]:
    """A guild member's role ids, without @everyone (which everyone has); none for a user
    outside a guild (a DM)."""
    if not isinstance(person, discord.Member):
        return frozenset()
    return frozenset(str(role.id) for role in person.roles if not role.is_default())


def manages(thread: discord.Thread, person: object) -> bool | None:
    """Whether a message's author has Manage Channels there (the admin rule of commands),
    from the cached roles and overwrites; None when that cannot be worked out."""
    if not isinstance(person, discord.Member):
        return None
    try:
        return thread.permissions_for(person).manage_channels
    except discord.ClientException:  # the parent channel is not cached
        return None


def ids_in(text: str) -> str:
    """Mentions as their bare ids, for `/sense-admin`'s arguments (`<@&123>` → `123`)."""
    return _MENTION.sub(lambda match: match.group(1), text)


def dm_key(channel_id: int | str, user_id: int | str) -> ThreadKey:
    return ThreadKey(PLATFORM, "", str(channel_id), f"{DM}{user_id}")


def via_key(guild_id: int | str | None, channel_id: int | str, user_id: int | str) -> ThreadKey:
    return ThreadKey(PLATFORM, str(guild_id or ""), str(channel_id), f"{VIA}{user_id}")


def is_dm(key: ThreadKey) -> bool:
    return key.thread.startswith(DM)


def is_via(key: ThreadKey) -> bool:
    return key.thread.startswith(VIA)


def person_of(key: ThreadKey) -> int | None:
    """The person a DM or interaction conversation belongs to."""
    _, _, user = key.thread.partition(":")
    return int(user) if user.isdigit() else None


def place_of(interaction: discord.Interaction) -> ThreadKey | None:
    """Where an interaction's conversation goes when no thread can open; None when one can
    (a text channel of a server the bot is in)."""
    context, user = interaction.context, interaction.user.id
    channel_id = interaction.channel_id or 0
    if context.dm_channel:
        return dm_key(channel_id, user)
    guild = interaction.guild_id
    present = guild is not None and interaction.client.get_guild(guild) is not None
    if present and parent_of(interaction.channel) is not None:
        return None
    return via_key(guild, channel_id, user)


def place_of_message(message: discord.Message) -> ThreadKey | None:
    """A person's message in their DM with the bot: the DM's conversation; else None."""
    if message.guild is None and isinstance(message.channel, discord.DMChannel):
        return dm_key(message.channel.id, message.author.id)
    return None


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


def locale_of(interaction: discord.Interaction) -> str | None:
    """The person's client language (`fr`, `ja`, `en-US`), as every interaction carries it."""
    locale = getattr(interaction, "locale", None)
    return str(locale.value) if isinstance(locale, discord.Locale) else None


def to_command(
    interaction: discord.Interaction, name: CommandName, text: str, **extra: Any
) -> Command:
    """A slash command. In a server the bot is in it opens a thread in the text channel;
    elsewhere (a DM, a place the bot is not in) it names the conversation (`place`)."""
    if name is CommandName.ADMIN:
        text = ids_in(text)
    place = place_of(interaction)
    parent = parent_of(interaction.channel) if place is None else None
    guild = str(interaction.guild_id or "")
    channel_id = str(parent.id) if parent is not None else str(interaction.channel_id or "")
    # a DM belongs to the person in it: their settings there are theirs to change
    admin = True if place is not None and is_dm(place) else interaction.permissions.manage_channels
    return Command(
        name=name,
        channel=ChannelKey(PLATFORM, guild, channel_id),
        user_id=str(interaction.user.id),
        text=text,
        reply=DiscordReply(interaction),
        admin=admin,
        event_id=str(interaction.id),
        threadable=place is None,
        place=place,
        roles=role_ids(interaction.user),
        adult=adult(interaction.channel),
        locale=locale_of(interaction),
        **extra,
    )


def to_message(
    message: discord.Message, *, bot_id: int, reads_content: bool, locale: str | None = None
) -> Message | None:
    """A person's message in a thread or in their DM with the bot, or None (bots, other
    channels, unreadable without the intent). Messages carry no locale: `locale` is the
    author's, when known (their last interaction's)."""
    channel = message.channel
    if message.author.bot:
        return None  # never answer a bot: two bots would answer each other forever
    dm = place_of_message(message)
    if dm is not None:  # a DM continues the DM's latest conversation (or begins one)
        return Message(
            key=dm,
            user_id=str(message.author.id),
            text=strip_mention(message.content, bot_id),
            message_id=str(message.id),
            direct=True,
            images=tuple(image_ref(a) for a in message.attachments),
            locale=locale,
        )
    if message.guild is None:
        return None
    if not isinstance(channel, discord.Thread) or channel.parent_id is None:
        return None
    mentioned = any(user.id == bot_id for user in message.mentions)
    if not reads_content and not mentioned:
        return None  # without the message content intent only mentions carry text
    author = message.author
    return Message(
        key=ThreadKey(PLATFORM, str(message.guild.id), str(channel.parent_id), str(channel.id)),
        user_id=str(author.id),
        text=strip_mention(message.content, bot_id),
        message_id=str(message.id),
        images=tuple(image_ref(a) for a in message.attachments),
        adult=adult(channel),
        admin=manages(channel, author),
        roles=role_ids(author),
        locale=locale,
    )


def _images(message: discord.Message) -> tuple[str, ...]:
    images = (a.url for a in message.attachments if (a.content_type or "").startswith("image/"))
    return tuple(images)[:MAX_IMAGES]


def to_click(interaction: discord.Interaction) -> Click | None:
    """A click on one of our buttons: in a thread, or in a conversation without one (a DM,
    a place the bot is not in: the clicker's conversation there); else None."""
    data = cast(dict[str, Any], interaction.data or {})
    decoded = decode_button(str(data.get("custom_id", "")))
    channel = interaction.channel
    if decoded is None or channel is None:
        return None
    key = _click_place(interaction, channel)
    if key is None:
        return None
    action, value = decoded
    return Click(
        key=key,
        user_id=str(interaction.user.id),
        action=action,
        value=value,
        reply=DiscordReply(interaction, edit_original=False),
        event_id=str(interaction.id),
        roles=role_ids(interaction.user),
        adult=adult(channel),
        locale=locale_of(interaction),
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


def _click_place(interaction: discord.Interaction, channel: Any) -> ThreadKey | None:
    parent_id = getattr(channel, "parent_id", None)
    guild = interaction.guild_id
    if guild is not None and parent_id is not None and interaction.client.get_guild(guild):
        return ThreadKey(PLATFORM, str(guild), str(parent_id), str(channel.id))
    if isinstance(channel, discord.Thread):
        return None
    return place_of(interaction)


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
        if is_dm(key) or is_via(key):  # the answer follows right here: drop "thinking…"
            try:
                await self._interaction.delete_original_response()
            except discord.HTTPException as exc:
                log.info("discord: could not remove the thinking response: %s", exc.status)
            return
        try:
            answering = _("Answering in {thread}").format(thread=f"<#{key.thread}>")
            await self._interaction.edit_original_response(content=answering)
        except discord.HTTPException as exc:
            log.warning("discord: could not point at the thread: %s", exc.status)

    def _thinking(self) -> bool:
        kind = self._interaction.response.type
        return kind is discord.InteractionResponseType.deferred_channel_message
