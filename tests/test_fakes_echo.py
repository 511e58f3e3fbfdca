"""Both fakes send the bot's own messages back, as the platforms do, and the real clients read
them as they read the platforms': discord.py caches the echoed MESSAGE_CREATE (so a later
edit is an `on_message_edit`), slack-bolt's self-event filter drops Slack's echoes, and with
the filter off a bolt listener sees exactly Slack's `message` / `message_changed` shapes,
over HTTP (signed POSTs bolt verifies) and over Socket Mode."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import discord
from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from tests.discord_client import connected_client
from tests.fakes.discord import FakeDiscord
from tests.fakes.slack import FakeSlack

SECRET = "echo-signing-secret"

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


# --- Slack -----------------------------------------------------------------------------


def bolt_app(slack: FakeSlack, *, ignore_self: bool) -> tuple[AsyncApp, list[dict[str, Any]]]:
    """A bolt app on the fake whose `message` listener records every event it is given."""
    client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
    app = AsyncApp(client=client, signing_secret=SECRET, ignoring_self_events_enabled=ignore_self)
    seen: list[dict[str, Any]] = []

    @app.event("message")
    async def on_message(event: dict[str, Any]) -> None:
        seen.append(event)

    return app, seen


@contextlib.asynccontextmanager
async def serving(app: AsyncApp) -> AsyncIterator[str]:
    """bolt's own aiohttp application (`AsyncApp.web_app()`) on 127.0.0.1; yields its URL."""
    runner = web.AppRunner(app.web_app(path="/slack/events"), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events"
    finally:
        await runner.cleanup()


async def test_bolt_sees_slacks_echo_shapes_over_http() -> None:
    async with FakeSlack() as slack:
        app, seen = bolt_app(slack, ignore_self=False)
        async with serving(app) as url:
            slack.connect_app(url, SECRET)
            posted = await app.client.chat_postMessage(channel="C1", text="hello")
            await slack.wait_for(lambda: seen, what="the echo of the post")
            new = seen[0]
            assert new["type"] == "message" and "subtype" not in new
            assert (new["user"], new["bot_id"], new["app_id"]) == ("UBOT", "BBOT", "A0APP")
            assert new["ts"] == posted["ts"] and new["text"] == "hello"
            assert new["channel"] == "C1" and new["channel_type"] == "channel"

            reply = await app.client.chat_postMessage(
                channel="C1", thread_ts=posted["ts"], text="r"
            )
            await app.client.chat_update(channel="C1", ts=reply["ts"], text="r2")
            await slack.wait_for(lambda: len(seen) == 3, what="the reply and its change")
            threaded, changed = seen[1], seen[2]
            assert threaded["thread_ts"] == posted["ts"] and threaded["parent_user_id"] == "UBOT"
            assert changed["subtype"] == "message_changed" and changed["hidden"] is True
            assert changed["message"]["ts"] == reply["ts"] and changed["message"]["text"] == "r2"
            assert changed["message"]["user"] == "UBOT" and changed["message"]["bot_id"] == "BBOT"
            assert changed["message"]["thread_ts"] == posted["ts"]
            assert changed["previous_message"]["text"] == "r"

            await app.client.files_upload_v2(
                channel="C1", thread_ts=posted["ts"], filename="a.txt", content=b"data"
            )
            await slack.wait_for(lambda: len(seen) == 4, what="the upload's file_share")
            shared = seen[3]
            assert shared["subtype"] == "file_share" and shared["bot_id"] == "BBOT"
            assert [f["name"] for f in shared["files"]] == ["a.txt"]

        echoes = slack.echoes
        assert len(echoes) == 4 and all(
            d.acked and d.attempts[0].transport == "http" for d in echoes
        )
        assert all(d.attempts[0].status == 200 for d in echoes), "bolt verified the signatures"


async def test_bolt_drops_its_own_echoes_but_not_a_persons_message() -> None:
    async with FakeSlack() as slack:
        app, seen = bolt_app(slack, ignore_self=True)  # bolt's default
        async with serving(app) as url:
            slack.connect_app(url, SECRET)
            posted = await app.client.chat_postMessage(channel="C1", text="mine")
            await app.client.chat_update(channel="C1", ts=posted["ts"], text="mine, edited")
            await slack.wait_for(
                lambda: len(slack.echoes) == 2 and all(d.acked for d in slack.echoes),
                what="both echoes acked",
            )
            assert seen == [], "IgnoringSelfEvents matched user/bot_id (and message.user)"
            person = await slack.say("C1", "a person", user="U1", thread_ts=posted["ts"])
            assert person.acked
            await slack.wait_for(lambda: seen, what="the person's message")
            assert seen[0]["user"] == "U1" and "bot_id" not in seen[0]
            assert person.message is not None and seen[0]["ts"] == person.message.ts


async def test_bolt_sees_echoes_over_socket_mode() -> None:
    async with FakeSlack() as slack:
        app, seen = bolt_app(slack, ignore_self=False)
        handler = AsyncSocketModeHandler(app, slack.socket_mode.app_token)  # app.client's URL
        await handler.connect_async()
        try:
            await slack.socket_mode.wait_connected()
            posted = await app.client.chat_postMessage(channel="C1", text="over the socket")
            await slack.wait_for(lambda: seen, what="the echo envelope")
            assert seen[0]["bot_id"] == "BBOT" and seen[0]["ts"] == posted["ts"]
            [echo] = slack.echoes
            assert echo.acked and echo.attempts[0].transport == "socket"
            envelope = next(m for m in slack.socket_mode.sent if m.get("type") == "events_api")
            assert envelope["payload"]["event"]["text"] == "over the socket"
            assert envelope["retry_attempt"] == 0 and envelope["accepts_response_payload"] is False
        finally:
            await handler.close_async()


async def test_no_echo_without_an_endpoint_or_when_off() -> None:
    async with FakeSlack() as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        await client.chat_postMessage(channel="C1", text="nobody listens")
        assert slack.deliveries == []
    async with FakeSlack(echo=False) as slack:
        app, seen = bolt_app(slack, ignore_self=False)
        async with serving(app) as url:
            slack.connect_app(url, SECRET)
            await app.client.chat_postMessage(channel="C1", text="off")
            assert slack.deliveries == [] and seen == []
