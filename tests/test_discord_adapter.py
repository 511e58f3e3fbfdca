"""The Discord adapter end to end: the real discord.py `DiscordBot` against the fake Discord,
the simulator as each::sense, and a core built exactly as production builds it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from adapters.discord.client import DiscordBot, invite_url, sync_commands
from adapters.discord.ratelimit import ChannelLimiter
from bot.app import Core
from bot.config import Settings
from bot.models import CommandName, ThreadKey, TurnRecord, TurnStatus
from simulator import Simulator
from tests.discord_bot import running_bot
from tests.fakes.discord import EPHEMERAL, Call, FakeDiscord, FakeInteraction

SENSE_EVENTS = 200
FULL_TEXT = " ".join(f"t{i}" for i in range(SENSE_EVENTS))


@dataclass
class Env:
    fake: FakeDiscord
    sim: Simulator
    core: Core
    bot: DiscordBot

    def bot_messages(self, channel_id: str) -> list[dict[str, Any]]:
        return [
            m
            for m in self.fake.channel_messages(channel_id)
            if m["author"]["id"] == self.fake.bot_id
        ]

    def final(self, channel_id: str, *, count: int = 1) -> list[dict[str, Any]] | None:
        """The thread's messages once `count` answers show their final status, else None."""
        messages = self.bot_messages(channel_id)
        done = [m for m in messages if _final_status(m["content"])]
        return messages if len(done) >= count else None

    async def sense(self, prompt: str, **kw: Any) -> tuple[FakeInteraction, str]:
        """Run `/sense` and return the interaction and the thread's id once it exists."""
        inter = await self.fake.slash("sense", {"prompt": prompt}, **kw)
        original = await self.fake.wait_for(
            lambda: (
                inter.original_id
                and "Answering in" in self.fake.messages[inter.original_id]["content"]
                and inter.original_id
            ),
            what="the deferred response to point at the thread",
        )
        thread_id = self.fake.messages[original]["content"].split("<#")[1].rstrip(">")
        return inter, thread_id

    async def answer(self, thread_id: str, *, count: int = 1, within: float = 15.0) -> list[Any]:
        return await self.fake.wait_for(
            lambda: self.final(thread_id, count=count),
            within=within,
            what=f"{count} final answer(s) in the thread",
        )


def add_text_channel(fake: FakeDiscord, name: str) -> str:
    channel_id = fake.new_id()
    fake.channels[channel_id] = {**fake.channels[fake.channel_id], "id": channel_id, "name": name}
    return channel_id


def peak_per_second(calls: list[Call]) -> int:
    """The most requests the fake received in any 1 s, interaction endpoints left out."""
    times = sorted(c.at for c in calls if not c.path.startswith(("/interactions/", "/webhooks/")))
    peak = lo = 0
    for hi, at in enumerate(times):
        while at - times[lo] >= 1.0:
            lo += 1
        peak = max(peak, hi - lo + 1)
    return peak


def _final_status(content: str) -> bool:
    return any(mark in content for mark in ("✅ Done", "⚠️", "⏹️ Stopped"))


@pytest.fixture
async def env(request: pytest.FixtureRequest, tmp_path: Any) -> AsyncIterator[Env]:
    overrides: dict[str, Any] = dict(getattr(request, "param", {}))
    text_channels = overrides.pop("text_channels", 1)
    async with FakeDiscord() as fake, Simulator(speed=1000) as sim:
        for n in range(1, text_channels):  # before the bot connects: they come in GUILD_CREATE
            add_text_channel(fake, f"channel-{n}")
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            database_url=f"sqlite:///{tmp_path}/bot.db",
            media_allow_insecure=True,
            eachsense_max_retry_wait=0.05,
            eachsense_max_retries=0,
            eachsense_idle_timeout=5.0,
            **overrides,
        )
        async with running_bot(fake, sim, settings) as (core, bot):
            yield Env(fake, sim, core, bot)


