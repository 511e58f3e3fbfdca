"""Usage, quotas and access control on Slack, end to end: the real slack-bolt `SlackBot` behind
the bot's HTTP server, driven by signed requests, the fake Slack as the Web API (user groups
through `usergroups.users.list`), the simulator as each::sense and each::api."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from bot.app import Core, close_core, simulated
from bot.config import Settings
from bot.operator_records import UsageKind
from simulator import Simulator
from tests.fakes.slack import FakeSlack
from tests.postgres import fresh_schema_url
from tests.test_slack_adapter import SECRET, TEAM, Rig, fast_limiter, finished, make_rig, until
from tests.util import wait_until


def fresh_database(tmp_path: Path) -> contextlib.AbstractAsyncContextManager[str]:
    return fresh_schema_url()


RESETS = re.compile(r"resets at 00:00 UTC \(in \d+(h \d\dm|m \d\ds|s)\)")


@pytest.fixture
def settings_for(tmp_path: Path) -> Callable[..., Settings]:
    def make(slack: FakeSlack, sim: Simulator, **extra: Any) -> Settings:
        values: dict[str, Any] = {
            "slack_bot_token": SecretStr(slack.bot_token),
            "slack_signing_secret": SecretStr(SECRET),
            "slack_api_url": slack.api_url,
            "database_url": f"sqlite:///{tmp_path / 'bot.db'}",
            "media_allow_insecure": True,
            "http_host": "127.0.0.1",
            "http_port": 0,
            "job_poll_initial": 0.05,
            "job_poll_max": 0.2,
            **extra,
        }
        return simulated(Settings(_env_file=None, **values), sim)  # type: ignore[call-arg]

    return make


@contextlib.asynccontextmanager
async def slack_bot(
    settings_for: Callable[..., Settings],
    *,
    usergroups: dict[str, list[str]] | None = None,
    **extra: Any,
) -> AsyncIterator[tuple[Rig, Core]]:
    async with (
        Simulator(speed=1000) as sim,
        FakeSlack(admins={"UADMIN"}, usergroups=usergroups) as slack,
    ):
        core, http, bot = await make_rig(
            settings_for(slack, sim, **extra), slack, sim, fast_limiter()
        )
        try:
            yield Rig(slack, sim, bot, http, core.session), core
        finally:
            await bot.stop()
            await http.stop()
            await close_core(core)


async def answer(
    rig: Rig, command: str, text: str, *, user: str = "U1", channel: str = "C1"
) -> str:
    """Run a command and return what the bot said to the person (the response_url reply)."""
    before = len(rig.slack.responses)
    status, body = await rig.command(command, text, user=user, channel=channel)
    assert status == 200 and not body, body
    await until(lambda: len(rig.slack.responses) > before, what=f"the answer to {command}")
    (reply,) = rig.slack.responses[before:]
    assert reply["response_type"] == "ephemeral"
    return str(reply["text"])


async def thread_done(rig: Rig, *, channel: str = "C1", index: int = -1) -> str:
    """The root of the newest thread in `channel` once its answer is finished."""
    root = (await until(lambda: rig.slack.top_level(channel), what="a root message"))[index].ts
    await until(lambda: finished(rig.slack, channel, root), what="the final answer")
    return root


async def recorded(core: Core, kind: UsageKind, count: int, **where: str) -> None:
    """Wait until the store holds `count` events of `kind` (usage is written as work ends)."""

    async def enough() -> bool:
        totals = await core.store.usage_totals("slack", TEAM, since=0.0, **where)
        return sum(t.count for t in totals if t.kind is kind) >= count

    await wait_until(enough)


def message(channel: str, user: str, text: str, *, thread_ts: str, ts: str) -> dict[str, Any]:
    return {
        "type": "message",
        "channel": channel,
        "user": user,
        "text": text,
        "ts": ts,
        "thread_ts": thread_ts,
        "channel_type": "channel",
    }


# --- usage --------------------------------------------------------------------------------


async def test_slack_usage_counts_turns_files_and_runs_with_their_cost(
    settings_for: Callable[..., Settings],
) -> None:
    async with slack_bot(settings_for) as (rig, core):
        await rig.command("/sense", "draw a cat")
        await thread_done(rig)
        await recorded(core, UsageKind.GENERATION, 1)
        await rig.command("/sense-predict", "flux-schnell a lighthouse")
        await rig.command("/sense-workflow", "wf_demo prompt=fox")
        await rig.command("/sense", "just text please", user="U2", channel="C2")
        await recorded(core, UsageKind.RUN, 2)
        await recorded(core, UsageKind.TURN, 2)

        mine = await answer(rig, "/sense-usage", "")
        assert mine.startswith("*Your each::sense usage*")
        # the simulator bills 0.03 for a prediction (metrics.cost) and 0.12 for a workflow
        assert "Today: 1 turn · 1 image · 2 runs, $0.15" in mine
        assert "Last 30 days: 1 turn · 1 image · 2 runs, $0.15" in mine
        assert "Everyone here" not in mine and "Quotas" not in mine

        theirs = await answer(rig, "/sense-usage", "", user="U2", channel="C2")
        assert "Today: 1 turn\n" in theirs + "\n"

        everyone = await answer(rig, "/sense-usage", "", user="UADMIN")
        assert "Today: nothing yet" in everyone  # the admin's own use
        assert "*Everyone here*" in everyone
        assert "Today: 2 turns · 1 image · 2 runs, $0.15" in everyone
        channels = everyone.split("*Channels, last 30 days*")[1].split("*Top people")[0]
        assert channels.strip().splitlines() == [
            "1. `C1`: 1 turn · 1 file · 2 runs, $0.15",
            "2. `C2`: 1 turn",
        ]
        people = everyone.split("*Top people, last 30 days*")[1].strip().splitlines()
        assert people == ["1. `U1`: 1 turn · 1 file · 2 runs, $0.15", "2. `U2`: 1 turn"]


async def test_slack_a_failed_run_counts_with_its_cost(
    settings_for: Callable[..., Settings],
) -> None:
    async with slack_bot(settings_for) as (rig, core):
        await rig.command("/sense-predict", "flux-schnell fail for sure")
        await recorded(core, UsageKind.RUN, 1)
        (total,) = await core.store.usage_totals("slack", TEAM, since=0.0)
        assert (total.detail, total.count, total.priced) == ("prediction:failed", 1, 1)
        assert round(total.cost, 2) == 0.03
        text = await answer(rig, "/sense-usage", "")
        assert "Today: 1 run, $0.03" in text


# --- quotas -------------------------------------------------------------------------------


async def test_slack_quota_refuses_with_the_reset_time_and_admins_are_exempt(
    settings_for: Callable[..., Settings],
) -> None:
    async with slack_bot(settings_for, quota_turns_per_user_day=1) as (rig, core):
        await rig.command("/sense", "just text")
        root = await thread_done(rig)

        refusal = await answer(rig, "/sense", "just text again")
        assert refusal.startswith("⏳ You have used the one turn you may start in a day here.")
        assert RESETS.search(refusal), refusal
        assert len(rig.slack.top_level("C1")) == 1, "a refused command opens no thread"

        # a follow-up in the thread is a turn too: refused in the thread, nothing generated
        await rig.event(message("C1", "U1", "and more?", thread_ts=root, ts="1800000000.1"))
        notice = await until(
            lambda: [m for m in rig.slack.thread("C1", root) if "⏳" in m.all_text],
            what="the refusal in the thread",
        )
        assert "<@U1>" in notice[0].text and RESETS.search(notice[0].all_text)
        assert len(rig.sim.requests) == 1

        # an admin is never refused, and /sense-usage says how much is left
        for n in range(2):
            await rig.command("/sense", f"just text {n}", user="UADMIN")
        await until(lambda: len(rig.sim.requests) == 3, what="the admin's two turns")
        usage = await answer(rig, "/sense-usage", "")
        assert "Quotas today: your turns 1 of 1 · they reset at 00:00 UTC" in usage
        # runs have their own quota (none set): a run still goes
        await rig.command("/sense-predict", "flux-schnell a fox")
        await recorded(core, UsageKind.RUN, 1)


async def test_slack_admins_set_quotas_for_the_workspace_and_one_channel(
    settings_for: Callable[..., Settings],
) -> None:
    async with slack_bot(settings_for, quota_runs_per_channel_day=5) as (rig, core):
        refused = await answer(rig, "/sense-admin", "quota channel-runs 1 here", user="U2")
        assert refused.startswith("Only admins can use `/sense-admin` here")
        # a mistyped one is refused in the ack itself, with the usage
        status, body = await rig.command("/sense-admin", "quota user-turns lots", user="UADMIN")
        assert status == 200 and "is not a limit" in body

        done = await answer(rig, "/sense-admin", "quota channel-runs 1 here", user="UADMIN")
        assert done == "Done: this channel may start 1 model or workflow run a day."
        shown = await answer(rig, "/sense-admin", "quota", user="UADMIN")
        assert "Model and workflow runs per channel: 1 a day (set for this channel)" in shown
        assert "Turns per person: off (from the settings)" in shown
        elsewhere = await answer(rig, "/sense-admin", "quota", user="UADMIN", channel="C2")
        assert "Model and workflow runs per channel: 5 a day (from the settings)" in elsewhere

        await rig.command("/sense-predict", "flux-schnell one", user="U1")
        await recorded(core, UsageKind.RUN, 1)
        refusal = await answer(rig, "/sense-predict", "flux-schnell two", user="U2")
        assert refusal.startswith(
            "⏳ This channel has used the one model or workflow run it may start in a day."
        )
        await rig.command("/sense-predict", "flux-schnell three", user="U2", channel="C2")
        await recorded(core, UsageKind.RUN, 2)

        back = await answer(rig, "/sense-admin", "quota channel-runs default here", user="UADMIN")
        assert back == (
            "Done: model and workflow runs per channel here: 5 a day (from the settings)."
        )
        await rig.command("/sense-predict", "flux-schnell four", user="U2")
        await recorded(core, UsageKind.RUN, 3)


@contextlib.asynccontextmanager
async def _sqlite_file(tmp_path: Path) -> AsyncIterator[str]:
    yield f"sqlite:///{tmp_path / 'shared.db'}"


@pytest.mark.parametrize("database", [_sqlite_file, fresh_database], ids=["sqlite", "postgres"])
async def test_slack_quota_and_access_are_shared_by_replicas(
    settings_for: Callable[..., Settings],
    tmp_path: Path,
    database: Callable[[Path], contextlib.AbstractAsyncContextManager[str]],
) -> None:
    """Two bot processes on one database: the second replica sees what the first counted,
    and an admin's change on one applies on the other at once."""
    async with (
        database(tmp_path) as url,
        Simulator(speed=1000) as sim,
        FakeSlack(admins={"UADMIN"}) as slack,
    ):
        settings = settings_for(slack, sim, quota_turns_per_user_day=1, database_url=url)
        rigs = []
        try:
            for _ in range(2):
                core, http, bot = await make_rig(settings, slack, sim, fast_limiter())
                rigs.append((Rig(slack, sim, bot, http, core.session), core))
            (first, _), (second, _) = rigs
            await first.command("/sense", "just text")
            await until(lambda: sim.requests, what="the first replica's turn")
            refusal = await answer(second, "/sense", "just text on the other replica")
            assert "You have used the one turn" in refusal
            assert len(sim.requests) == 1
            await answer(first, "/sense-admin", "access deny user U2", user="UADMIN")
            assert "You can't use" in await answer(second, "/sense-eco", "status", user="U2")
        finally:
            for rig, core in rigs:
                await rig.bot.stop()
                await rig.http.stop()
                await close_core(core)


