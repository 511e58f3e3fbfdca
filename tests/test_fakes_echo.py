"""The fakes send the bot's own messages back, as the platforms do, and the real clients read
them as they read the platforms': discord.py caches the echoed MESSAGE_CREATE (so a later
edit is an `on_message_edit`)."""

from __future__ import annotations

import discord

from tests.discord_client import connected_client
from tests.fakes.discord import FakeDiscord

# --- Discord ---------------------------------------------------------------------------


async def test_own_messages_are_echoed_over_the_gateway() -> None:
    async with FakeDiscord() as fake, connected_client(fake) as client:
        created: list[discord.Message] = []
        edited: list[tuple[discord.Message, discord.Message]] = []
        deleted: list[int] = []

        @client.event
        async def on_message(message: discord.Message) -> None:
            created.append(message)

        @client.event
        async def on_message_edit(before: discord.Message, after: discord.Message) -> None:
            edited.append((before, after))

        @client.event
        async def on_raw_message_delete(payload: discord.RawMessageDeleteEvent) -> None:
            deleted.append(payload.message_id)

        channel = client.get_channel(int(fake.channel_id))
        assert isinstance(channel, discord.TextChannel)
        sent = await channel.send("hello")
        await fake.wait_for(lambda: created, what="MESSAGE_CREATE of our own message")
        [echo] = created
        assert echo.id == sent.id and echo.author == client.user and echo.author.bot
        assert echo.content == "hello" and echo.guild is not None

        await sent.edit(content="changed")
        await fake.wait_for(lambda: edited, what="MESSAGE_UPDATE")
        before, after = edited[0]
        assert (before.content, after.content) == ("hello", "changed"), "it was cached"
        await sent.delete()
        await fake.wait_for(lambda: deleted, what="MESSAGE_DELETE")
        assert deleted == [sent.id]

        # interaction answers: a public one is a message like any other, an ephemeral one
        # is seen by nobody else and is not dispatched
        tree = discord.app_commands.CommandTree(client)

        @tree.command(name="public", description="public")
        async def public(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("for everyone")

        @tree.command(name="secret", description="secret")
        async def secret(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("just you", ephemeral=True)

        shown, hidden = await fake.slash("public"), await fake.slash("secret")
        await fake.wait_for(lambda: shown.callbacks and hidden.callbacks, what="both answers")
        await fake.wait_for(lambda: len(created) == 2, what="the public answer's echo")
        assert created[1].content == "for everyone" and created[1].interaction_metadata
        assert [e["t"] for e in fake.echoes] == [
            "MESSAGE_CREATE",
            "MESSAGE_UPDATE",
            "MESSAGE_DELETE",
            "MESSAGE_CREATE",
        ]


async def test_discord_echo_can_be_turned_off() -> None:
    async with FakeDiscord(echo=False) as fake, connected_client(fake) as client:
        channel = client.get_channel(int(fake.channel_id))
        assert isinstance(channel, discord.TextChannel)
        await channel.send("quiet")
        assert fake.echoes == []
        session = fake.session
        assert session is not None and "MESSAGE_CREATE" not in [f["t"] for f in session.frames]
