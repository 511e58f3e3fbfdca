"""Usage, quotas and access control on Discord, end to end: the real discord.py `DiscordBot`
against the fake Discord (member roles in every interaction and message), the simulator as
each::sense and each::api. Refusals of commands that defer publicly are answered privately
before the defer; `/sense-usage` and `/sense-admin` defer privately."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.app import Core
from bot.config import Settings
from bot.operator_records import UsageKind
from simulator import Simulator
from tests.discord_bot import running_bot
from tests.fakes.discord import EPHEMERAL, FakeDiscord, FakeInteraction
from tests.util import wait_until

RESETS = re.compile(r"resets at 00:00 UTC \(in \d+(h \d\dm|m \d\ds|s)\)")


@dataclass
class Env:
    fake: FakeDiscord
    sim: Simulator
    core: Core

    def bot_messages(self, channel_id: str) -> list[dict[str, Any]]:
        return [
            m
            for m in self.fake.channel_messages(channel_id)
            if m["author"]["id"] == self.fake.bot_id
        ]

    async def thread(self, name: str, options: dict[str, str], **kw: Any) -> str:
        """Run a command that opens a thread; the thread's id once it is pointed at."""
        inter = await self.fake.slash(name, options, **kw)
        original = await self.fake.wait_for(
            lambda: (
                inter.original_id
                and "Answering in" in self.fake.messages[inter.original_id]["content"]
                and inter.original_id
            ),
            what="the deferred response to point at the thread",
        )
        return str(self.fake.messages[original]["content"].split("<#")[1].rstrip(">"))

    async def finished(self, thread_id: str, *, count: int = 1) -> None:
        marks = ("✅ Done", "✅ done", "⚠️")
        await self.fake.wait_for(
            lambda: (
                sum(any(m in msg["content"] for m in marks) for msg in self.bot_messages(thread_id))
                >= count
            ),
            what="the answer to finish",
        )

    async def private(self, name: str, options: dict[str, str], **kw: Any) -> str:
        """Run `/sense-usage` or `/sense-admin`: deferred privately, then answered there."""
        inter = await self.fake.slash(name, options, **kw)
        await self.fake.wait_for(
            lambda: inter.original_id and self.fake.messages[inter.original_id]["edits"],
            what=f"the answer to /{name}",
        )
        assert inter.callbacks[0]["type"] == 5
        assert inter.callbacks[0]["data"]["flags"] & EPHEMERAL, "answered privately"
        return str(self.fake.messages[inter.original_id or ""]["content"])

    async def refused(self, name: str, options: dict[str, str], **kw: Any) -> FakeInteraction:
        """A command refused at once: the interaction's own private response, no defer."""
        inter = await self.fake.slash(name, options, **kw)
        await self.fake.wait_for(lambda: inter.callbacks, what="the refusal")
        (callback,) = inter.callbacks
        assert callback["type"] == 4 and callback["data"]["flags"] & EPHEMERAL, callback
        return inter

    async def recorded(self, kind: UsageKind, count: int) -> None:
        async def enough() -> bool:
            totals = await self.core.store.usage_totals("discord", self.fake.guild_id, since=0.0)
            return sum(t.count for t in totals if t.kind is kind) >= count

        await wait_until(enough)


Setup = Callable[[FakeDiscord], Awaitable[dict[str, Any]]]


@contextlib.asynccontextmanager
async def discord_env(tmp_path: Path, setup: Setup | None = None) -> AsyncIterator[Env]:
    """The bot on a fake; `setup` prepares the fake before the bot connects (roles arrive in
    GUILD_CREATE) and returns settings."""
    async with FakeDiscord() as fake, Simulator(speed=1000) as sim:
        extra = await setup(fake) if setup is not None else {}
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            database_url=f"sqlite:///{tmp_path}/bot.db",
            media_allow_insecure=True,
            job_poll_initial=0.05,
            job_poll_max=0.2,
            **extra,
        )
        async with running_bot(fake, sim, settings) as (core, _):
            yield Env(fake, sim, core)