async def test_sense_end_to_end(env: Env) -> None:
    fake = env.fake
    env.sim.speed = 1.0  # real-time pacing, so the answer is seen streaming
    inter, thread_id = await env.sense("draw a cat")
    assert inter.callbacks[0]["type"] == 5, "the command must be deferred (thinking)"
    assert inter.callback_at is not None and inter.callback_at - inter.injected_at < 3.0

    # the thread was opened from the bot's root message, which says who asked and the mode
    root = fake.messages[thread_id]
    assert root["channel_id"] == fake.channel_id
    assert root["content"] == f"<@{fake.user_id}> asked: draw a cat · max mode"
    assert fake.channels[thread_id]["parent_id"] == fake.channel_id
    assert fake.channels[thread_id]["name"] == "draw a cat"

    messages = await env.answer(thread_id)
    answer = messages[0]
    assert "✅ Done · max mode" in answer["content"]
    assert fake.calls_to("PATCH", rf"/channels/{thread_id}/messages/{answer['id']}$")
    assert answer["edits"] >= 2, "the answer streams by editing its message"
    assert answer["components"][0]["components"][0]["custom_id"].startswith("sense:regen:")

    # the generated image arrives as an attachment with the simulator's exact bytes
    await fake.wait_for(
        lambda: any(m["attachments"] for m in env.bot_messages(thread_id)), what="upload"
    )
    (upload,) = [
        f for c in fake.calls_to("POST", rf"/channels/{thread_id}/messages$") for f in c.files
    ]
    async with aiohttp.ClientSession() as http, http.get(env.sim.media_url(upload.filename)) as r:
        assert r.status == 200
        assert upload.data == await r.read()
    assert upload.content_type == "image/png" or upload.filename.endswith(".png")
    assert fake.rate_limited == 0 and not fake.pings()


async def test_follow_up_continues_session_and_new_sense_gets_new_one(env: Env) -> None:
    fake = env.fake
    _, thread_id = await env.sense("just text please")
    await env.answer(thread_id)
    await fake.say(thread_id, "and now a dog, just text")
    await env.answer(thread_id, count=2)
    first, second = env.sim.requests[0].body["session_id"], env.sim.requests[1].body["session_id"]
    assert first and first == second

    _, other_thread = await env.sense("something else, no media")
    await env.answer(other_thread)
    assert env.sim.requests[2].body["session_id"] not in (None, first)

    # a message in a channel that is not one of our threads is ignored
    await fake.say(fake.channel_id, "hello there")
    await fake.say(thread_id, "a second follow-up, no media")
    await env.answer(thread_id, count=3)
    assert len(env.sim.requests) == 4


@pytest.mark.parametrize("env", [{"discord_message_content": False}], indirect=True)
async def test_without_message_content_follow_ups_need_a_mention(env: Env) -> None:
    fake = env.fake
    _, thread_id = await env.sense("just text")
    await env.answer(thread_id)
    await fake.say(thread_id, "no mention, just text")
    await fake.say(thread_id, f"<@{fake.bot_id}> with a mention, just text")
    await env.answer(thread_id, count=2)
    assert [r.prompt for r in env.sim.requests][1:] == ["with a mention, just text"]


async def test_eco_toggle_and_refusal(env: Env) -> None:
    fake = env.fake
    refused = await fake.slash("sense-eco", {"action": "on"}, user_id=fake.user_id)
    await fake.wait_for(lambda: refused.callbacks, what="the refusal")
    reply = refused.callbacks[0]["data"]
    assert reply["flags"] & EPHEMERAL and "Manage Channels" in reply["content"]

    status = await fake.slash("sense-eco", {"action": "status"}, user_id=fake.user_id)
    await fake.wait_for(lambda: status.callbacks, what="the status")
    assert "off" in status.callbacks[0]["data"]["content"]

    on = await fake.slash("sense-eco", {"action": "on"}, user_id=fake.admin_id)
    await fake.wait_for(lambda: on.callbacks, what="eco on")
    assert "on" in on.callbacks[0]["data"]["content"]
    assert not (on.callbacks[0]["data"].get("flags") or 0) & EPHEMERAL

    _, thread_id = await env.sense("no media, eco please")
    messages = await env.answer(thread_id)
    assert env.sim.requests[-1].body["mode"] == "eco"
    assert fake.messages[thread_id]["content"].endswith("· eco mode")
    assert "eco mode" in messages[0]["content"]

    # the `mode` option overrides the channel for that thread
    inter = await fake.slash("sense", {"prompt": "just text", "mode": "max"})
    await fake.wait_for(lambda: len(env.sim.requests) == 2, what="the second turn")
    assert env.sim.requests[-1].body["mode"] == "max" and inter.callbacks


