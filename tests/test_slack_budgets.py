"""Slack's per-method budgets, through the real slack_sdk (and slack-bolt) against the fake:
finals that do not wait for a saturated `chat.update`, continuations of overdue live edits, a
budget that grows while Slack says yes and backs off by `Retry-After` when it says no."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.ratelimit import UPDATE_TIER, PacedRetryHandler, SlackLimiter
from adapters.slack.surface import SlackSurface
from bot.app import close_core
from bot.config import Settings
from bot.models import Button, ButtonAction, View
from simulator import Simulator
from tests.fakes.slack import FakeMessage
from tests.limited_slack import LimitedSlack, Rate
from tests.test_slack_adapter import Rig, make_rig, settings_for, until  # noqa: F401

STOP = Button("Stop", ButtonAction.STOP, "t1", style="danger")
REGEN = Button("Regenerate", ButtonAction.REGENERATE, "t1")
DONE = "✅ Done"


def client_for(slack: LimitedSlack) -> AsyncWebClient:
    client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
    client.retry_handlers.append(PacedRetryHandler(max_retry_count=3))
    return client


def shown(message: FakeMessage) -> str:
    """The answer text a message shows: its section blocks joined."""
    return "".join(
        b["text"]["text"] for b in message.blocks if b.get("type") == "section" and "text" in b
    )


def has_button(message: FakeMessage, label: str) -> bool:
    return any(
        e["text"]["text"] == label
        for b in message.blocks
        if b.get("type") == "actions"
        for e in b["elements"]
    )


@dataclass
class Workspace:
    slack: LimitedSlack
    client: AsyncWebClient
    session: aiohttp.ClientSession
    limiter: SlackLimiter

    def surface(self, channel: str, thread: str = "1.0") -> SlackSurface:
        return SlackSurface(
            client=self.client,
            session=self.session,
            limiter=self.limiter,
            channel=channel,
            thread_ts=thread,
            max_upload_bytes=10,
        )

    def thread(self, channel: str, thread: str = "1.0") -> list[FakeMessage]:
        return self.slack.thread(channel, thread)

    def joined(self, channel: str, thread: str = "1.0") -> str:
        return "".join(shown(m) for m in self.thread(channel, thread))


@pytest.fixture
def workspace() -> Callable[..., Any]:
    @contextlib.asynccontextmanager
    async def open_workspace(slack: LimitedSlack, limiter: SlackLimiter) -> AsyncIterator[Any]:
        async with slack, aiohttp.ClientSession() as session:
            try:
                yield Workspace(slack, client_for(slack), session, limiter)
            finally:
                await limiter.aclose()

    return open_workspace


# --- finals do not wait for chat.update ----------------------------------------------------


async def test_final_answers_are_posted_while_chat_update_is_saturated(workspace: Any) -> None:
    """chat.update allows one call a minute and it is spent: every final still lands, as the
    rest of its message posted on the channel's own budget, and reads exactly right."""
    slack = LimitedSlack(methods={"chat.update": Rate(1 / 60, 1)})
    limiter = SlackLimiter(update_rate=1 / 60, update_capacity=1)  # pinned: no 429s either
    async with workspace(slack, limiter) as ws:
        surfaces = [ws.surface(f"C{i}") for i in range(4)]
        ids = [await s.post(View(status="💭 Thinking…", buttons=(STOP,))) for s in surfaces]
        for surface, mid in zip(surfaces, ids, strict=True):
            await surface.edit(mid, View(text="Hello", status="✍️ Writing…", buttons=(STOP,)))
        await until(lambda: ws.slack.calls_to("chat.update", ok=True), what="the one update")
        finals = [
            surface.edit(mid, View(text="Hello world.", status=DONE, buttons=(REGEN,)), final=True)
            for surface, mid in zip(surfaces, ids, strict=True)
        ]
        await asyncio.wait_for(asyncio.gather(*finals), 20)  # far less than a minute's wait
        for i in range(4):
            assert ws.joined(f"C{i}") == "Hello world."
            last = ws.thread(f"C{i}")[-1]
            assert DONE in last.all_text and has_button(last, "Regenerate")
        assert len(ws.slack.calls_to("chat.update")) == 1  # no final used chat.update
        assert not ws.slack.ratelimited


