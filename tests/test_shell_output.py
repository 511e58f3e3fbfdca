"""What the shell prints when its output is piped: every piece once, plain lines only.

The views come from the real `ReplyRenderer` (the core's) or from the simulator through the
whole command flow, so these tests see what a person piping the shell sees."""

from __future__ import annotations

import asyncio
import io
import re

from adapters.shell import (
    HELP_ROWS,
    PlainSurface,
    Shell,
    block_ends,
    new_thinking,
    status_key,
    thinking_tail,
)
from bot.app import Core
from bot.models import (
    ClarificationNeeded,
    Progress,
    Status,
    SurfaceLimits,
    TextResponse,
    ThinkingDelta,
)
from bot.render import THINKING, ReplyRenderer
from tests.util import wait_until

ANSI = re.compile(r"\x1b[\[\]()]")


class EveryView(PlainSurface):
    """The plain surface without a pause between edits: the renderer shows every state."""

    @property
    def limits(self) -> SurfaceLimits:
        return SurfaceLimits(min_edit_interval=0.0, max_text=1_000_000, max_upload_bytes=0)


THOUGHTS = [f"step {i} of the plan means checking thing number {i}; " for i in range(12)]
PIECES = ["Here ", "is ", "**alpha** ", "then ", "`bravo` ", "and\n\n", "charlie ", "delta."]


async def test_a_streamed_turn_prints_each_piece_once() -> None:
    out = io.StringIO()
    surface = EveryView(out)
    renderer = ReplyRenderer(surface, turn_id="t1", mode="max")
    await renderer.start()

    async def feed(event: object) -> None:
        before = renderer.flushes
        renderer.feed(event)  # type: ignore[arg-type]
        await wait_until(lambda: renderer.flushes > before)

    for thought in THOUGHTS:  # far more than the status line's 150 characters of tail
        await feed(ThinkingDelta(thought))
    await feed(Status("Planning the request", tool_name="planner"))
    for percent in (10, 50, 90):
        await feed(Progress("Generating image", percent=percent))
    for piece in PIECES[:4]:
        await feed(TextResponse(piece))
    await surface.post_link("https://media.example/fox.png", kind="image", reason="")
    for piece in PIECES[4:]:
        await feed(TextResponse(piece))
    renderer.feed(ClarificationNeeded("Which style?", options=("Ink", "Oil paint")))
    await renderer.finish()

    text = out.getvalue()
    lines = text.splitlines()
    assert not ANSI.search(text)
    thinking = [line for line in lines if "Thinking" in line]
    assert thinking == [f"  {THINKING} " + " ".join("".join(THOUGHTS).split())]
    for word in ("alpha", "bravo", "charlie", "delta", "Which style?"):
        assert text.count(word) == 1, word
    assert "**alpha**" in text  # piped output is the raw Markdown, as the agent wrote it
    assert text.count("Generating image") == 1  # the percentages do not make it new
    assert text.count("planner: Planning the request") == 1
    assert text.count("Generated: https://media.example/fox.png") == 1
    assert text.count("✅ Done") == 1
    assert "Writing" not in text
    assert lines[-3:] == ["  1. Ink", "  2. Oil paint", "  Type a number to answer."]
    assert len(set(lines) - {""}) == len([line for line in lines if line])  # nothing repeated
    assert surface.options == ("Ink", "Oil paint")


async def test_piped_turns_through_the_simulator(core: Core) -> None:
    out = io.StringIO()
    shell = Shell(core, out=out)
    assert await shell.handle_line("a red fox")
    assert await shell.handle_line("a green frog")
    text = out.getvalue()
    assert not ANSI.search(text)
    assert sum("Thinking" in line for line in text.splitlines()) == 2  # one per turn
    assert text.count('Working on "a red fox" in max mode (turn 1 in this session).') == 1
    assert text.count('Working on "a green frog" in max mode (turn 2 in this session;') == 1
    assert text.count("Here is your image.") == 2  # once per turn
    assert text.count("Generated: ") == 2
    assert text.count("✅ Done · max mode") == 2


