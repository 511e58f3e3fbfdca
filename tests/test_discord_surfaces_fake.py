"""The fake Discord's DMs, group DMs, servers the bot is not in and the interaction token's
lifetime, proved against the real discord.py (what the fake promises is in
`tests/fakes/discord_surfaces.py`)."""

from __future__ import annotations

import time
from typing import Any

import discord
import pytest
from discord import app_commands

from tests.discord_client import connected_client
from tests.fakes.discord import FakeDiscord


def tree_with_ping(client: discord.Client, seen: list[discord.Interaction]) -> None:
    tree = app_commands.CommandTree(client)

    @tree.command(name="ping", description="ping")
    @app_commands.allowed_installs(guilds=True, users=True)
    @app_commands.allowed_contexts(guilds=True, dms=True, private_channels=True)
    async def ping(interaction: discord.Interaction) -> None:
        seen.append(interaction)
        await interaction.response.defer(thinking=True)

    client.tree = tree  # type: ignore[attr-defined]


async def test_interaction_contexts_read_as_discord_py_reads_them() -> None:
    async with FakeDiscord() as fake, connected_client(fake) as client:
        seen: list[discord.Interaction] = []
        tree_with_ping(client, seen)
        dm = fake.open_dm(fake.user_id)
        group = fake.open_group_dm(fake.user_id, fake.admin_id)
        foreign = fake.add_foreign_channel()
        for channel in (fake.channel_id, dm, group, foreign):
            await fake.slash("ping", channel_id=channel)
        await fake.slash("ping", channel_id=dm, user_install=True)
        await fake.wait_for(lambda: len(seen) == 5, what="five interactions")
    here, in_dm, in_group, abroad, installed = seen
    assert here.context.guild and here.is_guild_integration() and here.guild is not None
    assert isinstance(here.channel, discord.TextChannel)
    assert in_dm.context.dm_channel and in_dm.guild_id is None
    assert isinstance(in_dm.channel, discord.DMChannel) and not in_dm.is_user_integration()
    assert in_group.context.private_channel and isinstance(in_group.channel, discord.GroupChannel)
    assert in_group.is_user_integration() and in_group.guild_id is None
    # a server the bot is not in: discord.py makes up a channel object, but knows no guild
    assert abroad.context.guild and abroad.guild_id == int(fake.foreign_guild_id)
    assert client.get_guild(abroad.guild_id) is None
    assert abroad.is_user_integration() and not abroad.is_guild_integration()
    assert isinstance(abroad.user, discord.Member)
    assert installed.is_user_integration() and installed.context.dm_channel


async def test_where_the_bot_is_not_only_the_interaction_answers() -> None:
    async with FakeDiscord() as fake, connected_client(fake) as client:
        seen: list[discord.Interaction] = []
        created: list[discord.Message] = []
        tree_with_ping(client, seen)

        @client.event
        async def on_message(message: discord.Message) -> None:
            created.append(message)

        foreign = fake.add_foreign_channel()
        inter = await fake.slash("ping", channel_id=foreign)
        await fake.wait_for(lambda: inter.callbacks, what="the deferral")
        [interaction] = seen
        sent = await interaction.followup.send("through the interaction", wait=True)
        assert fake.messages[str(sent.id)]["guild_id"] == fake.foreign_guild_id
        channel = client.get_partial_messageable(int(foreign))
        with pytest.raises(discord.Forbidden) as refused:
            await channel.send("directly")
        assert refused.value.code == 50001
        group = fake.open_group_dm(fake.user_id)
        with pytest.raises(discord.Forbidden):
            await client.get_partial_messageable(int(group)).send("directly")
        # nothing said there comes back over the Gateway: the bot is not in that server
        dm = await client.create_dm(discord.Object(id=int(fake.user_id)))
        await dm.send("a marker")
        await fake.wait_for(lambda: created, what="the DM's echo")
        assert [m.content for m in created] == ["a marker"]


async def test_the_bot_opens_a_dm_and_posts_there() -> None:
    async with FakeDiscord() as fake, connected_client(fake) as client:
        created: list[discord.Message] = []

        @client.event
        async def on_message(message: discord.Message) -> None:
            created.append(message)

        dm = await client.create_dm(discord.Object(id=int(fake.user_id)))
        assert isinstance(dm, discord.DMChannel)
        assert fake.dm_of(fake.user_id) == str(dm.id)
        again = await fake.wait_for(lambda: fake.calls_to("POST", r"/users/@me/channels$"))
        assert str(again[0].json["recipient_id"]) == fake.user_id
        await dm.send("hello there")
        await fake.wait_for(lambda: created, what="the echo")
        assert isinstance(created[0].channel, discord.DMChannel) and created[0].guild is None
        assert [m["content"] for m in fake.channel_messages(str(dm.id))] == ["hello there"]
        # a person's DM reaches the bot as a DM
        await fake.say(str(dm.id), "and back")
        await fake.wait_for(lambda: len(created) == 2, what="the person's DM")
        assert created[1].author.id == int(fake.user_id)


async def test_followups_end_with_the_token() -> None:
    async with FakeDiscord(token_lifetime=0.5) as fake, connected_client(fake) as client:
        seen: list[discord.Interaction] = []
        tree_with_ping(client, seen)
        inter = await fake.slash("ping", channel_id=fake.open_dm(fake.user_id))
        await fake.wait_for(lambda: inter.callbacks, what="the deferral")
        [interaction] = seen
        first: Any = await interaction.followup.send("in time", wait=True)
        await fake.wait_for(
            lambda: time.monotonic() - inter.injected_at >= fake.token_lifetime,
            what="the token to run out",
        )
        for late in (
            interaction.followup.send("too late", wait=True),
            interaction.edit_original_response(content="too late"),
            first.edit(content="too late"),
            interaction.delete_original_response(),
        ):
            with pytest.raises(discord.HTTPException) as expired:
                await late
            assert (expired.value.status, expired.value.code) == (401, 50027)
        assert fake.messages[str(first.id)]["content"] == "in time"
