"""The fake Discord is only useful if the real discord.py believes it: these tests run a plain
`discord.Client` against its REST side (login, Gateway READY, send, edit, multipart upload,
429s and the headers that come before them, form validation, missing permissions). The
Gateway's own behaviour is proved in `test_discord_gateway_fake.py`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import discord
import pytest

from tests.discord_client import connected_client
from tests.fakes.discord import EDIT_BUCKET, FakeDiscord


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as server:
        yield server


@pytest.fixture
async def client(fake: FakeDiscord) -> AsyncIterator[discord.Client]:
    async with connected_client(fake) as bot:
        yield bot


def text_channel(fake: FakeDiscord, client: discord.Client) -> discord.TextChannel:
    channel = client.get_channel(int(fake.channel_id))
    assert isinstance(channel, discord.TextChannel)
    return channel


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
    # without the bucket headers (a limit Discord does not announce) discord.py cannot see
    # the window coming: the sixth edit meets the 429 and discord.py waits it out
    fake.ratelimit_headers = False
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


async def test_interactions_carry_the_persons_locale(
    fake: FakeDiscord, client: discord.Client
) -> None:
    tree = discord.app_commands.CommandTree(client)
    seen: list[tuple[discord.Locale, discord.Locale | None]] = []

    @tree.command(name="ping", description="ping")
    async def ping(interaction: discord.Interaction, text: str) -> None:
        seen.append((interaction.locale, interaction.guild_locale))
        await interaction.response.send_message(f"pong {text}")

    inter = await fake.slash("ping", {"text": "hi"}, locale="ja")
    await fake.wait_for(lambda: inter.callbacks, what="the answer")
    assert seen == [(discord.Locale.japanese, discord.Locale.american_english)]
    with pytest.raises(ValueError):  # Discord's codes only: `ja`, never `ja-JP`
        await fake.slash("ping", {"text": "hi"}, locale="ja-JP")


async def test_command_localizations_are_checked(fake: FakeDiscord, client: discord.Client) -> None:
    locale_str = discord.app_commands.locale_str

    class French(discord.app_commands.Translator):
        async def translate(
            self,
            string: discord.app_commands.locale_str,
            locale: discord.Locale,
            context: discord.app_commands.TranslationContextTypes,
        ) -> str | None:
            return f"fr: {string.message}" if locale is discord.Locale.french else None

    tree = discord.app_commands.CommandTree(client)

    @tree.command(name="ping", description=locale_str("ping"))
    @discord.app_commands.describe(text=locale_str("what to send"))
    async def ping(interaction: discord.Interaction, text: str) -> None:
        await interaction.response.send_message(text)

    await tree.set_translator(French())
    await tree.sync()
    (stored,) = fake.commands[None]
    assert stored["description_localizations"] == {"fr": "fr: ping"}
    assert stored["options"][0]["description_localizations"] == {"fr": "fr: what to send"}

    app_id = client.application_id
    assert app_id is not None
    for localizations in ({"fr-FR": "ping"}, {"ja": "x" * 101}):
        bad = [{"name": "ping", "description": "ping", "description_localizations": localizations}]
        with pytest.raises(discord.HTTPException) as err:
            await client.http.bulk_upsert_global_commands(app_id, bad)
        assert err.value.status == 400 and err.value.code == 50035
        assert f"0.description_localizations.{next(iter(localizations))}" in str(err.value)
    assert fake.commands[None] == [stored], "a refused list changes nothing"


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


async def test_ratelimit_headers_make_discord_py_wait_first(
    fake: FakeDiscord, client: discord.Client
) -> None:
    """Every edit answer carries the bucket headers discord.py's `Ratelimit.update` reads;
    at `Remaining: 0` it sleeps `Reset-After` before the next edit, so no 429 comes."""
    fake.edit_window = 0.5
    channel = text_channel(fake, client)
    msg = await channel.send("0")
    for n in range(1, 8):
        await msg.edit(content=str(n))
    assert fake.rate_limited == 0, "discord.py saw Remaining: 0 and waited for the reset"
    edits = fake.calls_to("PATCH", rf"/channels/{channel.id}/messages/{msg.id}$")
    assert [c.status for c in edits] == [200] * 7
    assert edits[5].at - edits[4].at >= 0.5 - 0.02, "the sixth waited for the window to empty"
    assert fake.messages[str(msg.id)]["content"] == "7"

    # the headers themselves, as Discord sends them (in a channel of its own: a fresh window)
    other = fake.add_text_channel("raw")
    url = f"{fake.api_url}/channels/{other}/messages"
    async with aiohttp.ClientSession(headers={"Authorization": f"Bot {fake.token}"}) as http:
        async with http.post(url, json={"content": "raw"}) as response:
            raw_id = (await response.json())["id"]
        async with http.patch(f"{url}/{raw_id}", json={"content": "x"}) as response:
            headers = response.headers
    assert headers["X-RateLimit-Limit"] == "5" and headers["X-RateLimit-Remaining"] == "4"
    assert headers["X-RateLimit-Bucket"] == EDIT_BUCKET
    assert 0.4 < float(headers["X-RateLimit-Reset-After"]) <= 0.5
    assert abs(float(headers["X-RateLimit-Reset"]) - (time.time() + 0.5)) < 0.2


async def test_invalid_form_body_is_discord_50035(
    fake: FakeDiscord, client: discord.Client
) -> None:
    channel = text_channel(fake, client)
    before = len(fake.messages)
    with pytest.raises(discord.HTTPException) as err:
        await channel.send("x" * 2001)
    assert err.value.status == 400 and err.value.code == 50035
    assert "In content: Must be 2000 or fewer in length." in err.value.text
    assert len(fake.messages) == before, "nothing was posted"

    msg = await channel.send("x" * 2000)  # the limit itself is fine
    with pytest.raises(discord.HTTPException) as err:
        await msg.edit(content="y" * 2001)
    assert err.value.code == 50035 and fake.messages[str(msg.id)]["content"] == "x" * 2000
    with pytest.raises(discord.HTTPException) as err:
        await channel.send(embed=discord.Embed(description="d" * 4097))
    assert err.value.code == 50035 and "In embeds.0.description" in err.value.text
    with pytest.raises(discord.HTTPException) as err:
        await channel.send()  # nothing at all
    assert err.value.status == 400 and err.value.code == 50006

    # an interaction answer is validated too, and a refused one is not an acknowledgement
    tree = discord.app_commands.CommandTree(client)
    failures: list[BaseException] = []

    @tree.command(name="long", description="too long")
    async def long(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("z" * 2001)

    @tree.error
    async def on_error(interaction: discord.Interaction, error: Exception) -> None:
        failures.append(error)

    inter = await fake.slash("long")
    await fake.wait_for(lambda: failures, what="the refused reply")
    assert isinstance(failures[0].__cause__, discord.HTTPException)
    assert failures[0].__cause__.code == 50035 and inter.callbacks == []


class _Buttons(discord.ui.View):
    def __init__(self, *buttons: discord.ui.Button[Any]) -> None:
        super().__init__(timeout=None)
        for button in buttons:
            self.add_item(button)


async def test_component_limits_are_50035(fake: FakeDiscord, client: discord.Client) -> None:
    channel = text_channel(fake, client)
    cases = {
        "components.0.components.0.custom_id": _Buttons(
            discord.ui.Button(label="ok", custom_id="c" * 101)
        ),
        "components.0.components.0.label": _Buttons(
            discord.ui.Button(label="l" * 81, custom_id="fine")
        ),
        "components.0.components.1.custom_id": _Buttons(
            discord.ui.Button(label="a", custom_id="same"),
            discord.ui.Button(label="b", custom_id="same"),
        ),
    }
    for where, view in cases.items():
        with pytest.raises(discord.HTTPException) as err:
            await channel.send("buttons", view=view)
        assert err.value.status == 400 and err.value.code == 50035, where
        assert f"In {where}:" in err.value.text, err.value.text
    ok = await channel.send(
        "fits", view=_Buttons(discord.ui.Button(label="l" * 80, custom_id="c" * 100))
    )
    assert fake.messages[str(ok.id)]["components"][0]["components"][0]["label"] == "l" * 80

    # discord.py's View will not build six rows or six buttons in a row; its HTTP client
    # sends whatever it is given, so the raw shapes go through it
    def row(count: int, prefix: str) -> dict[str, Any]:
        buttons = [
            {"type": 2, "style": 1, "label": "b", "custom_id": f"{prefix}{n}"} for n in range(count)
        ]
        return {"type": 1, "components": buttons}

    route = discord.http.Route("POST", "/channels/{channel_id}/messages", channel_id=channel.id)
    for components, where in [
        ([row(1, f"r{n}-") for n in range(6)], "In components: Must be 5 or fewer"),
        ([row(6, "x")], "In components.0.components: Must be between 1 and 5"),
    ]:
        with pytest.raises(discord.HTTPException) as err:
            await client.http.request(route, json={"content": "raw", "components": components})
        assert err.value.code == 50035 and where in err.value.text, err.value.text
    sent = await client.http.request(
        route, json={"content": "raw", "components": [row(5, f"r{n}-") for n in range(5)]}
    )
    assert len(sent["components"]) == 5


async def test_missing_permissions_is_403_50013(fake: FakeDiscord, client: discord.Client) -> None:
    channel = text_channel(fake, client)
    msg = await channel.send("before")
    thread = await channel.create_thread(name="kept", message=msg)
    me = channel.guild.me
    assert channel.permissions_for(me).send_messages

    await fake.deny(fake.channel_id)
    # CHANNEL_UPDATE carried the overwrite: discord.py's own view of the permissions agrees
    await fake.wait_for(lambda: not channel.permissions_for(me).send_messages, what="overwrite")
    for attempt in (
        channel.send("hi"),
        msg.edit(content="edited"),
        channel.create_thread(name="new"),
        thread.send("in the thread"),  # threads inherit the parent's
    ):
        with pytest.raises(discord.Forbidden) as err:
            await attempt
        assert err.value.status == 403 and err.value.code == 50013
        assert "Missing Permissions" in err.value.text
    assert (await channel.fetch_message(msg.id)).content == "before", "reading still works"

    # interactions are answered through their token, not the channel: they still work
    tree = discord.app_commands.CommandTree(client)

    @tree.command(name="here", description="answers in a channel it cannot post in")
    async def here(interaction: discord.Interaction) -> None:
        assert not interaction.app_permissions.send_messages
        await interaction.response.send_message("ok")

    inter = await fake.slash("here")
    await fake.wait_for(lambda: inter.callbacks, what="the answer")
    assert inter.reply is not None and inter.reply["content"] == "ok"

    await fake.allow(fake.channel_id)
    await fake.wait_for(lambda: channel.permissions_for(me).send_messages, what="overwrite gone")
    assert (await channel.send("after")).content == "after"


async def test_forbidden_channel_known_at_start_is_in_guild_create() -> None:
    fake = FakeDiscord()
    fake.forbidden_channels.add(fake.channel_id)  # ids exist once constructed
    async with fake, connected_client(fake) as client:
        channel = text_channel(fake, client)
        assert not channel.permissions_for(channel.guild.me).send_messages
        with pytest.raises(discord.Forbidden):
            await channel.send("no")


async def test_member_roles_reach_discord_py_in_interactions_and_messages() -> None:
    fake = FakeDiscord()
    async with fake:
        early = await fake.add_role("artists")  # before connecting: in GUILD_CREATE
        async with connected_client(fake) as client:
            late = await fake.add_role("guests")  # connected: GUILD_ROLE_CREATE
            guild = client.get_guild(int(fake.guild_id))
            assert guild is not None
            await fake.wait_for(lambda: guild.get_role(int(late)), what="the new role")
            fake.give_role(fake.user_id, early)
            fake.give_role(fake.user_id, late)
            bob = fake.add_member("bob")

            seen: asyncio.Queue[discord.Member | discord.User] = asyncio.Queue()

            @client.event
            async def on_interaction(interaction: discord.Interaction) -> None:
                await seen.put(interaction.user)

            @client.event
            async def on_message(message: discord.Message) -> None:
                await seen.put(message.author)

            def role_ids(person: discord.Member | discord.User) -> set[str]:
                assert isinstance(person, discord.Member)
                return {str(r.id) for r in person.roles if not r.is_default()}

            await fake.slash("anything", {}, user_id=fake.user_id)
            assert role_ids(await asyncio.wait_for(seen.get(), 5)) == {early, late}
            await fake.say(fake.channel_id, "hi", user_id=fake.user_id)
            assert role_ids(await asyncio.wait_for(seen.get(), 5)) == {early, late}
            await fake.slash("anything", {}, user_id=fake.admin_id)
            assert role_ids(await asyncio.wait_for(seen.get(), 5)) == {fake.admin_role_id}
            await fake.say(fake.channel_id, "hello", user_id=bob)
            author = await asyncio.wait_for(seen.get(), 5)
            assert str(author.id) == bob and role_ids(author) == set()