def content(inter: FakeInteraction) -> str:
    return str(inter.callbacks[0]["data"]["content"])


# --- usage --------------------------------------------------------------------------------


async def test_discord_usage_is_private_and_admins_see_everyone(tmp_path: Path) -> None:
    async with discord_env(tmp_path) as env:
        fake = env.fake
        thread = await env.thread("sense", {"prompt": "draw a cat"})
        await env.finished(thread)
        await env.thread("sense-predict", {"model": "flux-schnell", "prompt": "a fox"})
        await env.recorded(UsageKind.RUN, 1)
        await env.recorded(UsageKind.TURN, 1)

        mine = await env.private("sense-usage", {})
        assert mine.startswith("**Your each::sense usage**")
        assert "Today: 1 turn · 1 image · 1 run, $0.03" in mine
        assert "Everyone here" not in mine

        everyone = await env.private("sense-usage", {}, user_id=fake.admin_id)
        assert "**Everyone here**" in everyone
        assert f"1. `{fake.channel_id}`: 1 turn · 1 file · 1 run, $0.03" in everyone
        assert f"1. `{fake.user_id}`: 1 turn · 1 file · 1 run, $0.03" in everyone
        assert not fake.pings()


# --- quotas -------------------------------------------------------------------------------


async def test_discord_quota_refusal_is_private_and_opens_nothing(tmp_path: Path) -> None:
    async def setup(fake: FakeDiscord) -> dict[str, Any]:
        return {"quota_turns_per_user_day": 1, "quota_runs_per_channel_day": 1}

    async with discord_env(tmp_path, setup) as env:
        fake = env.fake
        thread = await env.thread("sense", {"prompt": "just text"})
        await env.finished(thread)
        threads = len(fake.threads())

        inter = await env.refused("sense", {"prompt": "just text again"})
        assert content(inter).startswith("⏳ You have used the one turn you may start in a day")
        assert RESETS.search(content(inter))
        assert len(fake.threads()) == threads and len(env.sim.requests) == 1

        # a message in the thread is a turn too: refused there, by name
        await fake.say(thread, "one more, just text")
        await fake.wait_for(
            lambda: any("⏳" in m["content"] for m in env.bot_messages(thread)),
            what="the refusal in the thread",
        )
        notice = next(m for m in env.bot_messages(thread) if "⏳" in m["content"])
        assert notice["content"].startswith(f"<@{fake.user_id}> ⏳")

        # the channel's runs: the first one goes, the next is refused whoever asks
        await env.thread("sense-predict", {"model": "flux-schnell", "prompt": "a fox"})
        await env.recorded(UsageKind.RUN, 1)
        other = fake.add_member("bob")
        refused = await env.refused(
            "sense-predict", {"model": "flux-schnell", "prompt": "a dog"}, user_id=other
        )
        assert "This channel has used the one model or workflow run" in content(refused)

        # Manage Channels makes an admin: never refused, in commands and in messages
        await env.thread("sense", {"prompt": "just text"}, user_id=fake.admin_id)
        again = await env.thread("sense", {"prompt": "just text"}, user_id=fake.admin_id)
        # the thread's session exists once its turn has begun: reply after that, as a person
        await wait_until(lambda: len(env.sim.requests) == 3)
        await fake.say(again, "and a follow-up, just text", user_id=fake.admin_id)
        await wait_until(lambda: len(env.sim.requests) == 4)
        assert not fake.pings()


async def test_discord_admin_changes_quotas(tmp_path: Path) -> None:
    async with discord_env(tmp_path) as env:
        fake = env.fake
        not_admin = await env.private("sense-admin", {"args": "quota user-turns 1"})
        assert not_admin.startswith("Only admins can use `/sense-admin` here (people with")
        done = await env.private(
            "sense-admin", {"args": "quota user-turns 1"}, user_id=fake.admin_id
        )
        assert done == "Done: each person may start 1 turn a day in this workspace."
        shown = await env.private("sense-admin", {"args": "quota"}, user_id=fake.admin_id)
        assert "Turns per person: 1 a day (set for the workspace)" in shown
        thread = await env.thread("sense", {"prompt": "just text"})
        await env.finished(thread)
        inter = await env.refused("sense", {"prompt": "just text"})
        assert "You have used the one turn" in content(inter)
        # a mistyped one is refused at once, before anything is deferred
        bad = await env.refused(
            "sense-admin", {"args": "quota user-turns -3"}, user_id=fake.admin_id
        )
        assert "is not a limit" in content(bad)


