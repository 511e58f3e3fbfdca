"""Discord DMs and user installs end to end: the real discord.py bot against the fake Discord,
the simulator as each::sense and each::api, a core built as production builds it.

Where a thread can open (a server's text channel) nothing changes; in a DM with the bot the
conversation is the DM; where the bot is not (a group DM, a server where only the person
installed the app) the answer comes through the interaction, and what outlives its token
finishes in the person's DM."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from adapters.discord.client import DiscordBot
from adapters.discord.dms import CONTINUING, MOVING
from bot.app import Core
from bot.config import Settings
from simulator import Simulator
from simulator.jobs import sim_jobs
from tests.discord_bot import running_bot
from tests.fakes.discord import EPHEMERAL, FakeDiscord, FakeInteraction


@dataclass
class Env:
    fake: FakeDiscord
    sim: Simulator
    core: Core
    bot: DiscordBot

    def from_bot(self, channel_id: str) -> list[dict[str, Any]]:
        return [
            m
            for m in self.fake.channel_messages(channel_id)
            if m["author"]["id"] == self.fake.bot_id
        ]

    def done(self, channel_id: str, count: int = 1) -> list[dict[str, Any]] | None:
        finals = [m for m in self.from_bot(channel_id) if "✅ Done" in m["content"]]
        return finals if len(finals) >= count else None

    def sessions(self) -> list[str]:
        return [r.body["session_id"] for r in self.sim.requests]


@pytest.fixture
async def env(tmp_path: Any) -> AsyncIterator[Env]:
    async with FakeDiscord(token_lifetime=3.0) as fake, Simulator(speed=1000) as sim:
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            database_url=f"sqlite:///{tmp_path}/bot.db",
            media_allow_insecure=True,
            eachsense_max_retry_wait=0.05,
            eachsense_max_retries=0,
            eachsense_idle_timeout=5.0,
            job_poll_initial=0.05,
            job_poll_max=0.2,
        )
        async with running_bot(fake, sim, settings) as (core, bot):
            # Discord's token lives 15 minutes and the bot moves a minute before; here 3 s
            bot.places.lifetime, bot.places.margin = fake.token_lifetime, 1.5
            yield Env(fake, sim, core, bot)


def original_deleted(fake: FakeDiscord, inter: FakeInteraction) -> bool:
    return bool(fake.calls_to("DELETE", rf"/webhooks/\d+/{inter.token}/messages/@original$"))


async def test_every_command_may_be_used_in_dms_and_as_a_users_app(env: Env) -> None:
    fake = env.fake
    await env.bot.sync_commands(int(fake.guild_id))
    commands = [c for c in fake.commands[fake.guild_id] if c.get("type", 1) == 1]
    assert {c["name"] for c in commands} == {
        "sense-settings",
        "sense",
        "sense-eco",
        "sense-predict",
        "sense-workflow",
        "sense-usage",
        "sense-admin",
    }
    for command in commands:
        assert sorted(command["integration_types"]) == [0, 1], command["name"]
        assert sorted(command["contexts"]) == [0, 1, 2], command["name"]


async def test_a_dm_is_a_conversation_sense_starts_a_new_one(env: Env) -> None:
    fake = env.fake
    dm = fake.open_dm(fake.user_id)
    inter = await fake.slash("sense", {"prompt": "draw a cat"}, channel_id=dm)
    await fake.wait_for(lambda: env.done(dm), what="the answer in the DM")
    assert inter.callbacks[0]["type"] == 5, "deferred within Discord's 3 s"
    assert original_deleted(fake, inter), "the thinking placeholder gives way to the answer"
    root, *_ = env.from_bot(dm)
    assert root["content"] == f"<@{fake.user_id}> asked: draw a cat · max mode"
    await fake.wait_for(
        lambda: any(m["attachments"] for m in env.from_bot(dm)), what="the image in the DM"
    )
    assert not fake.threads(), "no thread anywhere"

    await fake.say(dm, "now a dog, just text")  # a plain message continues the conversation
    await fake.wait_for(lambda: env.done(dm, 2), what="the follow-up")
    first, second = env.sessions()
    assert first and second == first

    await fake.slash("sense", {"prompt": "something new, just text"}, channel_id=dm)
    await fake.wait_for(lambda: env.done(dm, 3), what="the new conversation")
    await fake.say(dm, "and more, just text")
    await fake.wait_for(lambda: env.done(dm, 4), what="its follow-up")
    *_, third, fourth = env.sessions()
    assert third != first and fourth == third
    assert fake.rate_limited == 0 and not fake.pings()


async def test_a_first_plain_dm_begins_a_conversation(env: Env) -> None:
    fake = env.fake
    dm = fake.open_dm(fake.user_id)
    await fake.say(dm, "hello, just text")
    await fake.wait_for(lambda: env.done(dm), what="the answer")
    assert env.sim.requests[0].prompt.strip().endswith("hello, just text")


async def test_eco_in_a_dm_is_the_persons_to_change(env: Env) -> None:
    fake = env.fake
    dm = fake.open_dm(fake.user_id)
    on = await fake.slash("sense-eco", {"action": "on"}, channel_id=dm)
    await fake.wait_for(lambda: on.callbacks, what="eco on")
    assert "Done" in on.callbacks[0]["data"]["content"]
    await fake.slash("sense", {"prompt": "just text"}, channel_id=dm)
    await fake.wait_for(lambda: env.done(dm), what="the answer")
    assert env.sim.requests[0].body["mode"] == "eco"


async def test_where_the_bot_is_not_it_answers_through_the_interaction(env: Env) -> None:
    fake = env.fake
    foreign = fake.add_foreign_channel()
    inter = await fake.slash("sense", {"prompt": "just text"}, channel_id=foreign)
    await fake.wait_for(lambda: env.done(foreign), what="the answer through followups")
    root, answer = env.from_bot(foreign)
    assert root["content"].endswith("asked: just text · max mode")
    assert len(inter.followups) == 2 and original_deleted(fake, inter)
    assert fake.calls_to("PATCH", rf"/webhooks/\d+/{inter.token}/messages/{answer['id']}$")
    assert not fake.calls_to("POST", rf"/channels/{foreign}/messages$"), "never the channel"

    # a click is a new interaction: Regenerate continues the conversation through it
    regen = next(
        c["custom_id"]
        for row in answer["components"]
        for c in row["components"]
        if c["custom_id"].startswith("sense:regen:")
    )
    click = await fake.click(regen, message_id=answer["id"], user_id=fake.user_id)
    await fake.wait_for(lambda: env.done(foreign, 2), what="the regenerated answer")
    assert click.followups, "answered through the click's own token"
    first, second = env.sessions()
    assert second == first


async def test_a_group_dm_run_is_answered_through_the_interaction(env: Env) -> None:
    fake = env.fake
    group = fake.open_group_dm(fake.user_id, fake.admin_id)
    inter = await fake.slash(
        "sense-predict", {"model": "flux-schnell", "prompt": "a cat"}, channel_id=group
    )
    await fake.wait_for(
        lambda: any(m["attachments"] for m in fake.channel_messages(group)),
        within=15,
        what="the run's output",
    )
    assert all(f.get("flags", 0) & EPHEMERAL == 0 for f in inter.followups)
    assert any("done" in m["content"] for m in fake.channel_messages(group))
    assert not fake.calls_to("POST", rf"/channels/{group}/messages$")


async def test_a_turn_that_outlives_the_token_finishes_in_the_dm(env: Env) -> None:
    fake, sim = env.fake, env.sim
    sim.speed = 1.0  # a video turn takes about four seconds; the token (here) three
    foreign = fake.add_foreign_channel()
    inter = await fake.slash("sense", {"prompt": "a short video"}, channel_id=foreign)
    dm = await fake.wait_for(lambda: fake.dm_of(fake.user_id), within=15, what="the DM")
    await fake.wait_for(lambda: env.done(dm), within=20, what="the answer, finished in the DM")
    await fake.wait_for(
        lambda: any(m["attachments"] for m in env.from_bot(dm)), what="the video in the DM"
    )
    said_there = [m["content"] for m in env.from_bot(foreign)]
    assert MOVING in said_there, said_there
    in_dm = [m["content"] for m in env.from_bot(dm)]
    assert in_dm[0] == CONTINUING.format(where=f"<#{foreign}>")
    # nothing was sent with a dead token, and the channel itself was never written to
    assert not [c for c in fake.calls if c.status == 401]
    assert not fake.calls_to("POST", rf"/channels/{foreign}/messages$")
    assert inter.followups


async def test_a_run_that_outlives_the_token_finishes_in_the_dm(env: Env) -> None:
    fake, jobs = env.fake, env.core.jobs
    # a slow run: 120 s simulated (4 s here) or seven polls (at one in 0.6 s), whichever comes
    # first; the token (here) lives three seconds
    sim_jobs(env.sim.app).speed = 30.0
    jobs.settings = jobs.settings.model_copy(update={"job_poll_initial": 0.6, "job_poll_max": 0.6})
    group = fake.open_group_dm(fake.user_id)
    await fake.slash(
        "sense-predict", {"model": "veo3", "prompt": "a slow video of waves"}, channel_id=group
    )
    dm = await fake.wait_for(lambda: fake.dm_of(fake.user_id), within=15, what="the DM")
    await fake.wait_for(
        lambda: any(m["attachments"] for m in env.from_bot(dm)),
        within=20,
        what="the run's output in the DM",
    )
    texts = [m["content"] for m in env.from_bot(dm)]
    assert texts[0] == CONTINUING.format(where="a group chat")
    assert any("done in" in text for text in texts), texts
    assert not [c for c in fake.calls if c.status == 401]
