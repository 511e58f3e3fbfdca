"""A plain `discord.Client` logged in to a `FakeDiscord` and connected to its Gateway, for the
tests that prove the fake against the real library (the bot itself has `discord_bot.py`).

discord.py keeps its endpoints as class attributes; they are put back afterwards so one test
cannot leak its fake into the next.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import discord
import discord.gateway
import discord.http

from adapters.discord.endpoints import use_endpoints
from tests.fakes.discord import FakeDiscord


class QuickIdentifyClient(discord.Client):
    """discord.py waits 5 s before every IDENTIFY after the first (`before_identify_hook`,
    its documented hook); tests that make it identify again do not need to."""

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        return None


def content_intents() -> discord.Intents:
    intents = discord.Intents.default()
    intents.message_content = True
    return intents


@contextlib.asynccontextmanager
async def connected_client(
    fake: FakeDiscord,
    *,
    intents: discord.Intents | None = None,
    client_class: type[discord.Client] = discord.Client,
    reconnect: bool = False,
    **options: Any,
) -> AsyncIterator[discord.Client]:
    """A client READY on `fake` (message content intent unless `intents` says otherwise).
    `reconnect=True` is `connect()` as the bot runs it (closes like 4014 raise their own
    errors; with False, discord.py gives up on any close it cannot resume)."""
    base = discord.http.Route.BASE
    gateway = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    use_endpoints(api_url=fake.api_url, gateway_url=fake.gateway_url)
    client = client_class(
        intents=intents or content_intents(),
        guild_ready_timeout=0.05,
        chunk_guilds_at_startup=False,
        allowed_mentions=discord.AllowedMentions.none(),
        **options,
    )
    task: asyncio.Task[None] | None = None
    try:
        await client.login(fake.token)
        task = asyncio.create_task(client.connect(reconnect=reconnect))
        ready = asyncio.create_task(client.wait_until_ready())
        done, _ = await asyncio.wait({task, ready}, timeout=10, return_when="FIRST_COMPLETED")
        if ready not in done:
            ready.cancel()
            if task in done:
                task.result()  # the connection failed: raise why
            raise AssertionError("discord.py did not get READY from the fake")
        yield client
    finally:
        await client.close()
        if task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 10)
        discord.http.Route.BASE = base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = gateway
