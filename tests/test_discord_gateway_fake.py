"""The fake Discord's Gateway against the real discord.py: heartbeats are checked, sessions
resume with the dispatches they missed, invalid sessions make the client identify again, and
the MESSAGE_CONTENT intent decides what a message event carries."""

from __future__ import annotations

import asyncio
import math

import discord
import pytest

from tests.discord_client import QuickIdentifyClient, connected_client
from tests.fakes.discord import FakeDiscord


def on_messages(client: discord.Client) -> list[discord.Message]:
    """Every message discord.py hands to `on_message`, in order."""
    seen: list[discord.Message] = []

    async def on_message(message: discord.Message) -> None:
        seen.append(message)

    client.event(on_message)
    return seen


async def test_heartbeats_are_checked_and_a_silent_client_is_dropped() -> None:
    async with (
        FakeDiscord(heartbeat_interval=0.3, heartbeat_grace=3.0) as fake,
        connected_client(fake, client_class=QuickIdentifyClient) as client,
    ):
        first = fake.connection
        assert first is not None and first.session is fake.session
        # discord.py heartbeats at HELLO's interval, and each beat is acknowledged
        await fake.wait_for(lambda: first.heartbeats >= 4, what="heartbeats")
        assert not first.closed and math.isfinite(client.latency), "acks reached discord.py"

        # the client goes silent (its heartbeat thread stops, as when the loop is stuck)
        assert client.ws is not None and client.ws._keep_alive is not None
        client.ws._keep_alive.stop()
        await fake.wait_for(lambda: first.closed, what="the silent connection to be closed")
        assert first.close_code == 4009 and not fake.sessions[0].valid

        # discord.py tries to RESUME; the session timed out, so op 9 and a new IDENTIFY
        session = await fake.wait_connected(3)
        resume, identify = fake.connections[1], fake.connections[2]
        assert 6 in resume.ops and 2 not in resume.ops and resume.closed
        assert 2 in identify.ops and session is fake.sessions[1] and session.valid
        seen = on_messages(client)
        await fake.say(fake.channel_id, "still here")
        await fake.wait_for(lambda: seen, what="a message on the new session")
        assert seen[0].content == "still here"


async def test_reconnect_resumes_and_replays_missed_dispatches() -> None:
    async with FakeDiscord() as fake, connected_client(fake) as client:
        seen = on_messages(client)
        resumed = asyncio.Event()
        client.event(_setter("on_resumed", resumed))
        first, session = fake.connection, fake.session
        assert first is not None and session is not None

        async with fake.hold_connections():
            await fake.request_reconnect()  # op 7
            await fake.wait_for(lambda: first.closed, what="discord.py to let go")
            await fake.say(fake.channel_id, "while away 1")
            await fake.say(fake.channel_id, "while away 2")
            assert session.connection is None and seen == []
        assert await fake.wait_connected(2) is session
        await asyncio.wait_for(resumed.wait(), 5)

        second = fake.connections[1]
        assert second.path == "/gateway/resume", "discord.py resumes at resume_gateway_url"
        assert 6 in second.ops and 2 not in second.ops
        await fake.wait_for(lambda: len(seen) == 2, what="the replayed messages")
        assert [m.content for m in seen] == ["while away 1", "while away 2"]
        assert session.resumes == 1 and session.replayed == 2
        assert [f["t"] for f in session.frames[-3:]] == ["MESSAGE_CREATE"] * 2 + ["RESUMED"]
        assert client.ws is not None and client.ws.sequence == session.seq

        # a socket dropped without warning resumes the same way, nothing lost
        await fake.drop_gateway()
        await fake.say(fake.channel_id, "after the drop")
        assert await fake.wait_connected(3) is session
        await fake.wait_for(lambda: len(seen) == 3, what="the message after the drop")
        assert seen[-1].content == "after the drop" and session.resumes == 2


async def test_invalid_session_makes_discord_py_identify_again() -> None:
    async with (
        FakeDiscord() as fake,
        connected_client(fake, client_class=QuickIdentifyClient) as client,
    ):
        old = fake.session
        assert old is not None
        # resumable: discord.py closes and resumes the same session
        await fake.invalidate_session(resumable=True)
        await fake.wait_for(lambda: old.resumes == 1, what="the resume")
        assert fake.session is old

        # not resumable: a new IDENTIFY, a new session, READY again
        await fake.invalidate_session(resumable=False)
        new = await fake.wait_connected(3)
        assert new is not old and not old.valid and new.valid
        assert 2 in fake.connections[2].ops and 6 not in fake.connections[2].ops
        assert client.ws is not None and client.ws.session_id == new.id
        seen = on_messages(client)
        await fake.say(fake.channel_id, "hello again")
        await fake.wait_for(lambda: seen, what="a message on the new session")
        assert seen[0].content == "hello again"


async def test_without_message_content_intent_only_mentions_and_dms_have_content() -> None:
    intents = discord.Intents.default()  # guilds, guild and DM messages; no message content
    assert not intents.message_content
    async with FakeDiscord() as fake, connected_client(fake, intents=intents) as client:
        seen = on_messages(client)
        dm = fake.open_dm(fake.user_id)
        await fake.say(fake.channel_id, "plain words", embeds=[{"title": "t"}])
        await fake.say(fake.channel_id, f"<@{fake.bot_id}> mentioned")
        await fake.say(dm, "a direct message")
        channel = client.get_channel(int(fake.channel_id))
        assert isinstance(channel, discord.TextChannel)
        await channel.send("the bot's own")
        await fake.wait_for(lambda: len(seen) == 4, what="four messages")
        plain, mention, direct, own = seen
        assert plain.content == "" and plain.embeds == [] and plain.author.id == int(fake.user_id)
        assert mention.content == f"<@{fake.bot_id}> mentioned"
        assert direct.content == "a direct message" and direct.guild is None
        assert own.content == "the bot's own" and own.author.bot
        assert fake.gateway_events[-4]["d"]["content"] == "plain words", "the fake kept it"


async def test_message_content_intent_not_enabled_is_4014() -> None:
    async with FakeDiscord(message_content_allowed=False) as fake:
        with pytest.raises(discord.PrivilegedIntentsRequired):
            async with connected_client(fake, reconnect=True):
                pass
        assert fake.connections[0].close_code == 4014 and fake.sessions == []
        intents = discord.Intents.default()  # without the privileged intent it connects
        async with connected_client(fake, intents=intents) as client:
            assert client.is_ready()


async def test_intents_decide_which_events_arrive() -> None:
    intents = discord.Intents.none()
    intents.guilds = True  # no guild messages
    async with FakeDiscord() as fake, connected_client(fake, intents=intents) as client:
        seen = on_messages(client)
        await fake.say(fake.channel_id, "not for this bot")
        session = fake.session
        assert session is not None
        assert not [f for f in session.frames if f["t"] == "MESSAGE_CREATE"]
        assert client.get_guild(int(fake.guild_id)) is not None  # GUILD_CREATE did arrive
        assert seen == []


def _setter(name: str, event: asyncio.Event):  # type: ignore[no-untyped-def]
    async def handler(*_: object) -> None:
        event.set()

    handler.__name__ = name
    return handler
