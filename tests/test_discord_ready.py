"""Start-up: the bot is ready as soon as every guild READY listed has arrived, without waiting
out discord.py's `guild_ready_timeout`, and never before a listed guild has arrived."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import discord.gateway
import discord.http
from pydantic import SecretStr

from adapters.discord.client import DiscordBot
from bench.common import bench_settings
from bot.app import build_core, close_core, simulated
from simulator import Simulator
from tests.fakes.discord import FakeDiscord

PATIENT = 30.0  # a guild_ready_timeout no test could wait out


class SlowGuilds(FakeDiscord):
    """The fake Discord, but a guild's GUILD_CREATE comes a while after READY."""

    def __init__(self, delay: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.delay = delay

    async def dispatch(self, event: str, data: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        if event == "GUILD_CREATE":
            await asyncio.sleep(self.delay)
        return await super().dispatch(event, data, *args, **kwargs)


@contextlib.asynccontextmanager
async def started(fake: FakeDiscord) -> AsyncIterator[DiscordBot]:
    base = discord.http.Route.BASE
    gateway = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    async with Simulator(speed=1000) as sim:
        settings = bench_settings().model_copy(
            update={
                "discord_token": SecretStr(fake.token),
                "discord_api_url": fake.api_url,
                "discord_gateway_url": fake.gateway_url,
            }
        )
        core = await build_core(simulated(settings, sim))
        bot = DiscordBot(core.settings, core, guild_ready_timeout=PATIENT)
        try:
            await asyncio.wait_for(bot.start(), PATIENT / 2)
            yield bot
        finally:
            await bot.stop()
            await close_core(core)
            discord.http.Route.BASE = base
            discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = gateway


async def test_ready_once_the_listed_guilds_arrived_not_after_guild_ready_timeout() -> None:
    async with FakeDiscord() as fake, started(fake) as bot:
        guild = bot.client.get_guild(int(fake.guild_id))
        assert guild is not None and not guild.unavailable
        assert bot.client.get_channel(int(fake.channel_id)) is not None
        assert not bot.client.is_ready()  # discord.py still waits for more guilds: we did not


async def test_a_listed_guild_that_arrives_late_is_waited_for() -> None:
    async with SlowGuilds(delay=0.5) as fake, started(fake) as bot:
        guild = bot.client.get_guild(int(fake.guild_id))
        assert guild is not None and not guild.unavailable
        assert bot.client.get_channel(int(fake.channel_id)) is not None
