"""Where no thread can open: a DM with the bot, and places the bot is not in.

Commands work in DMs and as a user-installed app (`commands.py` allows both). Where a thread
cannot open, the adapter names the conversation (`Command.place`) and the core begins a new
session there; later messages and clicks continue it:

- **A DM with the bot** (interaction `context` 1): the conversation is the DM itself,
  `ThreadKey(discord, "", <dm channel>, "dm:<user>")`. `/sense` there starts a new session;
  a plain message continues the latest one (or starts the first). The bot posts in the DM like
  in a thread (`DMSurface`), with no time limit.
- **A place the bot is not in** (a group DM, `context` 2, or a server where only the person
  installed the app: a guild the bot has not joined): `ThreadKey(discord, <guild or "">,
  <channel>, "via:<user>")`. The bot can neither post nor read there, so it answers through
  the interaction: followups and their edits (`InteractionSurface`), which work for 15 minutes
  after the interaction (its token). A click on one of those messages is a new interaction
  with a fresh token and continues the same conversation. A turn or run that outlives the
  token moves to the person's DM: shortly before the token runs out the channel is told, and
  every later post, and every edit of a message the token can no longer reach, goes to the DM
  as a new message (edited there from then on). With no live interaction at all (after a
  restart) everything goes to the DM.

`Places` remembers the newest interaction of each such conversation, with when it arrived
(discord.py's own `is_expired` reads the time from the snowflake; the clock here is the bot's).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import discord

from adapters.discord.ratelimit import ChannelLimiter
from adapters.discord.surface import DEFAULT_UPLOAD_LIMIT, DiscordSurface
from adapters.discord.translate import person_of
from bot.models import ThreadKey

log = logging.getLogger(__name__)

TOKEN_LIFETIME = 15 * 60.0  # an interaction's followups and edits work this long
HANDOVER_MARGIN = 60.0  # move to the DM this long before the token runs out
MAX_PLACES = 2000  # conversations remembered (the newest interaction of each)
NO_MENTIONS = discord.AllowedMentions.none()
MOVING = "⏳ This is taking longer than Discord lets me answer here, so I'll finish in our DM."
CONTINUING = (
    "⏳ Continuing here: your request from {where} took longer than Discord lets me answer there."
)


@dataclass
class Place:
    """One conversation answered through interactions, and where it went after them."""

    user_id: int
    interaction: discord.Interaction | None = None
    received_at: float = float("-inf")  # monotonic
    upload_limit: int = DEFAULT_UPLOAD_LIMIT
    dm: discord.DMChannel | None = None
    moved: dict[str, str] = field(default_factory=dict)  # message id -> its DM successor
    handed_over: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class Places:
    """The newest interaction of each `via:` conversation (bounded, oldest forgotten)."""

    def __init__(
        self,
        client: discord.Client,
        *,
        lifetime: float = TOKEN_LIFETIME,
        margin: float = HANDOVER_MARGIN,
    ) -> None:
        self.client = client
        self.lifetime = lifetime
        self.margin = margin
        self._places: OrderedDict[ThreadKey, Place] = OrderedDict()

    def note(self, key: ThreadKey, interaction: discord.Interaction) -> None:
        """`interaction` (just received) now answers for `key`."""
        place = Place(
            user_id=interaction.user.id,
            interaction=interaction,
            received_at=time.monotonic(),
            upload_limit=interaction.filesize_limit,
        )
        self._places[key] = place
        self._places.move_to_end(key)
        while len(self._places) > MAX_PLACES:
            self._places.popitem(last=False)

    def get(self, key: ThreadKey) -> Place:
        """The conversation's newest place; without one (a restart), its person's DM."""
        place = self._places.get(key)
        if place is None:
            place = Place(user_id=person_of(key) or 0)
        return place

    def live(self, place: Place) -> bool:
        """Whether the interaction may still be answered here (before the margin)."""
        return (
            place.interaction is not None
            and not place.handed_over
            and time.monotonic() - place.received_at < self.lifetime - self.margin
        )

    def valid(self, place: Place) -> bool:
        """Whether the token still works at all (for the last word before moving)."""
        return (
            place.interaction is not None and time.monotonic() - place.received_at < self.lifetime
        )


class DMSurface(DiscordSurface):
    """The bot's DM with a person, as a thread: the channel is the DM."""

    def _messageable(self, client: discord.Client, key: ThreadKey) -> discord.PartialMessageable:
        return client.get_partial_messageable(int(key.channel), type=discord.ChannelType.private)

    def _channel_id(self, key: ThreadKey) -> str:
        return key.channel


class InteractionSurface(DiscordSurface):
    """A conversation answered through the interaction's followups, then in the DM."""

    def __init__(
        self,
        *,
        client: discord.Client,
        key: ThreadKey,
        limiter: ChannelLimiter,
        places: Places,
        place: Place,
    ) -> None:
        self._client = client
        self._places = places
        self._place = place
        super().__init__(client=client, key=key, limiter=limiter, upload_limit=place.upload_limit)

    def _messageable(self, client: discord.Client, key: ThreadKey) -> discord.PartialMessageable:
        # never written to: sends go through the interaction or the DM
        return client.get_partial_messageable(int(key.channel))

    def _channel_id(self, key: ThreadKey) -> str:
        return key.channel

    async def _send(self, **fields: Any) -> str:
        place = self._place
        if self._places.live(place) and place.interaction is not None:
            message = await place.interaction.followup.send(
                wait=True, allowed_mentions=NO_MENTIONS, **fields
            )
            return str(message.id)
        return await self._send_dm(**fields)

    async def _edit_message(self, message_id: str, **fields: Any) -> None:
        place = self._place
        moved = place.moved.get(message_id)
        if moved is None and self._places.live(place) and place.interaction is not None:
            await place.interaction.followup.edit_message(
                int(message_id), allowed_mentions=NO_MENTIONS, **fields
            )
            return
        if moved is None:  # the token cannot reach it any more: the rest goes to the DM
            place.moved[message_id] = await self._send_dm(**fields)
            return
        dm = await self._dm()
        await dm.get_partial_message(int(moved)).edit(allowed_mentions=NO_MENTIONS, **fields)

    async def _send_dm(self, **fields: Any) -> str:
        dm = await self._dm()
        message = await dm.send(allowed_mentions=NO_MENTIONS, **fields)
        return str(message.id)

    async def _dm(self) -> discord.DMChannel:
        """The person's DM, opened once; the first time, both places are told of the move."""
        place = self._place
        async with place.lock:
            if place.dm is not None:
                return place.dm
            first = place.interaction is not None and not place.handed_over
            if first and self._places.valid(place) and place.interaction is not None:
                try:
                    await place.interaction.followup.send(MOVING, allowed_mentions=NO_MENTIONS)
                except discord.HTTPException as exc:
                    log.info("discord: could not say the answer moves to the DM: %s", exc.status)
            place.handed_over = True
            place.dm = await self._client.create_dm(discord.Object(id=place.user_id))
            if first:
                where = f"<#{self.key.channel}>" if self.key.workspace else "a group chat"
                await place.dm.send(CONTINUING.format(where=where), allowed_mentions=NO_MENTIONS)
            return place.dm


__all__ = ["DMSurface", "InteractionSurface", "Place", "Places"]
