"""ReplyRenderer: each::sense events in, what a thread shows out.

A turn's events arrive far faster than a chat platform lets a bot edit a message (Discord
allows about 5 edits per 5 s per channel; Slack's `chat.update` budget is shared by a whole
workspace). So the renderer separates *folding* from *showing*:

- `feed` is the hot path: it appends to a list or swaps a reference, marks the state dirty
  and wakes the flusher. Nothing is formatted there.
- One background flusher per renderer renders a snapshot of the newest state at most once
  per `surface.limits.min_edit_interval`. While an edit is in flight new events only mark the
  state dirty, so a slow surface never builds a backlog of stale edits.
- `finish`, `fail` and `cancelled` stop the flusher (an edit already in flight is allowed to
  complete) and flush the final view at once, without waiting out the interval.

Text longer than `surface.limits.max_text` is split into pages: each full page is finalised in
its own message and the status line and buttons always move to the newest message. Pages are
cut right after a newline or a space (`page_end`), never inside a `\\r\\n`, before a combining
mark or inside an emoji sequence, and nothing is ever stripped or added, so the pages put
together are exactly the answer text. What a message has shown is never taken back: a page
ends at or after the end of its message's text, because some surfaces (Slack's native
streaming) can only append. `split_text` is the same cut for an adapter's own limits (Slack's
3,000-character sections).
"""

from __future__ import annotations

import asyncio
import logging
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from bot.delivery import clock_text
from bot.errors import BotError
from bot.i18n import N_, _, ngettext
from bot.models import (
    AgentMessage,
    Button,
    ButtonAction,
    ClarificationNeeded,
    Complete,
    Event,
    GenerationResponse,
    Mode,
    Progress,
    Status,
    TextResponse,
    ThinkingDelta,
    ToolCall,
    View,
    WebSearchCitations,
    WebSearchQuery,
    WorkflowEvent,
)
from bot.pacing import EditBudget
from bot.ports import Surface

log = logging.getLogger(__name__)

THINKING = N_("💭 Thinking…")
WRITING = N_("✍️ Writing…")
THINKING_TAIL = 150  # characters of reasoning shown on the status line
STATUS_MAX = 200  # a status line is one short line, whatever the event carried
ELAPSED_AFTER = 10.0  # show elapsed time on the live status once a turn runs this long
ELAPSED_REFRESH = 10.0  # re-render an idle live status this often so the clock moves
STATUS_GAP = 2  # characters an adapter may put between the status line and the text
NEAR_FULL = 0.5  # past this share of a page, live text stops at a word break
MAX_SOURCES = 5
MAX_BUTTON_LABEL = 80
# deltas kept apart before they are joined: between two edits (seconds apart when many turns
# share the live-edit budget) a turn would otherwise hold one small string per delta, and
# those outlive everything allocated around them (memory per turn: `make bench`)
JOIN_AT = 32
INTERRUPTED_STATUS = N_("⚠️ Interrupted by a restart: press Regenerate or send it again.")
MAX_ANSWER_BUTTONS = 24  # Discord allows 25 components; one is Regenerate


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """Everything one flush shows, taken at one instant so a flush is self-consistent."""

    body: str
    status: str
    buttons: tuple[Button, ...]


