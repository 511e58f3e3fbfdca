"""The fake Discord is only useful if the real discord.py believes it: these tests run a plain
`discord.Client` against it (login, Gateway READY, send, edit, multipart upload, 429s)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import discord
import discord.gateway
import discord.http
import pytest

from adapters.discord.endpoints import use_endpoints
from tests.fakes.discord import FakeDiscord


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    base = discord.http.Route.BASE
    gateway = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    async with FakeDiscord() as server:
        use_endpoints(api_url=server.api_url, gateway_url=server.gateway_url)
        yield server
    discord.http.Route.BASE = base
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = gateway


@pytest.fixture
async def client(fake: FakeDiscord) -> AsyncIterator[discord.Client]:
    intents = discord.Intents.default()
    intents.message_content = True
    bot = discord.Client(
        intents=intents,
        guild_ready_timeout=0.05,
        chunk_guilds_at_startup=False,
        allowed_mentions=discord.AllowedMentions.none(),
    )
    await bot.login(fake.token)
    task = asyncio.create_task(bot.connect(reconnect=False))
    await asyncio.wait_for(bot.wait_until_ready(), 10)
    yield bot
    await bot.close()
    await asyncio.wait_for(task, 10)


async def test_login_and_gateway_ready(fake: FakeDiscord, client: discord.Client) -> None:
    assert client.user is not None and str(client.user.id) == fake.bot_id
    assert str(client.application_id) == fake.application_id
    guild = client.get_guild(int(fake.guild_id))
    assert guild is not None
    assert guild.filesize_limit == 10 * 1024 * 1024
    mods = guild.get_role(int(fake.admin_role_id))
    channel = guild.get_channel(int(fake.channel_id))
    assert mods is not None and isinstance(channel, discord.TextChannel)
    assert mods.permissions.manage_channels
    assert not guild.default_role.permissions.manage_channels
    assert fake.calls_to("GET", r"^/users/@me$") and fake.calls_to("GET", r"applications/@me")


async def test_send_edit_upload_and_thread(
    fake: FakeDiscord, client: discord.Client, tmp_path: Path
) -> None:
    channel = client.get_channel(int(fake.channel_id))
    assert isinstance(channel, discord.TextChannel)
    msg = await channel.send("hello @everyone")
    await msg.edit(content="edited")
    assert fake.messages[str(msg.id)]["content"] == "edited"
    assert not fake.pings(), "the client's AllowedMentions.none() must reach the wire"

    thread = await channel.create_thread(name="a thread", message=msg)
    assert thread.id == msg.id and str(thread.id) in fake.channels
    await fake.wait_for(lambda: client.get_channel(thread.id), what="THREAD_CREATE cached")

    payload = bytes(range(256)) * 40
    path = tmp_path / "pic.png"
    path.write_bytes(payload)
    sent = await thread.send(file=discord.File(path))
    (call,) = fake.calls_to("POST", rf"/channels/{thread.id}/messages$")
    assert call.files[0].data == payload and call.files[0].filename == "pic.png"
    assert fake.messages[str(sent.id)]["attachments"][0]["size"] == len(payload)


async def test_upload_over_limit_is_413(fake: FakeDiscord, client: discord.Client) -> None:
    fake.upload_limit = 1000
    channel = client.get_channel(int(fake.channel_id))
    assert isinstance(channel, discord.TextChannel)
    import io

    with pytest.raises(discord.HTTPException) as err:
        await channel.send(file=discord.File(io.BytesIO(b"x" * 1001), filename="big.bin"))
    assert err.value.status == 413 and err.value.code == 40005


async def test_429_is_waited_out_by_discord_py(fake: FakeDiscord, client: discord.Client) -> None:
    channel = client.get_channel(int(fake.channel_id))
    assert isinstance(channel, discord.TextChannel)
    fake.force_429(2)
    msg = await channel.send("after two 429s")
    assert fake.rate_limited == 2
    assert fake.messages[str(msg.id)]["content"] == "after two 429s"


async def test_edit_limit_per_channel(fake: FakeDiscord, client: discord.Client) -> None:
    fake.edit_window = 0.5  # keep the test fast; the shape is Discord's 5 per window
    channel = client.get_channel(int(fake.channel_id))
    assert isinstance(channel, discord.TextChannel)
    msg = await channel.send("0")
    for n in range(1, 8):
        await msg.edit(content=str(n))
    assert fake.rate_limited >= 1, "the sixth edit inside the window must be refused"
    assert fake.messages[str(msg.id)]["content"] == "7"
    assert fake.messages[str(msg.id)]["edits"] == 7


async def test_interactions_reach_the_tree(fake: FakeDiscord, client: discord.Client) -> None:
    tree = discord.app_commands.CommandTree(client)
    seen: list[str] = []

    @tree.command(name="ping", description="ping")
    async def ping(interaction: discord.Interaction, text: str) -> None:
        seen.append(text)
        await interaction.response.defer(thinking=True)
        await interaction.edit_original_response(content=f"pong {text}")

    synced = await tree.sync()
    assert [c.name for c in synced] == ["ping"] and fake.commands[None][0]["name"] == "ping"

    inter = await fake.slash("ping", {"text": "hi"})
    await fake.wait_for(lambda: inter.original_id and fake.messages[inter.original_id]["edits"])
    assert seen == ["hi"]
    assert inter.callbacks[0]["type"] == 5
    assert fake.messages[inter.original_id or ""]["content"] == "pong hi"


async def test_message_create_dispatch(fake: FakeDiscord, client: discord.Client) -> None:
    got: asyncio.Future[discord.Message] = asyncio.get_running_loop().create_future()

    @client.event
    async def on_message(message: discord.Message) -> None:
        if not got.done():
            got.set_result(message)

    await fake.say(fake.channel_id, "hello bot")
    message = await asyncio.wait_for(got, 5)
    assert message.content == "hello bot" and str(message.author.id) == fake.user_id
