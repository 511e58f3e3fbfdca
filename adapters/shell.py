"""The terminal adapter: the embedded default and a developer's console.

One line of input is one message in the current thread; `/new` opens a new thread (a new
each::sense session). The answer streams to stdout as it arrives and every piece is printed
once: the agent's thinking as a status, then the text, and `Generated: <url>` for each
generated file (the shell never downloads media). Piped input works: turns run one after
another, and at end of input the shell waits for the running turn and exits.

Two ways to show a thread, picked by where stdout goes:

- `PlainSurface` (piped, a file, `TERM=dumb`): plain lines and no escape codes, fit for logs
  and scripts. The text as it streams; the thinking on one line that grows; any other status
  once per message (elapsed time and percentages do not make a status new); the final
  footer once.
- `RichSurface` (a terminal): Markdown rendered with `rich`, finished blocks printed for good
  as they complete, the block being written and one status line (spinner, elapsed time, the
  agent's activity) redrawn in place below them; the status line goes when the turn ends.

A clarification's options are numbered in both; typing the number answers with that option.
The buttons under a generated image or video are commands here (`/variations`, `/upscale`,
`/animate`, `/remix WHAT TO CHANGE`, acting on the newest one), and so are a plan's
(`/approve`, `/decline`). `/image PATH-OR-URL` attaches a reference image to the next
message; the core checks and re-hosts it like a platform's attachment.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import os
import re
import signal
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, cast

from bot.core import Core
from bot.delivery import clock_text
from bot.i18n import N_, _, current, set_language, using
from bot.models import (
    ButtonAction,
    ChannelKey,
    Click,
    Command,
    CommandName,
    Form,
    ImageRef,
    MediaFile,
    Message,
    Submission,
    SurfaceLimits,
    ThreadKey,
    View,
)
from bot.render import THINKING, WRITING, files_posted

if TYPE_CHECKING:  # rich is imported where it is used: a piped run never loads it
    from rich.console import Console, ConsoleOptions, RenderResult
    from rich.live import Live
    from rich.segment import Segment
    from rich.text import Text

log = logging.getLogger(__name__)

PLATFORM = "shell"
USER = "local"
COMMANDS = {
    "/eco": CommandName.ECO,
    "/settings": CommandName.SETTINGS,
    "/predict": CommandName.PREDICT,
    "/workflow": CommandName.WORKFLOW,
    "/sense": CommandName.SENSE,
    "/usage": CommandName.USAGE,
    "/admin": CommandName.ADMIN,
    "/plan": CommandName.SENSE,  # with a plan first
}
# the buttons under a generated file, and a plan's, as commands (they act on the newest)
CONTROLS = {
    "/variations": ButtonAction.VARIATIONS,
    "/upscale": ButtonAction.UPSCALE,
    "/animate": ButtonAction.ANIMATE,
    "/remix": ButtonAction.REMIX,
    "/approve": ButtonAction.APPROVE,
    "/decline": ButtonAction.DECLINE,
}
_CONTROL_NAMES = {action: name for name, action in CONTROLS.items()}
QUIT = ("/quit", "/exit")

# (what to type, what it does): `/help` prints these, in this order
HELP_ROWS = (
    ("<message>", N_("send a message in the current thread (one each::sense session)")),
    ("1, 2, …", N_("answer the agent's question with that numbered option")),
    ("/new", N_("start a new thread: the next message opens a new session")),
    ("/sense PROMPT...", N_("start a new thread with this prompt")),
    ("/plan PROMPT...", "start a new thread: the plan and its estimated cost first"),
    ("/approve", "run the plan just shown (in the same session)"),
    ("/decline", "drop the plan just shown: nothing runs"),
    ("/image PATH-OR-URL", "attach a reference image to the next message (up to 4)"),
    ("/variations", "variations of the newest generated image or video"),
    ("/upscale", "the newest generated image or video at a higher resolution"),
    ("/animate", "the newest generated image as a short video"),
    ("/remix WHAT TO CHANGE", "the newest generated image or video, changed as you say"),
    ("/eco on|off|status", N_("eco mode for this console: faster, cheaper generations")),
    ("/settings [web on|off|default]", "web search for this console (and the status)"),
    ("/predict MODEL PROMPT...", N_("run one model directly (each::api)")),
    ("/workflow ID [key=value...]", N_("run a saved workflow (each::workflows)")),
    ("/usage", "what you used today and in the last 30 days"),
    ("/admin access|quota ...", "access lists and daily quotas (/admin help)"),
    ("/help", N_("show this list")),
    ("/quit", N_("leave the shell (also /exit, or Ctrl-D)")),
)
HELP_NOTE = N_("Ctrl-C stops the answer being written (or cancels a model or workflow run).")
ANSWER_HINT = N_("Type a number to answer.")

THINKING_ICON = THINKING.split(" ", 1)[0]
_STOPS = (ButtonAction.STOP, ButtonAction.CANCEL_JOB)
MIN_OVERLAP = 12  # characters a new thinking tail must share with what was shown
THINKING_KEEP = 400  # characters of shown thinking kept to find that overlap
TICK = 0.1  # seconds between redraws of a terminal's status line (the spinner moves)

# what makes a status line look new without saying anything new
_CLOCK = re.compile(r" · (?:\d+s|\d+m \d\ds|\d+h \d\dm)(?= · |$)")
_PERCENT = re.compile(r" \(\d+%\)")
_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")


def without_clock(status: str) -> str:
    """The status without the elapsed time the core appends (a terminal shows its own)."""
    return _CLOCK.sub("", status)


@functools.cache
def _posted_in(language: str) -> re.Pattern[str]:
    """The core's " · 2 files posted" in `language`, in each of its plural forms."""
    with using(language):
        forms = {files_posted(n).replace(str(n), "\0", 1) for n in (1, 2, 5)}
    words = "|".join(re.escape(form).replace("\0", r"\d+") for form in sorted(forms))
    return re.compile(rf" · (?:{words})(?= · |$)")


