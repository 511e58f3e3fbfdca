"""What the shell shows on a terminal: Markdown rendered, one status line redrawn in place.

`rich` is told it writes to a terminal (`force_terminal`) so the escape codes can be read
back from a StringIO; the last test runs the real program in a real terminal (tmux) and
reads the screen a person would see."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from rich.console import Console

from adapters.shell import RichSurface, Shell
from bot.app import Core
from bot.models import SurfaceLimits, TextResponse, ThinkingDelta
from bot.render import ReplyRenderer
from tests.util import wait_until

CONTROL = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07|\r")
BOLD = "\x1b[1m"


def terminal() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100, height=30, color_system="standard")
    return console, out


def visible(raw: str) -> str:
    return CONTROL.sub("", raw)


class EveryView(RichSurface):
    @property
    def limits(self) -> SurfaceLimits:
        return SurfaceLimits(min_edit_interval=0.0, max_text=1_000_000, max_upload_bytes=0)


async def test_markdown_is_rendered_not_shown_raw(core: Core) -> None:
    console, out = terminal()
    shell = Shell(core, console=console)
    await shell.handle_line("/eco status")
    await shell.handle_line("ask me something")
    raw = out.getvalue()
    text = visible(raw)
    assert "Question:" in text and "**" not in text
    assert BOLD in raw
    assert "1. Photorealistic" in text and "Type a number to answer." in text
    await shell.handle_line("3")
    text = visible(out.getvalue())
    assert "chose: Pixel art" in text
    assert 'Working on "Pixel art"' in text
    assert shell.surface(shell.key)._live is None  # the status line went with the turn


async def test_a_streamed_answer_ends_as_rendered_markdown() -> None:
    console, out = terminal()
    surface = EveryView(console)
    renderer = ReplyRenderer(surface, turn_id="t1", mode="max")
    await renderer.start()
    pieces = ["# Fox", "es\n\n", "A **quick** fox", ".\n\n", "```py\nprint(1)\n", "```\n", "Bye."]
    for event in [ThinkingDelta("hmm "), *map(TextResponse, pieces)]:
        before = renderer.flushes
        renderer.feed(event)
        await wait_until(lambda: renderer.flushes > before)  # noqa: B023
    await renderer.finish()
    raw = out.getvalue()
    text = visible(raw)
    assert "**quick**" not in text and "quick" in text
    assert "```" not in text and "print(1)" in text
    assert "# Fox" not in text and "Foxes" in text
    assert text.rstrip().splitlines()[-1].startswith("  ✅ Done · max mode · ")
    assert surface._live is None


def tmux_screen(socket: str) -> str:
    return subprocess.run(
        ["tmux", "-L", socket, "capture-pane", "-p", "-t", "shell"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")
def test_a_real_terminal_shows_each_line_once(tmp_path: Path) -> None:
    socket = f"eachsense-test-{uuid.uuid4().hex[:8]}"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("EACHSENSE_", "SLACK_", "DISCORD_", "DATABASE_URL", "TMUX"))
    }
    env.update(SIMULATOR_SPEED="20", PYTHONPATH=str(Path.cwd()), TERM="xterm-256color")
    command = f"{sys.executable} -m bot shell --simulate 2>/dev/null; echo EXITED $?; sleep 30"
    tmux = ["tmux", "-L", socket]
    window = ["-s", "shell", "-x", "100", "-y", "40", "-c", str(tmp_path), command]
    subprocess.run([*tmux, "new-session", "-d", *window], check=True, env=env)

    def wait_for(text: str, count: int = 1) -> str:
        deadline = time.monotonic() + 30
        while (screen := tmux_screen(socket)).count(text) < count:
            assert time.monotonic() < deadline, screen
            time.sleep(0.05)
        return screen

    def send(line: str) -> None:
        subprocess.run([*tmux, "send-keys", "-t", "shell", line, "Enter"], check=True)

    try:
        wait_for("Type a message, or /help.")
        send("ask me")
        wait_for("Type a number to answer.")
        send("2")
        wait_for("✅ Done", count=2)
        send("/quit")
        screen = wait_for("EXITED 0")
    finally:
        subprocess.run([*tmux, "kill-server"], check=False)
    assert "Thinking" not in screen  # the status line is gone once each turn ends
    assert not re.search("[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏]", screen)
    assert "Question:" in screen and "**" not in screen
    assert screen.count('Working on "Watercolor"') == 1
    assert screen.count("Here is your image.") == 1
    assert screen.count("Generated: ") == 1
