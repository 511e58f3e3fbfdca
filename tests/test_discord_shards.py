"""Discord sharding: two bot processes (here two `DiscordBot`s with their own cores on one
PostgreSQL), each running two shards of four with `AutoShardedClient`, against the fake
Discord's per-shard IDENTIFY/READY. Each guild lives on exactly one shard, so exactly one
process serves it, end to end."""

from __future__ import annotations

import contextlib
from typing import Any

from bot.config import Settings
from simulator import Simulator
from tests.discord_bot import running_bot
from tests.fakes.discord import FakeDiscord
from tests.postgres import fresh_schema_url

SHARDS = 4


def settings(database_url: str, shard_ids: str) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        database_url=database_url,
        media_allow_insecure=True,
        discord_shard_count=SHARDS,
        discord_shard_ids=shard_ids,
    )


async def test_two_processes_with_two_shards_each_serve_each_guild_once() -> None:
    async with (
        fresh_schema_url() as database_url,
        FakeDiscord() as fake,
        Simulator(speed=1000) as sim,
        contextlib.AsyncExitStack() as stack,
    ):
        fake.recommended_shards = SHARDS
        bots: list[Any] = []
        for shard_ids in ("0,1", "2,3"):
            _, bot = await stack.enter_async_context(
                running_bot(fake, sim, settings(database_url, shard_ids))
            )
            bots.append(bot)
        shards = sorted(tuple(s.shard) for s in fake.sessions if s.valid)
        assert shards == [(0, SHARDS), (1, SHARDS), (2, SHARDS), (3, SHARDS)]
        home = (int(fake.guild_id) >> 22) % SHARDS
        owners = [b for b in bots if b.client.get_guild(int(fake.guild_id)) is not None]
        assert len(owners) == 1 and home in owners[0].client.shards

        inter = await fake.slash("sense", {"prompt": "just text"})
        await fake.wait_for(
            lambda: (
                inter.original_id and "Answering in" in fake.messages[inter.original_id]["content"]
            ),
            what="the answer's thread",
        )
        await fake.wait_for(lambda: sim.requests, what="the turn")
        assert len(sim.requests) == 1 and len(fake.threads()) == 1
