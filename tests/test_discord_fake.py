"""The fake Discord is only useful if the real discord.py believes it: these tests run a plain
`discord.Client` against it (login, Gateway READY, send, edit, multipart upload, 429s)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
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


async def test_global_limit_answers_discord_global_429(fake: FakeDiscord) -> None:
    """More than `global_limit` requests in the window: Discord's global 429, exactly as
    discord.py reads it; interaction callbacks and interaction webhooks are exempt."""
    assert fake.global_limit == 50 and fake.global_window == 1.0  # Discord's, by default
    fake.global_limit = 3
    headers = {"Authorization": f"Bot {fake.token}"}
    url = f"{fake.api_url}/channels/{fake.channel_id}"
    async with aiohttp.ClientSession(headers=headers) as http:
        statuses = []
        for _ in range(4):
            async with http.get(url) as response:
                statuses.append(response.status)
                limited, data = response.headers, await response.json()
        assert statuses == [200, 200, 200, 429]
        assert data["global"] is True and data["message"] == "You are being rate limited."
        assert 0 < data["retry_after"] <= 1.0
        assert limited["X-RateLimit-Global"] == "true"
        assert limited["X-RateLimit-Scope"] == "global" and limited["Via"]
        assert fake.rate_limited == fake.global_rate_limited == 1

        inter = await fake.slash("ping", {})
        callback = f"{fake.api_url}/interactions/{inter.id}/{inter.token}/callback"
        async with http.post(callback, json={"type": 5}) as response:
            assert response.status == 200, "interaction callbacks are not globally limited"
        hook = f"{fake.api_url}/webhooks/{fake.application_id}/{inter.token}"
        async with http.patch(f"{hook}/messages/@original", json={"content": "x"}) as response:
            assert response.status == 200, "interaction webhooks are not globally limited"
        async with http.post(hook, json={"content": "y"}) as response:
            assert response.status == 200
        assert fake.global_rate_limited == 1

        fake.global_window = 0.05
        await asyncio.sleep(0.06)  # the window slides: room again
        async with http.get(url) as response:
            assert response.status == 200

    fake.global_limit = None  # off
    async with aiohttp.ClientSession(headers=headers) as http:
        for _ in range(6):
            async with http.get(url) as response:
                assert response.status == 200


async def test_global_429_is_waited_out_by_discord_py(
    fake: FakeDiscord, client: discord.Client
) -> None:
    channel = client.get_channel(int(fake.channel_id))
    assert isinstance(channel, discord.TextChannel)
    fake.global_limit = 3
    fake.global_window = 0.4
    await asyncio.sleep(0.4)  # login's requests leave the window
    sent = await asyncio.gather(*(channel.send(f"m{n}") for n in range(6)))
    assert fake.global_rate_limited >= 1, "the fourth request in the window must be refused"
    assert sorted(fake.messages[str(m.id)]["content"] for m in sent) == [f"m{n}" for n in range(6)]
    refused = [c for c in fake.calls if c.status == 429]
    accepted = [c.at for c in fake.calls if c.status == 200 and c.path.endswith("/messages")]
    assert refused and max(accepted) - min(accepted) >= 0.4 - 0.01, "discord.py waited"