async def test_mentions_never_ping(env: Env) -> None:
    fake = env.fake
    _, thread_id = await env.sense(
        f"@everyone @here <@{fake.admin_id}> <@&{fake.admin_role_id}> hi"
    )
    await env.answer(thread_id)
    assert "@everyone" in fake.messages[thread_id]["content"]
    sends = [c for c in fake.calls if c.method in ("POST", "PATCH") and isinstance(c.json, dict)]
    assert sends and not fake.pings()
    assert all(
        c.json.get("allowed_mentions", {}).get("parse") == [] for c in sends if "content" in c.json
    )


async def test_stop_cancels_the_turn(env: Env) -> None:
    fake = env.fake
    _, thread_id = await env.sense("fail:stall please")
    stop_id = await fake.wait_for(
        lambda: next(
            (
                (m["id"], m["components"][0]["components"][0]["custom_id"])
                for m in env.bot_messages(thread_id)
                if m["components"]
            ),
            None,
        ),
        what="the Stop button",
    )
    message_id, custom_id = stop_id
    assert custom_id.startswith("sense:stop:")
    click = await fake.click(custom_id, message_id=message_id, user_id=fake.user_id)
    await fake.wait_for(lambda: click.callbacks, what="the Stop reply")
    assert click.callbacks[0]["data"]["flags"] & EPHEMERAL
    messages = await env.answer(thread_id)
    assert "⏹️ Stopped." in messages[0]["content"]


async def test_long_answer_is_split_over_messages(env: Env) -> None:
    _, thread_id = await env.sense("long story, just text")
    await env.answer(thread_id, within=30)

    def texts() -> list[str]:
        return [m["content"] for m in env.bot_messages(thread_id)]

    # an earlier page's last live edit may still be queued when the footer lands
    await env.fake.wait_for(lambda: sum(len(t) for t in texts()) > 6000, what="every page")
    assert len(texts()) >= 3 and all(len(t) <= 2000 for t in texts())


async def test_file_over_the_upload_limit_is_a_link(env: Env) -> None:
    fake = env.fake
    _, thread_id = await env.sense("fail:bigmedia:300000 video", attachment_size_limit=100_000)
    await env.answer(thread_id)
    embeds = await fake.wait_for(
        lambda: [e for m in env.bot_messages(thread_id) for e in m["embeds"]], what="a link"
    )
    assert embeds[0]["url"].endswith("/media/blob/300000.mp4")
    assert "upload limit" in embeds[0]["description"] or "limit" in embeds[0]["description"]
    assert not [f for c in fake.calls for f in c.files]


async def test_fast_stream_earns_no_429(env: Env) -> None:
    _, thread_id = await env.sense("events:2000")
    messages = await env.answer(thread_id, within=30)
    assert "t1999" in messages[-1]["content"]
    assert env.fake.rate_limited == 0


async def test_eachsense_failure_is_shown_and_thread_stays_usable(env: Env) -> None:
    _, thread_id = await env.sense("fail:500")
    messages = await env.answer(thread_id)
    assert any("⚠️" in m["content"] for m in messages)
    await env.fake.say(thread_id, "just text now")
    await env.answer(thread_id, count=2)
    assert "✅ Done" in env.bot_messages(thread_id)[-1]["content"]


