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
import uuid
from typing import TextIO

from bot.core import Core
from bot.models import (
    ButtonAction,
    ChannelKey,
    Command,
    CommandName,
    MediaFile,
    Message,
    SurfaceLimits,
    ThreadKey,
    View,
)

log = logging.getLogger(__name__)

PLATFORM = "shell"
USER = "local"
COMMANDS = {
    "/eco": CommandName.ECO,
    "/predict": CommandName.PREDICT,
    "/workflow": CommandName.WORKFLOW,
    "/sense": CommandName.SENSE,
}

HELP = """Commands:
  <message>                   a message in the current thread (one each::sense session)
  /new                        start a new thread (a new session)
  /sense PROMPT...            start a new thread with this prompt
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
        self.line(f"Generated: {media.url}")

    async def post_link(self, url: str, *, kind: str, reason: str) -> None:
        self.line(f"Generated: {url}")

    def _show(self, message_id: str, view: View, *, final: bool) -> None:
        shown = self._texts.get(message_id, "")
        if view.text.startswith(shown):
            self._write(view.text[len(shown) :])
        else:  # the text was rewritten (rare): print it again in full
            self.line("")
            self._write(view.text)
        self._texts[message_id] = view.text
        if view.status and view.status != self._statuses.get(message_id):
            if final:
                self.line("")
            if self._at_line_start:
                self.line(f"  {view.status}")
                self._statuses[message_id] = view.status
        if final:
            options = [b.label for b in view.buttons if b.action is ButtonAction.ANSWER]
            if options:
                self.line("  Options: " + " | ".join(options))
        self._out.flush()

    def _write(self, text: str) -> None:
        if text:
            self._out.write(text)
            self._at_line_start = text.endswith("\n")

    def line(self, text: str) -> None:
        if not self._at_line_start:
            self._out.write("\n")
        self._out.write(text + "\n")
        self._at_line_start = True
        self._out.flush()


class ShellReply:
    """A command's answer in the console: printed, like everything else."""

    def __init__(self, surface: ShellSurface) -> None:
        self._surface = surface

    async def tell(self, text: str, *, public: bool = False) -> None:
        self._surface.line(text)

    async def opened(self, key: ThreadKey) -> None:
        """The console shows one thread at a time: the new one is the current one."""


class Shell:
    """The console as a platform: lines become `Command`s and `Message`s for the core's
    command flow, exactly as Slack and Discord payloads do."""

    name = PLATFORM
    connected = True
    admins = "the console user"

    def __init__(self, core: Core, *, out: TextIO | None = None) -> None:
        self.core = core
        self.out = out or sys.stdout
        self._surface = ShellSurface(self.out)
        self._threads = itertools.count(1)
        self._new_thread()

    # --- the Platform port --------------------------------------------------------------

    def surface(self, key: ThreadKey, *, user_id: str | None = None) -> ShellSurface:
        return self._surface

    async def open_thread(self, channel: ChannelKey, *, root: View, title: str) -> ThreadKey:
        self._new_thread()
        self._fresh = False
        return self.key

    async def is_admin(self, user_id: str, channel: ChannelKey) -> bool:
        return True  # the console's user runs the bot

    async def start(self) -> None:
        """Nothing to connect: the console is stdin and stdout."""

    async def stop(self) -> None:
        """Nothing to disconnect."""

    # --- lines --------------------------------------------------------------------------

    def _new_thread(self) -> None:
        self.key = ThreadKey(PLATFORM, "local", "console", str(next(self._threads)))
        self._fresh = True

    async def handle_line(self, line: str) -> bool:
        """Act on one line; False means quit."""
        line = line.strip()
        if not line:
            return True
        if line.startswith("/"):
            return await self._command(line)
        message = Message(
            key=self.key,
            user_id=USER,
            text=line,
            message_id=uuid.uuid4().hex,  # unique across runs: claims outlive the process
            top_level=self._fresh,
            direct=True,
        )
        self._fresh = False
        await self.core.commands.handle(self, message)
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
        elif name in COMMANDS:
            command = Command(
                name=COMMANDS[name],
                channel=self.key.channel_key,
                user_id=USER,
                text=rest,
                reply=ShellReply(self._surface),
                admin=True,
            )
            await self.core.commands.handle(self, command)
        else:
            self.say(f"Unknown command {name}. Type /help for the list.")
        return True

    def say(self, text: str) -> None:
        self._surface.line(text)

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