# --- access -------------------------------------------------------------------------------


async def test_slack_deny_beats_allow_by_person_group_and_channel(
    settings_for: Callable[..., Settings],
) -> None:
    async with slack_bot(
        settings_for,
        usergroups={"S1": ["U2"]},
        access_deny_users=["U3"],
        bot_admins=["U9"],
    ) as (rig, core):
        denied = await answer(rig, "/sense", "just text", user="U3")
        assert denied.startswith("⛔ You can't use each::sense here")

        # the admin names the group as Slack sends a mention of it (should_escape: true)
        done = await answer(
            rig, "/sense-admin", "access deny role <!subteam^S1|@design>", user="UADMIN"
        )
        assert done == "Done: denied roles `S1` in this workspace."
        assert "You can't use" in await answer(rig, "/sense", "just text", user="U2")
        # allowing the person does not beat the group's deny; and once anyone is on the
        # allow list, only those on it get in
        allowed = await answer(rig, "/sense-admin", "access allow user <@U2|bob>", user="UADMIN")
        assert allowed == "Done: allowed people `U2` in this workspace."
        assert "You can't use" in await answer(rig, "/sense-eco", "status", user="U2")
        assert "You can't use" in await answer(rig, "/sense", "just text", user="U1")
        await answer(rig, "/sense-admin", "access remove user U2", user="UADMIN")
        await rig.command("/sense", "just text", user="U1")
        await thread_done(rig)
        # the group's members were asked of Slack once, then cached
        assert len(rig.slack.calls_to("usergroups.users.list")) == 1

        # a channel on the deny list: commands and messages there are refused
        root = rig.slack.top_level("C1")[0].ts
        await answer(rig, "/sense-admin", "access deny channel here", user="UADMIN")
        off = await answer(rig, "/sense", "just text", user="U1")
        assert off.startswith("⛔ each::sense is switched off in this channel.")
        await rig.event(message("C1", "U1", "more please", thread_ts=root, ts="1800000000.2"))
        await until(
            lambda: any("switched off" in m.all_text for m in rig.slack.thread("C1", root)),
            what="the refusal in the thread",
        )
        assert "switched off" not in await answer(rig, "/sense-eco", "status", channel="C2")

        # admins are never locked out: a workspace admin, and an id in BOT_ADMINS
        await answer(rig, "/sense-admin", "access deny user U9 UADMIN", user="UADMIN")
        await rig.command("/sense", "just text from an admin", user="UADMIN")
        await rig.command("/sense", "just text from a bot admin", user="U9")
        await until(lambda: len(rig.sim.requests) == 3, what="both admins' turns")

        lists = await answer(rig, "/sense-admin", "access", user="UADMIN")
        assert "Allowed" not in lists
        assert "Denied people: `U9`, `UADMIN`; ACCESS_DENY_USERS: `U3`" in lists
        assert "Denied roles: `S1`" in lists and "Denied channels: `C1`" in lists

        removed = await answer(rig, "/sense-admin", "access remove channel here", user="UADMIN")
        assert removed == "Done: `C1` taken off the lists."
        settings_only = await answer(rig, "/sense-admin", "access remove user U3", user="UADMIN")
        assert settings_only == "`U3` is in ACCESS_DENY_USERS: change it in the settings."
        await rig.command("/sense", "just text again", user="U1")
        await until(lambda: len(rig.sim.requests) == 4, what="U1 let in again")
        assert await core.store.access_entries("slack", "T9") == []


