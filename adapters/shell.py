"""The terminal adapter: the embedded default and a developer's console.

One line of input is one message in the current thread; `/new` opens a new thread (a new
each::sense session). The answer streams to stdout as it arrives: status lines while the
agent thinks, then the text, and `Generated: <url>` for each generated file (the shell never
downloads media). Piped input works: turns run one after another, and at end of input the
shell waits for the running turn and exits.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import sys
from typing import TextIO

from bot.errors import BotError
from bot.jobs import parse_predict_args, parse_workflow_args
from bot.models import ButtonAction, MediaFile, SurfaceLimits, ThreadKey, Turn, View
from bot.runtime import Core

log = logging.getLogger(__name__)

HELP = """Commands:
  <message>                   a message in the current thread (one each::sense session)
  /new                        start a new thread (a new session)
  /eco on|off|status          eco mode for this console
  /predict MODEL PROMPT...    run one model directly (each::api)
  /workflow ID [key=value...] run a saved workflow (each::workflows)
  /help, /quit"""


class ShellSurface:
    """Prints a thread to a text stream. Edits print only what is new, so the answer reads
    as one continuous stream; status lines are shown only between lines of text."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._ids = itertools.count(1)
        self._texts: dict[str, str] = {}
        self._statuses: dict[str, str] = {}
        self._at_line_start = True

    @property
    def limits(self) -> SurfaceLimits:
        return SurfaceLimits(min_edit_interval=0.25, max_text=1_000_000, max_upload_bytes=0)

    async def post(self, view: View) -> str:
        message_id = str(next(self._ids))
        self._texts[message_id] = ""
        self._statuses[message_id] = ""
        self._show(message_id, view, final=False)
        return message_id

    async def edit(self, message_id: str, view: View, *, final: bool = False) -> None:
        self._show(message_id, view, final=final)

    async def upload(self, media: MediaFile) -> None:
        self._line(f"Generated: {media.url}")

    async def post_link(self, url: str, *, kind: str, reason: str) -> None:
        self._line(f"Generated: {url}")

    def _show(self, message_id: str, view: View, *, final: bool) -> None:
        shown = self._texts.get(message_id, "")
        if view.text.startswith(shown):
            self._write(view.text[len(shown) :])
        else:  # the text was rewritten (rare): print it again in full
            self._line("")
            self._write(view.text)
        self._texts[message_id] = view.text
        if view.status and view.status != self._statuses.get(message_id):
            if final:
                self._line("")
            if self._at_line_start:
                self._line(f"  {view.status}")
                self._statuses[message_id] = view.status
        if final:
            options = [b.label for b in view.buttons if b.action is ButtonAction.ANSWER]
            if options:
                self._line("  Options: " + " | ".join(options))
        self._out.flush()

    def _write(self, text: str) -> None:
        if text:
            self._out.write(text)
            self._at_line_start = text.endswith("\n")

    def _line(self, text: str) -> None:
        if not self._at_line_start:
            self._out.write("\n")
        self._out.write(text + "\n")
        self._at_line_start = True
        self._out.flush()


class Shell:
    def __init__(self, core: Core, *, out: TextIO | None = None) -> None:
        self.core = core
        self.out = out or sys.stdout
        self.surface = ShellSurface(self.out)
        self._threads = itertools.count(1)
        self._new_thread()

    def _new_thread(self) -> None:
        self.key = ThreadKey("shell", "local", "console", str(next(self._threads)))
        self._fresh = True

    async def handle_line(self, line: str) -> bool:
        """Act on one line; False means quit."""
        line = line.strip()
        if not line:
            return True
        if line.startswith("/"):
            return await self._command(line)
        turn = Turn(key=self.key, user_id="local", text=line, new_thread=self._fresh)
        self._fresh = False
        await self.core.conversations.run(turn, self.surface)
        return True

    async def _command(self, line: str) -> bool:
        name, _, rest = line.partition(" ")
        name = name.lower()
        if name in ("/quit", "/exit"):
            return False
        if name == "/help":
            self.say(HELP)
        elif name == "/new":
            self._new_thread()
            self.say("New thread: the next message starts a new session.")
        elif name == "/eco":
            channel = self.key.channel_key
            self.say(
                await self.core.conversations.eco(channel, rest, user_id="local", is_admin=True)
            )
        elif name in ("/predict", "/workflow"):
            await self._job(name, rest)
        else:
            self.say(f"Unknown command {name}. Type /help for the list.")
        return True

    async def _job(self, name: str, rest: str) -> None:
        jobs = self.core.jobs
        if jobs is None:
            self.say("Direct model runs are not available.")
            return
        self._new_thread()
        self._fresh = False
        try:
            if name == "/predict":
                model, prompt = parse_predict_args(rest)
                await jobs.run_prediction(
                    key=self.key, user_id="local", model=model, prompt=prompt, surface=self.surface
                )
            else:
                workflow_id, inputs = parse_workflow_args(rest)
                await jobs.run_workflow(
                    key=self.key,
                    user_id="local",
                    workflow_id=workflow_id,
                    inputs=inputs,
                    surface=self.surface,
                )
        except BotError as err:
            self.say("⚠️ " + err.user_message)

    def say(self, text: str) -> None:
        self.surface._line(text)

    async def run(self, stdin: TextIO | None = None) -> int:
        """Read lines until end of input; each turn finishes before the next line is read."""
        source = stdin or sys.stdin
        interactive = source.isatty()
        if interactive:
            self.say("each::sense shell. Type a message, or /help.")
        while True:
            if interactive:
                self.out.write("> ")
                self.out.flush()
            line = await asyncio.to_thread(source.readline)
            if not line:
                break
            if not await self.handle_line(line):
                break
        return 0