async def test_clarification_options_answer_in_the_same_session(env: Env) -> None:
    fake = env.fake
    _, thread_id = await env.sense("ask me, no media")
    messages = await env.answer(thread_id)
    buttons = [b for row in messages[0]["components"] for b in row["components"]]
    options = [b for b in buttons if b["custom_id"].startswith("sense:answer:")]
    assert [b["label"] for b in options] == ["Photorealistic", "Watercolor", "Pixel art"]
    click = await fake.click(options[1]["custom_id"], message_id=messages[0]["id"])
    await fake.wait_for(lambda: len(env.sim.requests) == 2, what="the answer turn")
    assert env.sim.requests[1].body["session_id"] == env.sim.requests[0].body["session_id"]
    assert click.callbacks[0]["type"] == 6


async def test_sync_commands_and_interrupted_notice(env: Env) -> None:
    fake = env.fake
    names = await env.bot.sync_commands(int(fake.guild_id))
    # every command the core knows, the same names as on Slack and in the shell, and the
    # two message context menus
    menus = ["Animate", "Remix with each::sense"]
    assert sorted(names) == sorted([*(name.value for name in CommandName), *menus])
    assert "sense-usage" in names and "sense-settings" in names
    assert {c["name"] for c in fake.commands[fake.guild_id]} == set(names)
    assert None not in fake.commands, "a guild sync must not touch global commands"
    # the CLI's entry point: REST only, globally when no guild is given
    listed = await sync_commands(env.core.settings, [None])
    assert "/sense (globally)" in listed and len(fake.commands[None]) == len(CommandName) + 2

    _, thread_id = await env.sense("just text")
    await env.answer(thread_id)
    key = ThreadKey("discord", fake.guild_id, fake.channel_id, thread_id)
    record = TurnRecord("t1", key, fake.user_id, "x", TurnStatus.INTERRUPTED, 0.0)
    await env.core.commands.notify_interrupted([env.bot], [record])
    assert "restarted" in env.bot_messages(thread_id)[-1]["content"]


async def test_model_autocomplete(env: Env) -> None:
    inter = await env.fake.autocomplete(
        "sense-predict", {"model": "", "prompt": ""}, focused="model"
    )
    await env.fake.wait_for(lambda: inter.callbacks, what="autocomplete choices")
    assert inter.callbacks[0]["type"] == 8
    choices = inter.callbacks[0]["data"]["choices"]
    assert choices and all(c["value"] and len(c["name"]) <= 100 for c in choices)


def test_invite_url_has_exact_permissions() -> None:
    url = invite_url(1234)
    assert "client_id=1234" in url and "scope=bot+applications.commands" in url
    assert "permissions=309237763072" in url


async def test_limiter_keeps_the_window_and_serves_final_edits_first() -> None:
    limiter = ChannelLimiter(rate=3, per=0.3)
    order: list[str] = []
    stamps: list[float] = []

    async def take(name: str, *, urgent: bool = False) -> None:
        await limiter.acquire("c", urgent=urgent)
        order.append(name)
        stamps.append(time.monotonic())

    for n in range(3):
        await take(f"live{n}")
    waiting = [asyncio.create_task(take(f"later{n}")) for n in range(2)]
    await asyncio.sleep(0)
    waiting.append(asyncio.create_task(take("final", urgent=True)))
    await asyncio.gather(*waiting)
    assert order[3] == "final", "a final edit jumps the queue of live edits"
    assert all(b - a >= 0.3 - 0.01 for a, b in zip(stamps, stamps[3:], strict=False))
    await limiter.acquire("other")  # another channel has its own window: no wait