async def test_slack_allow_lists_let_only_those_in(settings_for: Callable[..., Settings]) -> None:
    async with slack_bot(
        settings_for,
        usergroups={"S1": ["U2"]},
        access_allow_roles=["S1"],
        access_allow_channels=["C1"],
    ) as (rig, _):
        assert "You can't use" in await answer(rig, "/sense", "just text", user="U1")
        off = await answer(rig, "/sense", "just text", user="U2", channel="C2")
        assert "switched off in this channel" in off
        await rig.command("/sense", "just text", user="U2")
        await thread_done(rig)
        # a new member of the group is seen once the cached list is looked up again
        rig.slack.usergroups["S1"].append("U1")
        assert "You can't use" in await answer(rig, "/sense", "just text", user="U1")
        rig.bot.groups._ttl = 0.0  # the cache's setting, as ACCESS_ROLES_CACHE_SECONDS=0 gives
        await rig.command("/sense", "just text, now a member", user="U1")
        await until(lambda: len(rig.sim.requests) == 2, what="the new member's turn")


async def test_slack_unknown_group_fails_closed_but_not_for_admins(
    settings_for: Callable[..., Settings],
) -> None:
    async with slack_bot(settings_for, access_deny_roles=["S404"]) as (rig, _):
        refusal = await answer(rig, "/sense", "just text")
        assert refusal.startswith("⛔ I could not check your roles just now")
        await rig.command("/sense", "just text", user="UADMIN")
        await until(lambda: rig.sim.requests, what="the admin's turn")


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("frobnicate", "Unknown option `frobnicate`"),
        ("access deny team U1", "Say `user`, `role` or `channel`"),
        ("access allow user here", "`here` stands for this channel"),
        ("access deny user a/b", "`a/b` is not an id"),
        ("quota user-turns 5 here", "Quotas per person count across the whole workspace"),
        ("quota frobs 5", "Usage: `/sense-admin access`"),
    ],
)
async def test_slack_bad_admin_arguments_are_refused_in_the_ack(
    settings_for: Callable[..., Settings], text: str, said: str
) -> None:
    async with slack_bot(settings_for) as (rig, core):
        status, body = await rig.command("/sense-admin", text, user="UADMIN")
        assert status == 200 and said in body
        assert await core.store.access_entries("slack", TEAM) == []
