"""`bot.status`: a turn's status line kept on a surface that has a status place of its own.

The far side of the port is a recording surface (as in `tests/util.py`); the end-to-end
proof against the real slack-bolt is in `tests/test_slack_assistant.py`."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.errors import BotError
from bot.models import View
from bot.status import StatusKeeper, keep_status, release, set_title
from tests.util import RecordingSurface, wait_until


@dataclass
class StatusRecordingSurface(RecordingSurface):
    """A recording surface with a status place that the platform clears after a lifetime."""

    status_lifetime: float = 0.4
    statuses: list[str] = field(default_factory=list)
    titles: list[str] = field(default_factory=list)
    fail_status: bool = False

    async def show_status(self, text: str) -> None:
        if self.fail_status:
            raise BotError(detail="not an assistant thread")
        self.statuses.append(text)

    async def set_title(self, title: str) -> None:
        self.titles.append(title)


async def test_a_plain_surface_is_left_alone() -> None:
    surface = RecordingSurface()
    assert keep_status(surface) is surface
    await release(surface)  # nothing to release


async def test_live_lines_are_shown_refreshed_reshown_after_posts_and_cleared() -> None:
    inner = StatusRecordingSurface()
    surface = keep_status(inner)
    assert isinstance(surface, StatusKeeper)
    message = await surface.post(View(status="💭 Thinking…"))
    await wait_until(lambda: inner.statuses == ["💭 Thinking…"])
    # unchanged for longer than half its lifetime: shown again before the platform drops it
    await wait_until(lambda: len(inner.statuses) >= 3)
    assert set(inner.statuses) == {"💭 Thinking…"}
    await surface.edit(message, View(text="hi", status="🔧 draw:  Generating\nimage"))
    await wait_until(lambda: inner.statuses[-1] == "🔧 draw: Generating image")
    shown = len(inner.statuses)
    await surface.post(View(text="a notice"))  # posting clears it on the platform: shown again
    await wait_until(lambda: len(inner.statuses) > shown)
    assert inner.statuses[-1] == "🔧 draw: Generating image"
    await surface.edit(message, View(text="hi", status="✅ Done"), final=True)
    assert inner.statuses[-1] == ""
    count = len(inner.statuses)
    await release(surface)  # once only
    assert len(inner.statuses) == count and inner.finals == [message]


async def test_changes_are_throttled_to_the_newest_line() -> None:
    inner = StatusRecordingSurface(status_lifetime=60)
    surface = StatusKeeper(inner, min_interval=0.3)
    message = await surface.post(View(status="one"))
    await wait_until(lambda: inner.statuses == ["one"])
    for n in range(20):
        await surface.edit(message, View(status=f"line {n}"))
    await wait_until(lambda: inner.statuses[-1] == "line 19")
    assert len(inner.statuses) <= 3, inner.statuses  # not one call per edit
    await release(surface)
    assert inner.statuses[-1] == ""


async def test_a_status_the_platform_refuses_is_given_up_and_the_turn_goes_on() -> None:
    inner = StatusRecordingSurface(fail_status=True)
    surface = keep_status(inner)
    message = await surface.post(View(status="thinking"))
    await surface.edit(message, View(text="answer", status="writing"))
    await surface.edit(message, View(text="answer", status="done"), final=True)
    await release(surface)
    assert inner.messages[message].text == "answer" and inner.statuses == []


async def test_titles_come_from_the_first_prompt_on_titled_surfaces_only() -> None:
    inner = StatusRecordingSurface()
    await set_title(keep_status(inner), "  draw a\nlighthouse " + "at dawn " * 20)
    [title] = inner.titles
    assert title.startswith("draw a lighthouse at dawn") and len(title) == 80
    await set_title(RecordingSurface(), "nothing to title")  # no title place: nothing happens