@pytest.mark.parametrize(
    "env",
    [{"text_channels": 12, "max_turns_per_user": 60, "max_concurrent_turns": 60}],
    indirect=True,
)
async def test_sixty_concurrent_threads_stay_inside_the_global_limit(env: Env) -> None:
    """60 `/sense` at once over 12 channels: far more requests than Discord's 50/s allows at
    the start (a root post and a thread each) and while streaming. The fake enforces the
    global limit; the bot must never meet it, and every answer must end complete."""
    fake = env.fake
    channels = [c["id"] for c in fake.channels.values() if c["type"] == 0]
    assert len(channels) == 12 and fake.global_limit == 50
    prompt = f"events:{SENSE_EVENTS}"
    inters = await asyncio.gather(
        *(fake.slash("sense", {"prompt": prompt}, channel_id=channels[n % 12]) for n in range(60))
    )

    def threads() -> list[str] | None:
        ids = []
        for inter in inters:
            content = fake.messages.get(inter.original_id or "", {}).get("content", "")
            if "<#" not in content:
                return None
            ids.append(content.split("<#")[1].rstrip(">"))
        return ids

    thread_ids = await fake.wait_for(threads, within=15, what="60 threads")
    await fake.wait_for(
        lambda: all(env.final(t) for t in thread_ids), within=25, what="60 final answers"
    )
    for thread_id in thread_ids:
        (answer,) = env.bot_messages(thread_id)
        assert FULL_TEXT in answer["content"] and "✅ Done" in answer["content"]
    assert fake.rate_limited == 0 and fake.global_rate_limited == 0
    assert peak_per_second(fake.calls) <= 50
    # the opening burst alone (root posts and threads) is over Discord's 50/s: it was spread
    assert len(fake.calls_to("POST", r"/messages/\d+/threads$")) == 60
    assert all(i.callback_at and i.callback_at - i.injected_at < 3.0 for i in inters)


async def test_a_bad_prompt_is_refused_privately_before_anything_opens(env: Env) -> None:
    fake = env.fake
    inter = await fake.slash("sense", {"prompt": "   "})
    await fake.wait_for(lambda: inter.callbacks, what="the refusal")
    reply = inter.callbacks[0]
    assert reply["type"] == 4 and reply["data"]["flags"] & EPHEMERAL
    assert "Please write a prompt" in reply["data"]["content"]
    assert not fake.threads() and not env.sim.requests


async def test_a_clarification_choice_is_echoed_on_discord_as_on_slack(env: Env) -> None:
    fake = env.fake
    _, thread_id = await env.sense("ask me, no media")
    messages = await env.answer(thread_id)
    option = next(
        c
        for m in messages
        for row in m["components"]
        for c in row["components"]
        if c["custom_id"].startswith("sense:answer:")
    )
    await fake.click(option["custom_id"], message_id=messages[0]["id"], user_id=fake.user_id)
    await fake.wait_for(
        lambda: any("chose:" in m["content"] for m in env.bot_messages(thread_id)),
        what="the echoed choice",
    )


async def test_another_bots_message_never_starts_a_turn(env: Env) -> None:
    """Two bots answering each other would loop forever: bot authors are ignored even when
    they mention us in one of our threads."""
    from tests.fakes.discord import _user

    fake = env.fake
    _, thread_id = await env.sense("just text")
    await env.answer(thread_id)
    other = fake.new_id()
    fake.users[other] = _user(other, "otherbot", bot=True)
    await fake.say(thread_id, f"<@{fake.bot_id}> hello from a bot", user_id=other)
    await fake.say(thread_id, f"<@{fake.bot_id}> and a person")
    await env.answer(thread_id, count=2)
    assert [r.prompt for r in env.sim.requests][1:] == ["and a person"]


async def test_a_channel_where_the_bot_may_not_post_gets_a_sentence_not_silence(env: Env) -> None:
    fake = env.fake
    await fake.deny(fake.channel_id)  # Discord answers 403 50013 to the root post
    inter = await fake.slash("sense", {"prompt": "just text"})
    await fake.wait_for(
        lambda: (
            inter.original_id
            and "Create Public Threads" in fake.messages[inter.original_id]["content"]
        ),
        what="the refusal in the deferred response",
    )
    assert not fake.threads() and not env.sim.requests
    await fake.allow(fake.channel_id)  # and once allowed, the same command works
    _, thread_id = await env.sense("just text")
    await env.answer(thread_id)