async def test_a_numbered_option_answers_the_question(core: Core) -> None:
    out = io.StringIO()
    shell = Shell(core, out=out)
    await shell.handle_line("ask me something")
    assert "  2. Watercolor" in out.getvalue()
    await shell.handle_line("2")
    after = out.getvalue().split("Type a number to answer.")[1]
    assert "chose: Watercolor" in after
    assert 'Working on "Watercolor"' in after
    assert "earlier you asked" in after  # the answer continues the same session
    await shell.handle_line("2")  # no question open any more: an ordinary message
    assert 'Working on "2"' in out.getvalue()


async def test_a_number_without_a_question_is_a_message(core: Core) -> None:
    out = io.StringIO()
    shell = Shell(core, out=out)
    await shell.handle_line("7")
    assert 'Working on "7"' in out.getvalue()


async def test_help_lists_every_command(core: Core) -> None:
    out = io.StringIO()
    shell = Shell(core, out=out)
    await shell.handle_line("/help")
    lines = out.getvalue().splitlines()
    handled = [
        "/new",
        "/sense",
        "/eco",
        "/predict",
        "/workflow",
        "/usage",
        "/admin",
        "/help",
        "/quit",
    ]
    handled += ["/plan", "/approve", "/decline", "/image", "/settings"]
    handled += ["/variations", "/upscale", "/animate", "/remix"]
    for command in handled:
        row = next((line for line in lines if line.strip().startswith(command)), None)
        assert row is not None, command
        assert len(row.split(None, 1)[1].strip()) > 10, row  # with a description
    assert {usage.split()[0] for usage, _ in HELP_ROWS if usage.startswith("/")} == set(handled)
    await shell.handle_line("/frobnicate")
    assert "Unknown command /frobnicate. Type /help for the list." in out.getvalue()


async def test_ctrl_c_stops_the_running_answer(core: Core) -> None:
    out = io.StringIO()
    shell = Shell(core, out=out)
    turn = asyncio.create_task(shell.handle_line("fail:stall until stopped"))
    await wait_until(lambda: shell.surface(shell.key).running() is not None)
    stopping = shell.interrupt()
    assert stopping is not None
    await stopping
    await asyncio.wait_for(turn, 10)
    text = out.getvalue()
    assert "Stopping…" in text and "⏹️ Stopped." in text
    assert shell.surface(shell.key).running() is None
    assert shell.interrupt() is None  # nothing running: a hint and the prompt again
    assert out.getvalue().endswith("(Type /quit or press Ctrl-D to leave.)\n> ")


# --- the pieces -----------------------------------------------------------------------------


def test_new_thinking_finds_what_a_cut_tail_adds() -> None:
    assert new_thinking("", "Let me think…") == "Let me think…"
    assert new_thinking("Let me think…", "Let me think… about foxes") == " about foxes"
    shown = "a" * 20 + " the person wants a fox and a hat"
    assert new_thinking(shown, "…the person wants a fox and a hat, quickly") == ", quickly"
    assert new_thinking(shown, "…the person wants a fox and a hat") == ""
    assert new_thinking(shown, "…something else entirely, much later on") == (
        " … something else entirely, much later on"
    )


def test_status_keys_ignore_what_only_moves() -> None:
    assert status_key("⏳ Generating image (40%) · 12s · 1 file posted") == "⏳ Generating image"
    assert status_key("⏳ running · 1m 05s · step 2 of 3") == "⏳ running · step 2 of 3"
    assert thinking_tail(f"{THINKING} planning (50%) · 12s") == "planning (50%)"
    assert thinking_tail("🔧 planner: Planning") is None


def test_block_ends() -> None:
    assert block_ends("one paragraph, still being written") == []
    assert block_ends("first\n\nsec") == [7]
    assert block_ends("first\n\n") == []  # what follows the blank line is not known yet
    assert block_ends("- item\n\n  more of the item") == []
    assert block_ends("```\ncode\n\nmore code\n```\nafter") == [24]
    assert block_ends("```\ncode\n\nmore") == []
    assert block_ends("a\n\nb\n\nc") == [3, 6]
