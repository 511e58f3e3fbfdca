"""A long answer streamed in many deltas through the real platform surfaces, read back from
the fake platforms: what the thread finally shows, put together, must be the answer exactly.

The renderer is driven directly (no simulator), with the real `SlackSurface` against the fake
Slack Web API and the real `DiscordSurface` on a discord.py client connected to the fake
Discord. Only the surfaces' live-edit interval is shortened (subclasses below), so that a
five-page answer turns its pages while it streams in well under a second.

Reading back: a Slack message written with native streaming shows the Markdown its stream
calls sent; any other Slack message shows its `section` blocks, one after another, in Slack's
mrkdwn (the answers here use no Markdown, so reading it back only undoes the escaping). A
Discord message shows its content, and the last one ends with "\\n\\n" and the status line.
Pages are shown one after another, so the join is plain concatenation.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import Sequence

import aiohttp
import pytest
from slack_sdk.web.async_client import AsyncWebClient

import adapters.slack.surface as slack_surface
from adapters.discord.ratelimit import ChannelLimiter
from adapters.discord.surface import DiscordSurface
from adapters.slack.ratelimit import SlackLimiter
from adapters.slack.surface import SlackSurface, StreamingSwitch
from bot.config import Settings
from bot.models import SurfaceLimits, TextResponse, ThreadKey
from bot.render import ReplyRenderer, split_text
from simulator import Simulator
from tests.discord_bot import running_bot
from tests.fakes.discord import FakeDiscord
from tests.fakes.slack import FakeSlack

ANSWER_CHARS = 11_223
DELTAS = 2_000
LIVE_INTERVAL = 0.005
CHANNEL, THREAD = "C1", "1700000000.000100"


def long_answer(length: int = ANSWER_CHARS, seed: int = 3) -> str:
    """A plain-text answer of exactly `length` characters: sentences, line breaks and
    paragraphs, a code block now and then, and characters that Slack escapes (`&`, `<`, `>`)
    or that are more than one code point (an accent, an emoji family, a flag)."""
    rng = random.Random(seed)
    words = ["the", "sunset", "über", "ışık", "café", "oil", "painting", "🌅", "colour", "wave"]
    words += ["A&B", "<tag>", "x>y", "naïve", "e\u0301te", "👨\u200d👩\u200d👧", "🇹🇷", "long" * 6]
    out: list[str] = []
    size = 0
    while size < length:
        roll = rng.random()
        if roll < 0.02:
            piece = "\n```\nfor item in items:\n    print(item)\n```\n"
        elif roll < 0.05:
            piece = ".\n\n"
        elif roll < 0.09:
            piece = "\n"
        else:
            piece = rng.choice(words) + " "
        out.append(piece)
        size += len(piece)
    return "".join(out)[: length - 1] + "."


def deltas_of(text: str, count: int = DELTAS, seed: int = 5) -> list[str]:
    """`text` cut at `count - 1` random places (anywhere, even inside a word)."""
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(text)), count - 1))
    return [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]


async def stream(renderer: ReplyRenderer, deltas: Sequence[str]) -> int:
    """Feed every delta, yielding now and then so that live flushes (and page turns) happen
    while the answer streams; returns how many messages existed before the final flush."""
    await renderer.start()
    for i, delta in enumerate(deltas):
        renderer.feed(TextResponse(delta))
        if i % 10 == 0:
            await asyncio.sleep(0.001)
    pages_while_streaming = len(renderer.message_ids)
    await renderer.finish()
    return pages_while_streaming


def assert_cut_after_whitespace(pages: Sequence[str], limit: int) -> None:
    for page in pages[:-1]:
        assert 0 < len(page) <= limit
        assert page[-1] in " \t\n", f"a page ends mid-word: ...{page[-30:]!r}"


# --- Slack -----------------------------------------------------------------------------------


class QuickSlackSurface(SlackSurface):
    """The real Slack surface, with a live-edit interval short enough for a test."""

    @property
    def limits(self) -> SurfaceLimits:
        return dataclasses.replace(super().limits, min_edit_interval=LIVE_INTERVAL)


def _unescape(mrkdwn: str) -> str:
    return mrkdwn.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def slack_pages(slack: FakeSlack, message_ids: Sequence[str]) -> list[str]:
    """What each message of the answer finally shows, as text (see the module docstring)."""
    streamed = {
        str(call.params.get("ts"))
        for call in slack.calls
        if call.method in ("chat.appendStream", "chat.stopStream")
    }
    pages = []
    for ts in message_ids:
        message = slack.message(CHANNEL, ts)
        assert message is not None and not message.streaming
        if ts in streamed:
            pages.append(_unescape(message.text))  # streamed text is escaped too
        else:
            sections = [b["text"]["text"] for b in message.blocks if b["type"] == "section"]
            pages.append("".join(_unescape(s) for s in sections))
    return pages


async def stream_to_slack(answer: str, *, native_streaming: bool) -> tuple[list[str], int]:
    async with (
        FakeSlack(native_streaming=native_streaming, limits=False) as slack,
        aiohttp.ClientSession() as session,
    ):
        limiter = SlackLimiter(
            update_capacity=10_000, update_rate=10_000, post_capacity=10_000, post_rate=10_000
        )
        surface = QuickSlackSurface(
            client=AsyncWebClient(token=slack.bot_token, base_url=slack.api_url),
            session=session,
            limiter=limiter,
            channel=CHANNEL,
            thread_ts=THREAD,
            max_upload_bytes=1 << 20,
            streaming=StreamingSwitch(enabled=native_streaming, team_id=slack.team_id),
            user_id="U1",
        )
        renderer = ReplyRenderer(surface, turn_id="t1", mode="max")
        try:
            turned = await stream(renderer, deltas_of(answer))
        finally:
            await limiter.aclose()
        assert not [c for c in slack.calls if c.error], "Slack refused a call"
        if native_streaming:
            assert slack.calls_to("chat.appendStream", ok=True)
        return slack_pages(slack, renderer.message_ids), turned


def _sections_cut_as_pages(text: str, size: int) -> list[str]:
    """The section splitting proposed for `adapters/slack/surface.py` (`_chunks`): the
    renderer's own cut, so the sections put together are the page's mrkdwn exactly."""
    return split_text(text, size)


@pytest.mark.parametrize("native_streaming", [False, True])
async def test_a_long_answer_reads_back_exactly_in_slack(
    monkeypatch: pytest.MonkeyPatch, native_streaming: bool
) -> None:
    monkeypatch.setattr(slack_surface, "_chunks", _sections_cut_as_pages, raising=False)
    answer = long_answer()
    pages, turned = await stream_to_slack(answer, native_streaming=native_streaming)
    assert turned >= 3, "the pages should turn while the answer streams"
    assert "".join(pages) == answer
    assert_cut_after_whitespace(pages, slack_surface.MAX_TEXT)


async def test_a_long_answer_reads_back_exactly_through_the_slack_sections() -> None:
    answer = long_answer()
    pages, _ = await stream_to_slack(answer, native_streaming=False)
    assert "".join(pages) == answer


# --- Discord ---------------------------------------------------------------------------------


class QuickDiscordSurface(DiscordSurface):
    """The real Discord surface, with a live-edit interval short enough for a test."""

    @property
    def limits(self) -> SurfaceLimits:
        return dataclasses.replace(super().limits, min_edit_interval=LIVE_INTERVAL)


async def test_a_long_answer_reads_back_exactly_in_discord() -> None:
    answer = long_answer()
    async with (
        FakeDiscord(edit_limit=100_000, global_limit=None) as fake,
        Simulator(speed=1000) as sim,
    ):
        settings = Settings(_env_file=None, database_url="sqlite://:memory:")  # type: ignore[call-arg]
        async with running_bot(fake, sim, settings) as (_, bot):
            limiter = ChannelLimiter(
                rate=100_000, per=1.0, global_rate=100_000, global_burst=100_000
            )
            key = ThreadKey("discord", fake.guild_id, fake.channel_id, fake.channel_id)
            surface = QuickDiscordSurface(client=bot.client, key=key, limiter=limiter)
            renderer = ReplyRenderer(surface, turn_id="t1", mode="max")
            turned = await stream(renderer, deltas_of(answer))
            contents = [fake.messages[i]["content"] for i in renderer.message_ids]
    assert turned >= 4, "the pages should turn while the answer streams"
    *pages, last = contents
    text, gap, status = last.rpartition("\n\n")
    assert gap and status.startswith("✅ Done")
    pages.append(text)
    assert "".join(pages) == answer
    assert_cut_after_whitespace(pages, 2000)
    assert all(len(c) <= 2000 for c in contents)
