"""The real `DiscordBot`, on a core built as production builds it, connected to a fake.

One place for what every Discord end-to-end test and benchmark needs: settings pointed at
the fake, fast start-up options, and discord.py's endpoints put back afterwards (it keeps them
as class attributes, so one rig would otherwise leak into the next).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import discord.gateway
import discord.http
from pydantic import SecretStr

from adapters.discord.client import DiscordBot
from bot.app import Core, build_core, close_core, simulated
from bot.config import Settings
from simulator import Simulator
from tests.fakes.discord import FakeDiscord


@contextlib.asynccontextmanager
async def running_bot(
    fake: FakeDiscord, sim: Simulator, settings: Settings
) -> AsyncIterator[tuple[Core, DiscordBot]]:
    """Start the bot against `fake` with `sim` as each::sense; READY when this yields."""
    base = discord.http.Route.BASE
    gateway = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    settings = settings.model_copy(
        update={
            "discord_token": SecretStr(fake.token),
            "discord_api_url": fake.api_url,
            "discord_gateway_url": fake.gateway_url,
        }
    )
    core = await build_core(simulated(settings, sim))
    bot = DiscordBot(core.settings, core, guild_ready_timeout=0.05, chunk_guilds_at_startup=False)
    try:
        await bot.start()
        yield core, bot
    finally:
        await bot.stop()
        await close_core(core)
        discord.http.Route.BASE = base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = gateway