def _posted() -> re.Pattern[str]:
    return _posted_in(current())


def status_key(status: str) -> str:
    """What a status says, less what only moves (elapsed time, percent, files posted)."""
    return _PERCENT.sub("", _posted().sub("", without_clock(status))).strip()


def thinking_tail(status: str) -> str | None:
    """The reasoning a "Thinking…" status carries (None: not a thinking status). The core
    shows only its newest part: a cut tail starts with "…"."""
    if not status.startswith(_(THINKING)):
        return None
    return _posted().sub("", without_clock(status))[len(_(THINKING)) :].strip()


def new_thinking(shown: str, tail: str) -> str:
    """What `tail` adds to the thinking already `shown` (whitespace-normalised, as the core
    shows it). A cut tail overlaps the end of what was shown; when more arrived between two
    views than the status line holds, the gap is marked with "…"."""
    cut = tail.startswith("…")
    if cut:
        tail = tail[1:]
    elif tail.startswith(shown):
        return tail[len(shown) :]
    for k in range(min(len(shown), len(tail)), MIN_OVERLAP - 1, -1):
        if shown.endswith(tail[:k]):
            return tail[k:]
    if not shown:
        return tail
    return " … " + tail.lstrip()


def block_ends(text: str) -> list[int]:
    """Where the finished Markdown blocks of `text` end: after each blank line (outside a
    fenced code block) that a new unindented block follows, and after each closed fence.
    Rendering a finished block now gives what rendering it later would."""
    ends: list[int] = []
    fence = ""
    offset = 0
    lines = text.split("\n")
    for index, line in enumerate(lines[:-1]):  # the last piece is an unfinished line
        offset += len(line) + 1
        opened = _FENCE.match(line)
        if fence:
            if opened and opened.group(1).startswith(fence) and not line.strip(fence[0] + " "):
                fence = ""
                if not line.startswith(" "):
                    ends.append(offset)
            continue
        if opened:
            fence = opened.group(1)
        elif not line.strip() and lines[index + 1][:1] not in ("", " ", "\t"):
            ends.append(offset)
    return ends


@dataclass(eq=False)
class _Message:
    """One message the core posted, and how much of it has been shown."""

    started: float
    live: bool  # the core will edit it again (a turn or a job in progress)
    text: str = ""  # its text as of its last view
    status: str = ""
    stop: tuple[ButtonAction, str] | None = None  # its Stop (or a job's Cancel) button
    # plain output
    statuses: set[str] = field(default_factory=set)
    thinking: str = ""  # the end of the thinking printed so far
    thinking_shown: bool = False
    thinking_fresh: bool = False  # its line shows only the icon so far
    # terminal output
    committed: int = 0  # text up to here is printed for good
    blocks: int = 0
    pending: list[Any] = field(default_factory=list)  # printed after the block (renderables)