class Clock:
    """Real time, plus jumps the test makes (for a budget that refills once a minute)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset


async def test_an_overdue_live_edit_becomes_the_messages_continuation(workspace: Any) -> None:
    """A live message that chat.update cannot serve in time grows by a post; once a later
    message follows it, its edits wait for chat.update instead (text must stay in order);
    the final moves the status line and buttons to the last part, and the first part is
    tidied up as soon as chat.update allows."""
    clock = Clock()
    limiter = SlackLimiter(update_rate=1 / 60, update_capacity=1, patience=(0.1, 0.1), clock=clock)
    async with workspace(LimitedSlack(), limiter) as ws:
        surface = ws.surface("C1")
        limiter.updates.take()  # this minute's chat.update is spent
        first = await surface.post(View(status="💭 Thinking…", buttons=(STOP,)))
        await surface.edit(first, View(text="One two ", status="✍️ Writing…", buttons=(STOP,)))
        await until(lambda: len(ws.thread("C1")) == 2, what="a continuation")
        await surface.edit(first, View(text="One two three ", status="✍️", buttons=(STOP,)))
        await until(lambda: len(ws.thread("C1")) == 3, what="another continuation")
        assert [shown(m) for m in ws.thread("C1")] == ["", "One two ", "three "]
        assert has_button(ws.thread("C1")[0], "Stop")  # the status and Stop stay on top
        assert not has_button(ws.thread("C1")[1], "Stop")
        await surface.post(View(text="Next page"))
        await surface.edit(first, View(text="One two three four ", status="✍️", buttons=(STOP,)))
        final = View(text="One two three four.", status=DONE, buttons=(REGEN,))
        waiting = asyncio.ensure_future(surface.edit(first, final, final=True))
        await asyncio.sleep(0.5)  # many patience periods: no continuation may come now
        assert not waiting.done()  # not the newest message: only chat.update can finish it
        assert [shown(m) for m in ws.thread("C1")] == ["", "One two ", "three ", "Next page"]
        assert not ws.slack.calls_to("chat.update")
        clock.offset += 61  # a minute later: the final goes first
        limiter.edits.submit("wake", _no_call, tidy=True)
        await asyncio.wait_for(waiting, 10)
        assert has_button(ws.thread("C1")[0], "Stop")  # the tidy-up waits for the next minute
        clock.offset += 61
        limiter.edits.submit("wake", _no_call, tidy=True)
        await until(lambda: not has_button(ws.thread("C1")[0], "Stop"), what="the tidy-up")
        thread = ws.thread("C1")
        assert [shown(m) for m in thread] == ["", "One two ", "three four.", "Next page"]
        assert has_button(thread[2], "Regenerate") and DONE in thread[2].all_text
        assert DONE in thread[0].all_text  # the emptied first part keeps the final status
        assert len(ws.slack.calls_to("chat.update")) == 2


async def _no_call() -> bool:
    return False


# --- the budget learns -----------------------------------------------------------------------


async def test_the_update_budget_grows_while_slack_says_yes(workspace: Any) -> None:
    """No limits in this workspace: 20 live messages editing at once soon get chat.update as
    fast as they ask, with no 429, although the budget started at the documented tier."""
    async with workspace(LimitedSlack(), SlackLimiter()) as ws:
        surfaces = [ws.surface(f"C{i}") for i in range(20)]
        ids = [await s.post(View(status="💭", buttons=(STOP,))) for s in surfaces]
        for n in range(1, 6):
            for surface, mid in zip(surfaces, ids, strict=True):
                await surface.edit(mid, View(text=f"word{n} " * n, status="✍️", buttons=(STOP,)))
            await until(
                lambda n=n: all(ws.joined(f"C{i}").startswith(f"word{n}") for i in range(20)),
                what=f"round {n}",
            )
        rate = ws.limiter.state.rate(ws.limiter.updates.key)  # type: ignore[attr-defined]
        assert rate is not None and rate > UPDATE_TIER.rate * 4
        assert ws.limiter.updates.learning
        assert not ws.slack.ratelimited
        # at the documented tier alone, 100 edits would take over two minutes
        assert len(ws.slack.calls_to("chat.update", ok=True)) >= 50


async def test_a_429_backs_the_budget_off_by_its_retry_after(workspace: Any) -> None:
    """A 429 on chat.update is not retried by slack_sdk itself: the budget is blocked for
    Retry-After, stops probing upward, and the edit goes out again afterwards."""
    async with workspace(LimitedSlack(), SlackLimiter(patience=(30.0, 30.0))) as ws:
        surface = ws.surface("C1")
        mid = await surface.post(View(status="💭", buttons=(STOP,)))
        ws.slack.force_429("chat.update", retry_after=1)
        await surface.edit(mid, View(text="Hello", status="✍️", buttons=(STOP,)))
        await until(lambda: ws.slack.calls_to("chat.update", ok=True), what="the re-sent edit")
        updates = ws.slack.calls_to("chat.update")
        assert [c.status for c in updates] == [429, 200]
        assert updates[1].at - updates[0].at >= 1.0  # waited out Retry-After, once
        assert not ws.limiter.updates.learning
        assert ws.joined("C1") == "Hello"


async def test_paced_methods_are_not_retried_by_the_sdk_the_others_are() -> None:
    async with LimitedSlack() as slack:
        client = client_for(slack)
        slack.force_429("chat.update", retry_after=0)
        with pytest.raises(SlackApiError) as info:
            await client.chat_update(channel="C1", ts="1.0", text="x")
        assert info.value.response.status_code == 429
        slack.force_429("users.info", retry_after=0)
        user = await client.users_info(user="U1")
        assert user["ok"] and len(slack.ratelimited) == 2


# --- a busy workspace, end to end ------------------------------------------------------------


async def test_a_busy_workspace_ends_every_answer_exact_without_429s(
    settings_for: Callable[..., Settings],  # noqa: F811
) -> None:
    """Eight /sense at once in one workspace whose chat.update budget is nearly spent: every
    answer ends showing exactly its text with its footer, and Slack never says 429."""
    slack = LimitedSlack(
        methods={"chat.update": Rate(0.2, 2)}, channel_post=Rate(1.0, 3), admins={"UADMIN"}
    )
    limiter = SlackLimiter(update_rate=0.2, update_capacity=2, patience=(0.5, 0.5))
    async with Simulator(speed=1000) as sim, slack:
        core, http, bot = await make_rig(settings_for(slack, sim), slack, sim, limiter)
        rig = Rig(slack, sim, bot, http, core.session)
        try:
            for i in range(8):
                status, _ = await rig.command("/sense", "events:300", channel=f"C{i}", user=f"U{i}")
                assert status == 200
            expected = "".join(f"t{n} " for n in range(300))

            def ended(i: int) -> bool:
                roots = slack.top_level(f"C{i}")
                return bool(roots) and DONE in slack.thread(f"C{i}", roots[0].ts)[-1].all_text

            await until(lambda: all(ended(i) for i in range(8)), limit=30, what="every final")
            for i in range(8):
                thread = slack.thread(f"C{i}", slack.top_level(f"C{i}")[0].ts)
                assert "".join(shown(m) for m in thread) == expected
            assert not slack.ratelimited
        finally:
            await bot.stop()
            await http.stop()
            await close_core(core)
