"""Slack's AI app surface end to end: the fake Slack delivers assistant events as Slack does
(signed HTTP requests, echoes of the bot's own posts) to the real slack-bolt app with bolt's
`Assistant` middleware, the simulator answers as each::sense, and the fake keeps what Slack
would show: the thread's suggested prompts, title and status (which lapses after its
lifetime unless refreshed, and clears when the app replies)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from pydantic import ValidationError

from bot.app import close_core
from bot.config import Settings
from simulator import Simulator
from tests.fakes.slack import FakeSlack
from tests.fakes.slack_surfaces import AssistantThread
from tests.test_slack_adapter import (
    TEAM,
    Rig,
    buttons,
    fast_limiter,
    make_rig,
    settings_for,
)

__all__ = ["settings_for"]


@pytest.fixture
async def rig(settings_for: Callable[..., Settings]) -> AsyncIterator[Rig]:
    """The bot in HTTP mode, and the fake Slack delivering to it (as Slack does)."""
    async with (
        Simulator(speed=1000) as sim,
        FakeSlack(admins={"UADMIN"}, status_ttl=2.0) as slack,
    ):
        settings = settings_for(slack, sim, slack_suggested_prompts="Draw a fox|Write a haiku")
        core, http, bot = await make_rig(settings, slack, sim, fast_limiter())
        bot.status_lifetime = 2.0  # Slack's is 120 s; the fake's matches this one
        slack.connect_app(f"{http.url}/slack/events")
        try:
            yield Rig(slack, sim, bot, http, core.session)
        finally:
            await bot.stop()
            await http.stop()
            await close_core(core)


def answers(rig: Rig, thread: AssistantThread) -> list[Any]:
    """The bot's finished answers in the assistant thread."""
    return [
        m
        for m in rig.slack.thread(thread.channel, thread.thread_ts)
        if m.bot_id and "Done" in m.all_text
    ]


async def test_an_assistant_thread_is_one_session(rig: Rig) -> None:
    slack = rig.slack
    thread, started = await slack.start_assistant_thread(user="U1", context_channel="C1")
    assert started.acked
    await slack.wait_for(lambda: thread.prompts, what="the suggested prompts")
    assert [p["message"] for p in thread.prompts] == ["Draw a fox", "Write a haiku"]
    assert thread.prompts_title

    await slack.say(thread.channel, "draw a red fox", user="U1", thread_ts=thread.thread_ts)
    await slack.wait_for(lambda: answers(rig, thread), what="the first answer")
    # the generated image lands in the assistant thread
    await slack.wait_for(
        lambda: [f for f in slack.files.values() if f.thread_ts == thread.thread_ts and f.data],
        what="the image in the thread",
    )
    assert thread.title == "draw a red fox"
    shown = [s.text for s in thread.statuses if s.text]
    assert shown and any("Thinking" in text or "🔧" in text for text in shown), shown
    await slack.wait_for(lambda: thread.statuses[-1].text == "", what="the status cleared")
    assert slack.status_now(thread) == ""

    # the person changes channels with the panel open: nothing breaks, nothing is posted
    await slack.change_assistant_context(thread, context_channel="C2")
    await slack.say(thread.channel, "now just text", user="U1", thread_ts=thread.thread_ts)
    await slack.wait_for(lambda: len(answers(rig, thread)) == 2, what="the second answer")
    first, second = rig.sim.requests
    assert first.session_id and second.session_id == first.session_id
    assert "now just text" in second.prompt
    assert thread.title == "draw a red fox", "the title comes from the first prompt only"
    for delivery in slack.deliveries:  # echoes of the bot's posts go on in the background
        await delivery.settled()
    assert all(d.acked for d in slack.deliveries), [
        (d.kind, d.attempts[-1].outcome, d.attempts[-1].status, (d.event or {}).get("type"))
        for d in slack.deliveries
        if not d.acked
    ]
    assert not [c for c in slack.calls if c.error and c.method.startswith("assistant.")]

    # another assistant thread is another session
    other, _ = await slack.start_assistant_thread(user="U1")
    await slack.say(other.channel, "just text please", user="U1", thread_ts=other.thread_ts)
    await slack.wait_for(lambda: answers(rig, other), what="the other thread's answer")
    assert rig.sim.requests[2].session_id != first.session_id


async def test_a_long_turn_keeps_its_status_until_it_ends(rig: Rig) -> None:
    """Slack drops a status after its lifetime (the fake: 2 s here, Slack: 2 minutes) while a
    video turn runs for minutes: the bot refreshes it in time and clears it at the end."""
    slack = rig.slack
    thread, _ = await slack.start_assistant_thread(user="U1")
    await slack.say(thread.channel, "fail:stall a video", user="U1", thread_ts=thread.thread_ts)
    await slack.wait_for(
        lambda: sum(1 for s in thread.statuses if s.text) >= 5,
        within=20,
        what="the status refreshed several times",
    )
    assert slack.status_now(thread), "shown right now"
    assert thread.lapses == [], "Slack never dropped it by time"
    live = next(m for m in slack.thread(thread.channel, thread.thread_ts) if buttons(m))
    stop = next(b for b in buttons(live) if b["action_id"].startswith("sense:stop:"))
    await slack.click(stop, live, user="U1")
    await slack.wait_for(lambda: "Stopped" in live.all_text, what="the stopped answer")
    await slack.wait_for(lambda: thread.statuses[-1].text == "", what="the status cleared")
    assert thread.lapses == []


async def test_plain_direct_messages_still_get_a_thread(rig: Rig) -> None:
    """A top-level DM (no assistant thread) is answered in a thread under it, as before;
    that thread has no assistant status, and the answer does not suffer for it."""
    slack = rig.slack
    delivery = await slack.say("D9", "just text, privately", user="U9")
    root = delivery.message
    assert root is not None
    await slack.wait_for(
        lambda: [m for m in slack.thread("D9", root.ts) if "Done" in m.all_text],
        what="the answer in a thread under the DM",
    )
    assert rig.sim.requests[0].prompt.strip().endswith("just text, privately")


def test_at_most_four_suggested_prompts() -> None:
    with pytest.raises(ValidationError, match="at most 4 suggested prompts"):
        Settings(_env_file=None, slack_suggested_prompts="a|b|c|d|e")  # type: ignore[call-arg]
    none = Settings(_env_file=None, slack_suggested_prompts="")  # type: ignore[call-arg]
    assert none.slack_suggested_prompts == []
    assert TEAM  # the fake's workspace is the rig's


def test_the_manifest_asks_for_what_the_surfaces_use() -> None:
    """The assistant and Home listeners get nothing unless the app subscribes and may call."""
    from pathlib import Path

    manifest = (Path(__file__).parent.parent / "adapters/slack/manifest.yml").read_text()
    for needed in (
        "assistant_view:",
        "home_tab_enabled: true",
        "- assistant:write",
        "- im:history",
        "- chat:write",
        "- channels:read",
        "- assistant_thread_started",
        "- assistant_thread_context_changed",
        "- message.im",
        "- app_home_opened",
    ):
        assert needed in manifest, needed