# --- access -------------------------------------------------------------------------------


async def test_discord_roles_from_the_payload_deny_and_allow(tmp_path: Path) -> None:
    roles: dict[str, str] = {}

    async def setup(fake: FakeDiscord) -> dict[str, Any]:
        roles["guests"] = await fake.add_role("guests")
        roles["artists"] = await fake.add_role("artists")
        fake.give_role(fake.user_id, roles["artists"])
        return {"access_allow_roles": [roles["artists"]]}

    async with discord_env(tmp_path, setup) as env:
        fake = env.fake
        bob = fake.add_member("bob")
        refused = await env.refused("sense", {"prompt": "just text"}, user_id=bob)
        assert content(refused).startswith("⛔ You can't use each::sense here")
        thread = await env.thread("sense", {"prompt": "just text"})  # alice is an artist
        await env.finished(thread)

        # the admin denies a role by mentioning it; deny beats the allowed role
        done = await env.private(
            "sense-admin",
            {"args": f"access deny role <@&{roles['guests']}>"},
            user_id=fake.admin_id,
        )
        assert done == f"Done: denied roles `{roles['guests']}` in this workspace."
        fake.give_role(fake.user_id, roles["guests"])
        inter = await env.refused("sense", {"prompt": "just text"})
        assert "You can't use" in content(inter)
        await fake.say(thread, "a follow-up, just text")
        await fake.wait_for(
            lambda: any("⛔" in m["content"] for m in env.bot_messages(thread)),
            what="the refusal in the thread",
        )
        # the admin is never locked out, whatever the lists say
        await env.private(
            "sense-admin", {"args": f"access deny user <@{fake.admin_id}>"}, user_id=fake.admin_id
        )
        await env.thread("sense", {"prompt": "just text"}, user_id=fake.admin_id)
        lists = await env.private("sense-admin", {"args": "access"}, user_id=fake.admin_id)
        assert f"Denied roles: `{roles['guests']}`" in lists
        assert f"Allowed roles: ACCESS_ALLOW_ROLES: `{roles['artists']}`" in lists
        await env.private(
            "sense-admin",
            {"args": f"access remove role <@&{roles['guests']}>"},
            user_id=fake.admin_id,
        )
        await env.thread("sense", {"prompt": "just text"})
        await wait_until(lambda: len(env.sim.requests) == 3)


async def test_discord_channel_lists(tmp_path: Path) -> None:
    channels: dict[str, str] = {}

    async def setup(fake: FakeDiscord) -> dict[str, Any]:
        channels["art"] = fake.add_text_channel("art")
        return {"access_allow_channels": [fake.channel_id]}

    async with discord_env(tmp_path, setup) as env:
        fake = env.fake
        inter = await env.refused("sense", {"prompt": "just text"}, channel_id=channels["art"])
        assert content(inter).startswith("⛔ each::sense is switched off in this channel.")
        thread = await env.thread("sense", {"prompt": "just text"})
        await env.finished(thread)
        # a click that starts a turn is checked too: Regenerate in a channel now denied
        await env.private(
            "sense-admin",
            {"args": f"access deny channel <#{fake.channel_id}>"},
            user_id=fake.admin_id,
        )
        answer = next(m for m in env.bot_messages(thread) if m["components"])
        regen = answer["components"][0]["components"][0]["custom_id"]
        assert regen.startswith("sense:regen:")
        click = await fake.click(regen, message_id=answer["id"])
        (reply,) = await fake.wait_for(lambda: click.followups, what="the refusal")
        assert reply["flags"] & EPHEMERAL and "switched off" in reply["content"]
        assert len(env.sim.requests) == 1