class ReplyRenderer:
    """Folds one turn's events into messages in one thread, throttled and split at limits."""

    def __init__(
        self,
        surface: Surface,
        *,
        turn_id: str,
        mode: Mode,
        clock: Callable[[], float] = time.monotonic,
        refresh_every: float = ELAPSED_REFRESH,
        budget: EditBudget | None = None,
        notes: tuple[str, ...] = (),
        plan: bool = False,
    ) -> None:
        """`clock` decides (elapsed time, the interval); `refresh_every` is how often, in real
        seconds, an idle live status is re-rendered so its elapsed time keeps moving during a
        long job (an unchanged view costs no call); `budget` is the process-wide cap on live
        edits (final flushes never wait for it). `notes` go on the final footer after the
        mode (the channel's web search and safety checker); a `plan` turn that finished ends
        with Approve and Cancel instead of Regenerate (one that failed keeps Regenerate: the
        turn's stored behavior makes that a new plan, never a run)."""
        self._surface = surface
        self._budget = budget
        self._turn_id = turn_id
        self._mode = mode
        self._notes = notes
        self._plan = plan
        self._clock = clock
        self._refresh_every = refresh_every
        self._started_at = clock()
        self._last_flush = float("-inf")
        # folded state (written by feed/note/media_done, read at flush time)
        self._parts: list[str] = []
        self._thinking = ""
        self._text_started = False
        self._activity: Event | str | None = None
        self._generated = 0
        self._files = 0
        self._clarification: ClarificationNeeded | None = None
        self._citations: dict[str, str] = {}  # url -> title, in arrival order
        # what has been shown: one entry per posted message
        self._ids: list[str] = []
        self._starts: list[int] = []  # where each message's text starts in the body
        self._shown: dict[str, View] = {}
        self._wanted: dict[str, View] = {}  # finished pages whose last edit may have failed
        # the flusher
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._in_flight = False
        self._stopping = False
        self._closed = False
        self._flushes = 0

    # --- public API ---------------------------------------------------------------------

    @property
    def message_ids(self) -> list[str]:
        """Every message posted for this turn; the first is the one `start` posted."""
        return list(self._ids)

    @property
    def text(self) -> str:
        """The answer text so far (the concatenated `TextResponse` pieces)."""
        return self._joined()

    @property
    def flushes(self) -> int:
        """How many `surface.post`/`surface.edit` calls this renderer made."""
        return self._flushes

    async def start(self) -> None:
        """Post the first message (thinking + Stop) and start the flusher."""
        self._started_at = self._clock()
        view = View(status=_(THINKING), buttons=(self._stop_button(),))
        message_id = await self._post(view)
        if message_id is not None:
            self._ids.append(message_id)
            self._starts.append(0)
        self._task = asyncio.create_task(self._run(), name=f"render:{self._turn_id}")

    def feed(self, event: Event) -> None:
        """Fold one event into the state. Cheap on purpose: called once per stream event."""
        # the most frequent events first; isinstance on these leaf classes costs ~40 ns
        if isinstance(event, TextResponse):
            parts = self._parts
            parts.append(event.content)
            if len(parts) >= JOIN_AT:  # a few strings, not one per delta, live per turn
                self._parts = ["".join(parts)]
            self._text_started = True
            self._activity = None
        elif isinstance(event, ThinkingDelta):
            if self._text_started:
                return  # reasoning is shown only until the answer starts
            self._thinking += event.content
            if len(self._thinking) > 4 * THINKING_TAIL:  # keep it short: only a tail is shown
                self._thinking = self._thinking[-2 * THINKING_TAIL :]
            self._activity = None
        elif isinstance(event, GenerationResponse):
            self._generated = max(self._generated + 1, len(event.generations))
            self._activity = event
        elif isinstance(event, ClarificationNeeded):
            self._clarification = event
        elif isinstance(event, WebSearchCitations):
            for title, url in event.citations:
                self._citations.setdefault(url, title or url)
        elif isinstance(event, Complete):
            return
        else:
            self._activity = event
        self._mark()

    def note(self, text: str) -> None:
        """Show a status line from the core (for example "Uploading video…")."""
        self._activity = text
        self._mark()

    def media_done(self, url: str, kind: str) -> None:
        """Count a generated file the core has posted into the thread."""
        log.debug("turn %s: %s posted: %s", self._turn_id, kind, url)
        self._files += 1
        self._mark()

    async def finish(self) -> None:
        """The turn ended normally: show the whole answer, a footer and Regenerate/answers."""
        await self._close(self._done_footer(), with_extras=True)

    async def fail(self, error: BotError) -> None:
        """The turn failed: keep the text, say what went wrong in the person's words."""
        status = self._one_line(f"⚠️ {error.user_message}", limit=self._status_limit() * 2)
        await self._close(status, with_extras=False)

    async def cancelled(self) -> None:
        """The person pressed Stop: keep the text, say it stopped."""
        await self._close(_("⏹️ Stopped."), with_extras=False)

    async def interrupted(self) -> None:
        """A restart cut the turn off: keep the text, say so; Regenerate retries it."""
        await self._close(_(INTERRUPTED_STATUS), with_extras=False)

    # --- the flusher --------------------------------------------------------------------

    def _mark(self) -> None:
        if not self._closed:
            self._wake.set()

    async def _run(self) -> None:
        """Wait for dirty state, wait out the interval, show the newest state; repeat."""
        interval = self._surface.limits.min_edit_interval
        while not self._stopping:
            try:
                async with asyncio.timeout(self._refresh_every):
                    await self._wake.wait()
            except TimeoutError:
                pass  # nothing new, but the elapsed time on the status line moved
            delay = self._last_flush + interval - self._clock()
            if delay > 0:
                await asyncio.sleep(delay)
            if self._budget is not None and not self._stopping:
                await self._budget.acquire()
            if self._stopping:
                return
            self._wake.clear()
            self._in_flight = True
            try:
                await self._sync(self._live_snapshot(), final=False)
            except Exception:  # never let a rendering bug take the turn down
                log.exception("turn %s: live render failed", self._turn_id)
            finally:
                self._in_flight = False

    async def _close(self, status: str, *, with_extras: bool) -> None:
        """Stop the flusher without cutting an edit in half, then flush the final view now.

        The final view is rendered only after the flusher has stopped, so events fed while
        an edit was in flight are part of it."""
        if self._closed:
            return
        self._closed = True
        self._stopping = True
        self._wake.set()
        task = self._task
        if task is not None and not task.done():
            if self._in_flight:  # let that edit finish so edits land in order
                await asyncio.wait([task])
            else:
                # it is only waiting (for events or the interval) and, once cancelled, can
                # never edit again: the final flush goes out now, without a hop to reap it
                task.cancel()
        snapshot = self._final_snapshot(status, with_extras=with_extras)
        if not await self._sync(snapshot, final=True):
            log.info("turn %s: final flush incomplete, retrying once", self._turn_id)
            await self._sync(snapshot, final=True)

    # --- rendering ----------------------------------------------------------------------

    def _joined(self) -> str:
        parts = self._parts
        if len(parts) > 1:
            self._parts = parts = ["".join(parts)]
        return parts[0] if parts else ""

    def _live_snapshot(self) -> _Snapshot:
        return _Snapshot(self._joined(), self._live_status(), (self._stop_button(),))

    def _final_snapshot(self, status: str, *, with_extras: bool) -> _Snapshot:
        text = self._joined()
        buttons: list[Button] = [
            Button(label=_("Regenerate"), action=ButtonAction.REGENERATE, value=self._turn_id)
        ]
        if self._plan and with_extras:
            buttons = list(self._plan_buttons())
        extras = ""
        if with_extras:
            extras = self._extras(text)
            if self._clarification is not None:
                buttons += [
                    Button(label=opt[:MAX_BUTTON_LABEL], action=ButtonAction.ANSWER, value=opt)
                    for opt in self._clarification.options[:MAX_ANSWER_BUTTONS]
                ]
        return _Snapshot(text + extras, status, tuple(buttons))

    def _extras(self, text: str) -> str:
        """The clarification question and the sources, appended after the answer text."""
        blocks: list[str] = []
        if self._clarification is not None and self._clarification.question:
            blocks.append(
                _("**Question:** {question}").format(question=self._clarification.question)
            )
        if self._citations:
            lines = [_("**Sources:**")]
            for url, title in list(self._citations.items())[:MAX_SOURCES]:
                label = self._one_line(title, limit=100)
                lines.append(f"- {url}" if label == url else f"- [{label}]({url})")
            blocks.append("\n".join(lines))
        if not blocks:
            return ""
        lead = "\n\n" if text.strip() else ""
        return lead + "\n\n".join(blocks)

    def _live_status(self) -> str:
        activity = self._activity
        if activity is None:
            line = _(WRITING) if self._text_started else self._thinking_line()
        elif isinstance(activity, str):
            line = activity
        else:
            line = self._activity_line(activity)
        suffix = ""
        elapsed = self._clock() - self._started_at
        if elapsed >= ELAPSED_AFTER:
            suffix += f" · {clock_text(elapsed)}"
        if self._files:
            suffix += " · " + files_posted(self._files)
        limit = self._status_limit()
        if limit - len(suffix) < 20:  # a tiny surface: the activity matters more than the clock
            return self._one_line(line, limit=limit)
        return self._one_line(line, limit=limit - len(suffix)) + suffix

    def _thinking_line(self) -> str:
        tail = " ".join(self._thinking.split())
        if not tail:
            return _(THINKING)
        if len(tail) > THINKING_TAIL:
            tail = "…" + tail[-THINKING_TAIL:]
        return f"{_(THINKING)} {tail}"

    def _activity_line(self, event: Event) -> str:
        if isinstance(event, Status):
            return f"🔧 {event.tool_name}: {event.message}" if event.tool_name else event.message
        if isinstance(event, Progress):
            pct = f" ({event.percent:.0f}%)" if event.percent is not None else ""
            return f"⏳ {event.message}{pct}"
        if isinstance(event, ToolCall):
            return f"🔧 {event.name}"
        if isinstance(event, AgentMessage):
            return f"💬 {event.content}"
        if isinstance(event, WebSearchQuery):
            return _("🔎 Searching: {query}").format(query=event.query)
        if isinstance(event, GenerationResponse):
            total = event.total
            if total:
                return _("🎨 Generated {count} of {total}…").format(
                    count=self._generated, total=total
                )
            count = self._generated
            return ngettext(
                "🎨 Generated {count} file…", "🎨 Generated {count} files…", count
            ).format(count=count)
        if isinstance(event, WorkflowEvent):
            return _workflow_line(event)
        return _(THINKING)

    def _plan_buttons(self) -> tuple[Button, ...]:
        return (
            Button(
                label="Approve", action=ButtonAction.APPROVE, value=self._turn_id, style="primary"
            ),
            Button(label="Cancel", action=ButtonAction.DECLINE, value=self._turn_id),
        )

    def _done_footer(self) -> str:
        elapsed = self._clock() - self._started_at
        took = f"{elapsed:.1f} s" if elapsed < 60 else clock_text(elapsed)
        done = _("📝 Plan ready: approve to run it") if self._plan else _("✅ Done")
        parts = [done, _("{mode} mode").format(mode=self._mode), *self._notes, took]
        if self._files:
            parts.append(
                ngettext("{count} file", "{count} files", self._files).format(count=self._files)
            )
        return " · ".join(parts)

    def _status_limit(self) -> int:
        return min(STATUS_MAX, self._surface.limits.max_text // 4)

    @staticmethod
    def _one_line(text: str, *, limit: int) -> str:
        line = " ".join(text.split())
        if len(line) <= limit:
            return line
        return line[: max(0, limit - 1)] + "…" if limit > 0 else ""

    def _stop_button(self) -> Button:
        return Button(
            label=_("Stop"), action=ButtonAction.STOP, value=self._turn_id, style="danger"
        )

    # --- showing: pages, posts and edits ------------------------------------------------

    async def _sync(self, snap: _Snapshot, *, final: bool) -> bool:
        """Make the thread show `snap`; True when every call needed succeeded.

        Page boundaries only move forward: a page is fixed once the message after it exists,
        so retrying after a failure recomputes the same layout from the same offsets.

        A page turn while the answer streams costs one call, not two: the full page is cut
        where its message's shown text already ends (live flushes near the limit stop at a
        word break so that point is a clean one), so only the new page is posted. A page
        whose text is incomplete is edited at once; only old pages' stale status line and Stop
        button wait until after the live message's final edit, so neither freshness nor the
        final edit waits for them.
        """
        ok = True
        body, status = snap.body, snap.status
        if not self._ids:  # the first post failed: try again now
            first = await self._post(self._page_or_rest(snap, 0))
            if first is None:
                return False
            self._ids.append(first)
            self._starts.append(0)
        # pages whose text is incomplete (an edit failed) must not wait for the end
        for message_id, view in list(self._wanted.items()):
            if self._shown.get(message_id, View()).text != view.text:
                ok = await self._show(message_id, view, final=final) and ok
        while self._overflows(body, self._starts[-1], status):
            start, page_id = self._starts[-1], self._ids[-1]
            cut = self._page_end(body, start, page_id, final=final)
            self._wanted[page_id] = View(text=body[start:cut])
            posted = await self._post(self._page_or_rest(snap, cut, final=final))
            if posted is None:
                return False
            self._ids.append(posted)
            self._starts.append(cut)
            if self._shown.get(page_id, View()).text != body[start:cut]:
                ok = await self._show(page_id, self._wanted[page_id], final=final) and ok
        start = self._starts[-1]
        text = body[start:] if final else self._live_text(body, start, status, self._ids[-1])
        live = View(text=text, status=status, buttons=snap.buttons)
        ok = await self._show(self._ids[-1], live, final=final) and ok
        if final:
            for message_id, view in list(self._wanted.items()):
                ok = await self._show(message_id, view, final=True) and ok
        return ok

    def _page_end(self, body: str, start: int, page_id: str, *, final: bool) -> int:
        """Where the full page that starts at `start` (shown by `page_id`) ends.

        While streaming, where its message's text already ends, when that is a clean cut
        (after whitespace) at least half a page long: the page turn then needs no edit of
        the old page. Otherwise, and at the final flush, the best cut that keeps everything
        the message already shows (`page_end` with that text as the floor)."""
        limit = self._surface.limits.max_text
        floor = self._floor(body, start, page_id)
        if not final and floor >= limit // 2 and _clean_cut(body, start, start + floor):
            return start + floor
        return page_end(body, start, limit, floor=floor)

    def _floor(self, body: str, start: int, page_id: str | None) -> int:
        """How much of `body[start:]` the message `page_id` already shows (0 if none)."""
        shown = self._shown.get(page_id) if page_id is not None else None
        if shown is None or not shown.text:
            return 0
        length = len(shown.text)
        if length > self._surface.limits.max_text or not body.startswith(shown.text, start):
            return 0
        return length

    def _live_text(self, body: str, start: int, status: str, page_id: str | None) -> str:
        """The live message's text. Past half a page it stops after the last word break,
        so that when the page fills, the break falls where the text already ends; it never
        ends before what the message already shows, so a message's text only grows."""
        text = body[start:]
        reserve = len(status) + STATUS_GAP if status else 0
        if len(text) + reserve > self._surface.limits.max_text * NEAR_FULL:
            floor = self._floor(body, start, page_id)
            brk = _last_break(body, start + max(floor, len(text) // 2, 1), len(body))
            if brk > 0:
                return body[start:brk]
        return text

    def _page_or_rest(self, snap: _Snapshot, start: int, *, final: bool = True) -> View:
        """What a new message at `start` shows: a full page, or the rest with status."""
        if self._overflows(snap.body, start, snap.status):
            end = page_end(snap.body, start, self._surface.limits.max_text)
            return View(text=snap.body[start:end])
        if final:
            text = snap.body[start:]
        else:
            text = self._live_text(snap.body, start, snap.status, None)
        return View(text=text, status=snap.status, buttons=snap.buttons)

    def _overflows(self, body: str, start: int, status: str) -> bool:
        """Whether the text from `start` on plus the status is too long for one message
        (never true for no text at all: there would be nothing to move to a new page)."""
        text_len = len(body) - start
        reserve = len(status) + STATUS_GAP if status else 0
        return text_len > 0 and text_len + reserve > self._surface.limits.max_text

    async def _show(self, message_id: str, view: View, *, final: bool) -> bool:
        """Edit a message unless it already shows `view`; False if the edit failed."""
        if self._shown.get(message_id) == view:
            if self._wanted.get(message_id) == view:
                del self._wanted[message_id]
            return True
        self._flushes += 1
        self._last_flush = self._clock()
        try:
            await self._surface.edit(message_id, view, final=final)
        except Exception as exc:  # a surface error must not end the turn
            log.warning("turn %s: edit of %s failed: %r", self._turn_id, message_id, exc)
            return False
        self._shown[message_id] = view
        if self._wanted.get(message_id) == view:
            del self._wanted[message_id]
        return True

    async def _post(self, view: View) -> str | None:
        self._flushes += 1
        self._last_flush = self._clock()
        try:
            message_id = await self._surface.post(view)
        except Exception as exc:  # a surface error must not end the turn
            log.warning("turn %s: post failed: %r", self._turn_id, exc)
            return None
        self._shown[message_id] = view
        return message_id


# --- where text may be cut ---------------------------------------------------------------

_WORD_BREAKS = (" ", "\t")  # a page may end right after one of these (or after "\n")
_JOINS_NEXT = "\u200d"  # ZERO WIDTH JOINER: the character after it belongs to the one before


def _extends(char: str) -> bool:
    """Whether `char` belongs to the character before it, so that a cut must not fall just
    before it: a combining mark, a variation selector, an emoji skin-tone modifier or tag,
    a joiner, or the low half of a surrogate pair (lone surrogates do occur in decoded JSON)."""
    if char < "\u0300":  # ASCII and Latin-1: the common case, decided at once
        return False
    code = ord(char)
    return (
        unicodedata.category(char) in ("Mn", "Me", "Mc")
        or code == 0x200D
        or 0xFE00 <= code <= 0xFE0F
        or 0xDC00 <= code <= 0xDFFF
        or 0x1F3FB <= code <= 0x1F3FF
        or 0xE0020 <= code <= 0xE007F
        or 0xE0100 <= code <= 0xE01EF
    )


def _regional(char: str) -> bool:
    return "\U0001f1e6" <= char <= "\U0001f1ff"  # flags are pairs of these


def _can_cut(text: str, pos: int) -> bool:
    """Whether `text` may be cut before index `pos` without splitting a character as a
    person sees it: not inside `\\r\\n`, not before a combining or joined character, not
    after a virama, not inside a flag's pair of regional indicators (an approximation of
    Unicode's grapheme clusters that needs no tables beyond `unicodedata`)."""
    if pos <= 0 or pos >= len(text):
        return True
    before, after = text[pos - 1], text[pos]
    if before == "\r" and after == "\n":
        return False
    if before == _JOINS_NEXT or _extends(after):
        return False
    if before >= "\u0900" and unicodedata.combining(before) == 9 and after.isalpha():
        return False  # a virama joins two consonants into one conjunct (Indic scripts)
    if _regional(before) and _regional(after):
        run = 0
        while pos - run - 1 >= 0 and _regional(text[pos - run - 1]):
            run += 1
        return run % 2 == 0
    return True


def _clean_cut(text: str, start: int, pos: int) -> bool:
    """Whether `text[start:pos]` is a page that ends right after whitespace, holds more
    than whitespace, and can be cut at `pos`."""
    return (
        pos > start
        and text[pos - 1] in " \t\n"
        and not text[start:pos].isspace()
        and _can_cut(text, pos)
    )


_ANY_BREAK = ("\n", *_WORD_BREAKS)


def _last_break(text: str, lo: int, hi: int, breaks: tuple[str, ...] = _ANY_BREAK) -> int:
    """The largest `pos` in `[lo, hi]` just after one of `breaks` where `text` can be cut
    (`_can_cut`), or -1. A cut position, so `text[pos - 1]` is the break character."""
    lo = max(lo, 1)
    end = hi  # break characters are looked for at indexes `lo - 1` up to `end - 1`
    while end >= lo:
        pos = max(text.rfind(b, lo - 1, end) for b in breaks) + 1
        if pos <= 0:
            return -1
        if _can_cut(text, pos):
            return pos
        end = pos - 1  # that one splits a character: look further back
    return -1


def page_end(text: str, start: int, limit: int, *, floor: int = 0) -> int:
    """Where a page of at most `limit` characters that starts at `start` should end.

    Right after the last newline in the second half of the window, else after the last
    space, tab or newline, so whitespace stays at the end of the page and joining pages
    gives back `text` exactly; never a page of whitespace alone. `floor` is how much of the
    page a message already shows: the end is never before `start + floor` (shown text is
    never taken back). A hard cut, at a place that splits no character (`_can_cut`), only
    when the window holds no usable break; with a floor, the floor itself is that place."""
    end = min(len(text), start + max(1, limit))
    lo = start + max(floor, 1)
    if lo > end:
        return end
    half = start + (end - start) // 2
    for low, breaks in ((max(lo, half + 1), ("\n",)), (lo, _ANY_BREAK)):
        pos = _last_break(text, low, end, breaks)
        # a page of whitespace alone would look empty (any earlier break would too)
        if pos > 0 and not text[start:pos].isspace():
            return pos
    if floor > 0:
        return start + min(floor, end - start)
    pos = end
    while pos > start + 1 and not _can_cut(text, pos) and end - pos < 64:
        pos -= 1  # back off to the start of the character a person sees (bounded)
    return pos if _can_cut(text, pos) else end


def split_text(text: str, limit: int) -> list[str]:
    """`text` in pieces of at most `limit` characters, cut as pages are (`page_end`), so
    that `"".join(split_text(text, limit)) == text` always (no pieces for no text)."""
    pieces: list[str] = []
    start = 0
    while len(text) - start > limit:
        end = page_end(text, start, limit)
        pieces.append(text[start:end])
        start = end
    if start < len(text):
        pieces.append(text[start:])
    return pieces


def files_posted(count: int) -> str:
    """The live status's " · 2 files posted" part (the shell reads it back)."""
    return ngettext("{count} file posted", "{count} files posted", count).format(count=count)


def _workflow_line(event: WorkflowEvent) -> str:
    """`workflow_*` / `execution_*` payloads are loosely documented: use what is there."""
    data = event.data if isinstance(event.data, dict) else {}
    label = event.kind.replace("_", " ").capitalize()
    message = data.get("message") or data.get("status") or data.get("name")
    line = f"⚙️ {label}: {message}" if message else f"⚙️ {label}"
    percent = data.get("progress", data.get("percent"))
    if isinstance(percent, int | float) and not isinstance(percent, bool):
        line += f" ({percent:.0f}%)"
    return line