class ShellSurface:
    """The console thread, as the core sees it (`bot.ports.Surface`): one stream of output for
    every thread. Subclasses decide how a view is shown; this keeps the messages' state and
    what the `Shell` needs to know (the options to answer, the turn to stop)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._ids = itertools.count(1)
        self._messages: dict[str, _Message] = {}
        self._clock = clock
        self.options: tuple[str, ...] = ()  # the newest answer's clarification options
        self.controls: dict[ButtonAction, str] = {}  # the newest controls: action -> value

    @property
    def limits(self) -> SurfaceLimits:
        return SurfaceLimits(min_edit_interval=0.25, max_text=1_000_000, max_upload_bytes=0)

    async def post(self, view: View) -> str:
        """A view with a status line is live (a turn or job: edits follow); one without is a
        notice, shown at once and done."""
        message_id = str(next(self._ids))
        message = _Message(started=self._clock(), live=bool(view.status))
        self._messages[message_id] = message
        self._update(message_id, message, view, final=not message.live)
        return message_id

    async def edit(self, message_id: str, view: View, *, final: bool = False) -> None:
        message = self._messages.get(message_id)
        if message is None:  # finished already, or never posted here: show it as new
            message = _Message(started=self._clock(), live=True)
            self._messages[message_id] = message
        self._update(message_id, message, view, final=final)

    async def upload(self, media: MediaFile) -> None:
        self.generated(media.url)

    async def post_link(self, url: str, *, kind: str, reason: str) -> None:
        self.generated(url)

    def running(self) -> tuple[ButtonAction, str] | None:
        """The Stop (or Cancel) button of the newest answer or run in progress: what Ctrl-C
        presses."""
        for message in reversed(self._messages.values()):
            if message.live and message.stop:
                return message.stop
        return None

    def _update(self, message_id: str, message: _Message, view: View, *, final: bool) -> None:
        message.stop = None
        if not final:
            message.stop = next(
                ((b.action, b.value) for b in view.buttons if b.action in _STOPS), None
            )
        controls = {b.action: b.value for b in view.buttons if b.action in _CONTROL_NAMES}
        if final and controls:  # the buttons are commands here: say which
            self.controls = controls
            hint = ", ".join(_CONTROL_NAMES[action] for action in controls)
            gap = "\n\n" if "\n" in view.text else " "
            view = replace(view, text=f"{view.text}{gap}{hint}" if view.text else hint)
        self._show(message, view, final=final)
        message.status = view.status
        if final:
            message.live = False
            self._messages.pop(message_id, None)
            answers = tuple(b.value for b in view.buttons if b.action is ButtonAction.ANSWER)
            if answers:
                self.options = answers

    # --- what subclasses show -----------------------------------------------------------

    def _show(self, message: _Message, view: View, *, final: bool) -> None:
        raise NotImplementedError

    def generated(self, url: str) -> None:
        """A generated file, by link."""
        raise NotImplementedError

    def line(self, text: str) -> None:
        """A line of plain text (no Markdown)."""
        raise NotImplementedError

    def notice(self, text: str) -> None:
        """A command's answer (Markdown, as the core writes it for every platform)."""
        self.line(text)

    def help(self, rows: Iterable[tuple[str, str]], note: str) -> None:
        rows = list(rows)
        width = max(len(usage) for usage, _ in rows)
        self.line("\n".join([_("Commands:"), *(f"  {u:<{width}}  {d}" for u, d in rows), note]))

    def prompt(self) -> None:
        """Ask for the next line."""
        raise NotImplementedError

    def close(self) -> None:
        """End any message still live (nothing more will come)."""


