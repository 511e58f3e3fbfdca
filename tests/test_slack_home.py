"""Slack's App Home end to end: the fake Slack sends `app_home_opened` and Home clicks as Slack
does to the real slack-bolt app; the bot publishes each person's page (`views.publish`) from
the store: their recent threads, their turns, and for admins each channel's eco setting with
buttons that are `/sense-eco` under the same rule."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from bot.app import close_core
from bot.config import Settings
from simulator import Simulator
from tests.fakes.slack import FakeSlack
from tests.test_slack_adapter import (
    Rig,
    fast_limiter,
    finished,
    make_rig,
    root_of,
    settings_for,
)

__all__ = ["settings_for"]


@pytest.fixture
async def rig(settings_for: Callable[..., Settings]) -> AsyncIterator[Rig]:
    async with Simulator(speed=1000) as sim, FakeSlack(admins={"UADMIN"}) as slack:
        core, http, bot = await make_rig(settings_for(slack, sim), slack, sim, fast_limiter())
        slack.connect_app(f"{http.url}/slack/events")
        slack.member_channels = [{"id": "C1", "name": "general"}, {"id": "C2", "name": "art"}]
        try:
            yield Rig(slack, sim, bot, http, core.session)
        finally:
            await bot.stop()
            await http.stop()
            await close_core(core)


async def published(rig: Rig, user: str, count: int = 1) -> str:
    """The person's Home text once it has been published `count` times."""
    await rig.slack.wait_for(
        lambda: (
            len(
                [
                    c
                    for c in rig.slack.calls_to("views.publish", ok=True)
                    if c.params.get("user_id") == user
                ]
            )
            >= count
        ),
        what=f"Home #{count} for {user}",
    )
    return rig.slack.home_text(user)


async def test_a_person_sees_their_threads_and_usage_but_no_settings(rig: Rig) -> None:
    slack = rig.slack
    await slack.send_command("/sense", "draw a lighthouse at dawn", user="U1")
    root = await slack.wait_for(lambda: slack.top_level("C1"), what="the thread")
    await slack.wait_for(lambda: finished(slack, "C1", root[0].ts), what="the answer")
    thread, _ = await slack.start_assistant_thread(user="U1")
    await slack.say(thread.channel, "just text: a haiku", user="U1", thread_ts=thread.thread_ts)
    await slack.wait_for(lambda: len(rig.sim.requests) == 2, what="the assistant turn")
    await rig.bot.wait_idle()
    await slack.send_command("/sense", "someone else's", user="U2", channel="C2")
    await slack.wait_for(lambda: len(rig.sim.requests) == 3, what="U2's turn")

    delivery = await slack.open_home("U1")
    assert delivery.acked
    text = await published(rig, "U1")
    assert "Your recent threads" in text
    # newest first, each a link to its thread built from the channel and the thread's ts
    assert text.index("just text: a haiku") < text.index("draw a lighthouse at dawn")
    assert "someone else's" not in text
    root_ts = root_of(slack)
    link = f"https://fake.slack.test/archives/C1/p{root_ts.replace('.', '')}?thread_ts={root_ts}"
    assert link in text
    assert f"archives/{thread.channel}/p{thread.thread_ts.replace('.', '')}" in text
    assert "2 turns in the last 24 hours · 2 in the last 30 days" in text
    assert "Channels" not in text and not slack.home_buttons("U1")
    assert not slack.calls_to("users.conversations"), "a person's page lists no channels"

    # the Messages tab is not the Home: nothing is published for it
    await slack.open_home("U1", tab="messages")
    await rig.bot.wait_idle()
    assert len(slack.calls_to("views.publish")) == 1


async def test_an_admin_changes_a_channels_eco_mode_from_home(rig: Rig) -> None:
    slack = rig.slack
    await slack.open_home("UADMIN")
    text = await published(rig, "UADMIN")
    assert "No threads yet" in text and "0 turns in the last 24 hours" in text
    assert "<#C1> · eco mode off" in text and "<#C2> · eco mode off" in text
    turn_on = next(b for b in slack.home_buttons("UADMIN") if b["value"] == "C1")
    assert turn_on["text"]["text"] == "Turn eco on"

    delivery = await slack.click_home(turn_on, user="UADMIN")
    assert delivery.acked
    text = await published(rig, "UADMIN", 2)
    assert "<#C1>: Done. Eco mode is *on* in this channel" in text
    assert "<#C1> · eco mode *on*" in text and "<#C2> · eco mode off" in text
    [turn_off] = [b for b in slack.home_buttons("UADMIN") if b["value"] == "C1"]
    assert turn_off["text"]["text"] == "Turn eco off"
    # a change is the channel's news, as with the typed command
    [news] = slack.top_level("C1")
    assert news.text.startswith("<@UADMIN> Done. Eco mode is *on*")

    await slack.send_command("/sense", "just text", user="U1", channel="C1")
    await slack.wait_for(lambda: rig.sim.requests, what="the turn")
    assert rig.sim.requests[0].mode == "eco"


async def test_a_press_from_someone_who_is_not_an_admin_is_refused(rig: Rig) -> None:
    """Only admins see the buttons; a press that arrives anyway (an old page, a forged
    payload) is `/sense-eco on` and refused by the same rule, on the page."""
    slack = rig.slack
    await slack.open_home("U2")
    await published(rig, "U2")
    forged = {"action_id": "home:eco:on:C1", "value": "C1", "type": "button"}
    await slack.click_home(forged, user="U2")
    text = await published(rig, "U2", 2)
    assert "Only admins can change eco mode" in text
    assert not slack.top_level("C1")
    await slack.send_command("/sense-eco", "status", user="U2")
    await slack.wait_for(lambda: slack.responses, what="the status")
    assert "off" in slack.responses[-1]["text"]