class PlainSurface(ShellSurface):
    """Plain lines for a pipe or a file: nothing is printed twice, no escape codes."""

    def __init__(self, out: TextIO, *, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(clock=clock)
        self._out = out
        self._at_line_start = True
        self._owner: tuple[_Message, str] | None = None  # whose text the open line holds

    def _show(self, message: _Message, view: View, *, final: bool) -> None:
        self._text(message, view.text)
        if final:
            self._end_line()
            if view.status:
                self._emit(f"  {view.status}")
            self._options(view)
        elif view.status and view.status != message.status:
            self._status(message, view.status)
        self._out.flush()

    def _text(self, message: _Message, text: str) -> None:
        shown = message.text
        message.text = text
        if text.startswith(shown):
            new = text[len(shown) :]
        else:  # the text was rewritten (rare): print it again in full
            self._end_line()
            self._owner, shown, new = None, "", text
        if not new:
            return
        if self._owner != (message, "text"):
            self._end_line()
            if shown:  # the text goes on after a status line: no leading blanks
                new = new.lstrip(" ")
        self._write(new)
        self._owner = (message, "text")

    def _status(self, message: _Message, status: str) -> None:
        tail = thinking_tail(status)
        if tail is not None:
            self._thinking(message, tail)
            return
        shown = status_key(status)
        key = shown.rstrip("… ")  # "⏳ starting…" and "⏳ starting · 2s" say the same
        if shown == _(WRITING) or key in message.statuses:
            return
        message.statuses.add(key)
        self._end_line()
        self._emit(f"  {shown}")

    def _thinking(self, message: _Message, tail: str) -> None:
        """The reasoning on one line that grows: only what is new is printed."""
        new = new_thinking(message.thinking, tail)
        if not new.strip() and message.thinking_shown:
            return
        message.thinking = (message.thinking + new)[-THINKING_KEEP:]
        if self._owner != (message, "thinking"):
            self._end_line()
            self._write("  " + (THINKING_ICON if message.thinking_shown else _(THINKING)))
            self._owner = (message, "thinking")
            message.thinking_shown = message.thinking_fresh = True
        if message.thinking_fresh and new.strip():
            new = " " + new.lstrip()
            message.thinking_fresh = False
        self._write(new)

    def _options(self, view: View) -> None:
        answers = [b.value for b in view.buttons if b.action is ButtonAction.ANSWER]
        for number, answer in enumerate(answers, 1):
            self._emit(f"  {number}. {answer}")
        if answers:
            self._emit(f"  {_(ANSWER_HINT)}")

    def generated(self, url: str) -> None:
        self.line(_("Generated: {url}").format(url=url))

    def line(self, text: str) -> None:
        self._end_line()
        self._emit(text)
        self._out.flush()

    def prompt(self) -> None:
        self._end_line()
        self._out.write("> ")
        self._out.flush()

    def _emit(self, text: str) -> None:
        self._write(text + "\n")
        self._owner = None

    def _end_line(self) -> None:
        if not self._at_line_start:
            self._write("\n")

    def _write(self, text: str) -> None:
        if text:
            self._out.write(text)
            self._at_line_start = text.endswith("\n")


class RichSurface(ShellSurface):
    """A terminal: Markdown rendered, one status line per live message redrawn in place.

    Finished Markdown blocks are printed for good as soon as they are complete (see
    `block_ends`), so the redrawn region stays small however long the answer is: the
    block being written and the status line. When the message's final view arrives the
    region goes, and the rest of the answer, its footer and numbered options are printed."""

    def __init__(self, console: Console, *, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(clock=clock)
        self.console = console
        self._live: Live | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._logs: list[tuple[logging.StreamHandler[Any], Any]] = []

    # --- messages -----------------------------------------------------------------------

    def _show(self, message: _Message, view: View, *, final: bool) -> None:
        if not view.text.startswith(message.text[: message.committed]):
            message.committed = 0  # rewritten (rare): the new text is printed in full
        message.text = view.text
        message.status = view.status
        if final or not message.live:
            message.live = False
            self._stop_live_if_idle()
            self._commit(message, final=True)
            self._footer(view)
            return
        self._commit(message, final=False)
        self._start_live()
        self._refresh()

    def _commit(self, message: _Message, *, final: bool) -> None:
        """Print the message's finished blocks for good (all of its text when `final`), one
        Markdown block at a time, then the lines that were waiting for them."""
        from rich.markdown import Markdown

        start = message.committed
        ends = [start + end for end in block_ends(message.text[start:])]
        if final:
            ends.append(len(message.text))
        for end in ends:
            block = message.text[message.committed : end].strip("\n")
            message.committed = end
            if block.strip():
                if message.blocks:
                    self.console.print()
                self.console.print(Markdown(block))
                message.blocks += 1
        if final or message.committed > start:
            for pending in message.pending:
                self.console.print(pending)
            message.pending.clear()

    def _footer(self, view: View) -> None:
        from rich.text import Text

        status = view.status
        if status:
            style = "yellow" if status.startswith(("⚠️", "❌")) else "dim"
            self.console.print(Text(f"  {status}", style=style))
        answers = [b.value for b in view.buttons if b.action is ButtonAction.ANSWER]
        for number, answer in enumerate(answers, 1):
            self.console.print(Text.assemble((f"  {number}. ", "bold cyan"), answer))
        if answers:
            self.console.print(Text(f"  {_(ANSWER_HINT)}", style="dim"))

    def generated(self, url: str) -> None:
        self.line(_("Generated: {url}").format(url=url))

    def line(self, text: str) -> None:
        from rich.text import Text

        self._print(Text(text))

    def notice(self, text: str) -> None:
        from rich.markdown import Markdown

        self._print(Markdown(text))

    def _print(self, renderable: Any) -> None:
        """Print now; while an answer is being written, after the block being written (so
        things read in the order they happened) once that block is finished."""
        for message in reversed(self._messages.values()):
            if message.live and message.stop:
                message.pending.append(renderable)
                self._refresh()
                return
        self.console.print(renderable)

    def help(self, rows: Iterable[tuple[str, str]], note: str) -> None:
        from rich.padding import Padding
        from rich.table import Table
        from rich.text import Text

        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold cyan", no_wrap=True)
        table.add_column()
        for usage, description in rows:
            table.add_row(Text(usage), Text(description))
        self.console.print(_("Commands:"), markup=False)
        self.console.print(Padding(table, (0, 0, 0, 2)))
        self.console.print(Text(note, style="dim"))

    def prompt(self) -> None:
        from rich.text import Text

        self.console.print(Text("> ", style="bold"), end="")

    def close(self) -> None:
        for message in list(self._messages.values()):
            if message.live:
                message.live = False
                self._commit(message, final=True)
        self._stop_live_if_idle()

    # --- the live region ----------------------------------------------------------------

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        """The region redrawn in place: each live message's unfinished block (its newest
        lines, to fit the terminal), lines waiting for it, and its status line."""
        from rich.markdown import Markdown

        live = [m for m in self._messages.values() if m.live]
        room = max(3, options.height or console.height) - 2 * len(live)
        width = options.max_width
        for message in live:
            block = message.text[message.committed :].strip("\n")
            if block.strip():
                yield _Tail(Markdown(block), max(1, room // len(live) - len(message.pending)))
            yield from message.pending
            yield self._status_line(message, width)

    def _status_line(self, message: _Message, width: int) -> Text:
        from rich.text import Text

        elapsed = self._clock() - message.started
        frame = _SPINNER[int(elapsed / TICK) % len(_SPINNER)]
        took = f"{elapsed:.1f}s" if elapsed < 60 else clock_text(elapsed)
        head = f"{frame} {took}  "
        status = without_clock(message.status)
        room = width - len(head) - 1
        thinking = status.startswith(_(THINKING))
        if thinking and len(status) > room:  # keep the newest reasoning in view
            keep = status[-(room - len(_(THINKING)) - 2) :] if room > len(_(THINKING)) + 2 else ""
            status = _(THINKING) + (" …" + keep[keep.find(" ") + 1 :] if keep else "")
        line = Text.assemble((head, "cyan"), (status, "dim italic" if thinking else "dim"))
        line.no_wrap = True
        line.overflow = "ellipsis"
        return line

    def _start_live(self) -> None:
        from rich.live import Live

        if self._live is not None:
            return
        self._live = Live(
            self,
            console=self.console,
            transient=True,
            auto_refresh=False,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._live.start()
        self._route_logs()
        with contextlib.suppress(RuntimeError):  # no running loop: redrawn on updates only
            self._ticker = asyncio.get_running_loop().create_task(self._tick())

    def _stop_live_if_idle(self) -> None:
        if self._live is None or any(m.live for m in self._messages.values()):
            return
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        self._unroute_logs()
        self._live.stop()
        self._live = None

    def _refresh(self) -> None:
        if self._live is not None:
            self._live.refresh()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            self._refresh()

    def _route_logs(self) -> None:
        """While the region is drawn, log lines bound for the terminal are printed above it
        (written straight to the terminal they would be drawn over)."""
        from rich.file_proxy import FileProxy

        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.StreamHandler) and _is_tty(handler.stream):
                stream = handler.stream
                self._logs.append((handler, handler.setStream(FileProxy(self.console, stream))))

    def _unroute_logs(self) -> None:
        for handler, stream in self._logs:
            handler.setStream(stream)
        self._logs.clear()


_SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


class _Tail:
    """The last `lines` lines of a renderable: the newest text of a long block stays on
    screen while it is written."""

    def __init__(self, renderable: Any, lines: int) -> None:
        self._renderable = renderable
        self._lines = lines

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[Segment]:
        from rich.segment import Segment

        lines = console.render_lines(self._renderable, options, pad=False)
        for line in lines[-self._lines :]:
            yield from line
            yield Segment.line()


def _is_tty(stream: Any) -> bool:
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError):
        return False


def environment_locale(environ: Mapping[str, str]) -> str | None:
    """The locale a program's messages follow, as POSIX orders the variables."""
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        if environ.get(name):
            return environ[name]
    return None


def make_surface(out: TextIO, *, console: Console | None = None) -> ShellSurface:
    """A terminal gets `RichSurface`; a pipe, a file or a dumb terminal `PlainSurface`."""
    if console is None and _is_tty(out):
        from rich.console import Console

        console = Console(file=out)
    if console is None or console.is_dumb_terminal or not console.is_terminal:
        return PlainSurface(out)
    return RichSurface(console)


class ShellReply:
    """A command's answer in the console: printed, like everything else."""

    def __init__(self, surface: ShellSurface) -> None:
        self._surface = surface

    async def tell(self, text: str, *, public: bool = False) -> None:
        self._surface.notice(text)

    async def opened(self, key: ThreadKey) -> None:
        """The console shows one thread at a time: the new one is the current one."""

    async def form(self, form: Form) -> bool:
        """The console's form is a command line: say which one to type."""
        name = _CONTROL_NAMES.get(form.action, "/remix")
        was = f" (it was: {form.text})" if form.text else ""
        self._surface.notice(f"Type `{name} WHAT TO CHANGE` to remix it{was}.")
        return True


class Shell:
    """The console as a platform: lines become `Command`s, `Message`s and `Click`s for the
    core's command flow, exactly as Slack and Discord payloads do."""

    name = PLATFORM
    connected = True
    admins = N_("the console user")

    def __init__(
        self, core: Core, *, out: TextIO | None = None, console: Console | None = None
    ) -> None:
        self.core = core
        if out is None:
            out = cast(TextIO, console.file) if console is not None else sys.stdout
        self.out = out
        self._surface = make_surface(self.out, console=console)
        self._threads = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        self._images: list[ImageRef] = []  # attached with /image, for the next message
        # the console's language: BOT_LANGUAGE, else the environment's, as for any program
        self.locale = core.settings.bot_language or environment_locale(os.environ)
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

    async def roles_of(
        self, user_id: str, channel: ChannelKey, *, among: frozenset[str]
    ) -> frozenset[str]:
        return frozenset()  # the console's user has no roles

    async def start(self) -> None:
        """Nothing to connect: the console is stdin and stdout."""

    async def stop(self) -> None:
        """Nothing to disconnect."""

    # --- lines --------------------------------------------------------------------------

    def _new_thread(self) -> None:
        self.key = ThreadKey(PLATFORM, "local", "console", str(next(self._threads)))
        self._fresh = True
        self._surface.options = ()
        self._surface.controls = {}

    async def handle_line(self, line: str) -> bool:
        """Act on one line; False means quit."""
        line = line.strip()
        if not line:
            return True
        options = self._surface.options
        if line.isdigit() and 1 <= int(line) <= len(options):
            self._surface.options = ()
            await self._click(ButtonAction.ANSWER, options[int(line) - 1])
            return True
        if line.lower() != "/help":  # the options answer the question just asked
            self._surface.options = ()
        if line.startswith("/"):
            return await self._command(line)
        message = Message(
            key=self.key,
            user_id=USER,
            text=line,
            message_id=uuid.uuid4().hex,  # unique across runs: claims outlive the process
            top_level=self._fresh,
            direct=True,
            admin=True,
            roles=frozenset(),
            images=self._take_images(),
            locale=self.locale,
        )
        self._fresh = False
        await self.core.commands.handle(self, message)
        return True

    async def _command(self, line: str) -> bool:
        name, _space, rest = line.partition(" ")
        name = name.lower()
        if name in QUIT:
            return False
        if name == "/help":
            self._surface.help([(usage, _(what)) for usage, what in HELP_ROWS], _(HELP_NOTE))
        elif name == "/new":
            self._new_thread()
            self.say(_("New thread: the next message starts a new session."))
        elif name == "/image":
            self._attach(rest.strip())
        elif name in CONTROLS:
            await self._control(CONTROLS[name], rest.strip())
        elif name in COMMANDS:
            sense = COMMANDS[name] is CommandName.SENSE
            command = Command(
                name=COMMANDS[name],
                channel=self.key.channel_key,
                user_id=USER,
                text=rest,
                reply=ShellReply(self._surface),
                admin=True,
                roles=frozenset(),
                images=self._take_images() if sense else (),
                plan=name == "/plan",
                locale=self.locale,
            )
            await self.core.commands.handle(self, command)
        else:
            self.say(_("Unknown command {name}. Type /help for the list.").format(name=name))
        return True

    def _attach(self, where: str) -> None:
        """`/image PATH-OR-URL`: kept for the next message (checked when it is sent)."""
        if not where:
            self.say("Usage: /image PATH-OR-URL (a JPEG, PNG, WebP or GIF image).")
            return
        if "://" in where:
            ref = ImageRef(url=where, filename=where.rsplit("/", 1)[-1].split("?", 1)[0])
        else:
            path = Path(where).expanduser()
            if not path.is_file():
                self.say(f"There is no file at {where}.")
                return
            ref = ImageRef(path=path, filename=path.name)
        self._images.append(ref)
        count = len(self._images)
        more = f" ({count} attached)" if count > 1 else ""
        self.say(f"Attached {ref.name}{more}: it goes with your next message.")

    def _take_images(self) -> tuple[ImageRef, ...]:
        images, self._images = tuple(self._images), []
        return images

    async def _control(self, action: ButtonAction, text: str) -> None:
        """A button under the newest generated file (or plan), typed."""
        value = self._surface.controls.get(action)
        if value is None:
            what = "plan" if action in (ButtonAction.APPROVE, ButtonAction.DECLINE) else "file"
            self.say(f"There is no {what} to do that with here yet.")
            return
        if action is ButtonAction.REMIX and text:
            submission = Submission(
                key=self.key,
                user_id=USER,
                action=action,
                value=value,
                text=text,
                reply=ShellReply(self._surface),
                event_id=uuid.uuid4().hex,
            )
            await self.core.commands.handle(self, submission)
            return
        await self._click(action, value)

    async def _click(self, action: ButtonAction, value: str) -> None:
        click = Click(
            key=self.key,
            user_id=USER,
            action=action,
            value=value,
            reply=ShellReply(self._surface),
            admin=True,
            event_id=uuid.uuid4().hex,
            roles=frozenset(),
            locale=self.locale,
        )
        await self.core.commands.handle(self, click)

    def say(self, text: str) -> None:
        self._surface.line(text)

    def interrupt(self) -> asyncio.Task[None] | None:
        """Ctrl-C: stop the answer being written (or cancel the run), as its button does."""
        running = self._surface.running()
        if running is None:
            self.say("\n" + _("(Type /quit or press Ctrl-D to leave.)"))
            self._surface.prompt()
            return None
        task = asyncio.get_running_loop().create_task(self._click(*running))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def run(self, stdin: TextIO | None = None) -> int:
        """Read lines until end of input; each turn finishes before the next line is read."""
        set_language(self.locale)  # what the shell itself says (help, hints) too
        source = stdin or sys.stdin
        interactive = source.isatty()
        if interactive:
            self.say(_("each::sense shell. Type a message, or /help."))
        with self._ctrl_c(interactive):
            try:
                while True:
                    if interactive:
                        self._surface.prompt()
                    line = await asyncio.to_thread(source.readline)
                    if not line:
                        break
                    if not await self.handle_line(line):
                        break
            finally:
                self._surface.close()
        return 0

    @contextlib.contextmanager
    def _ctrl_c(self, interactive: bool) -> Iterator[None]:
        """At a terminal Ctrl-C stops the running answer instead of the program."""
        loop = asyncio.get_running_loop()
        installed = False
        if interactive:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signal.SIGINT, self.interrupt)
                installed = True
        try:
            yield
        finally:
            if installed:
                loop.remove_signal_handler(signal.SIGINT)
