"""ReplyRenderer against a recording Surface: throttling, coalescing, pages and final views."""

from __future__ import annotations

import asyncio
import itertools
import random
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.errors import StreamCut
from bot.models import (
    Button,
    ButtonAction,
    ClarificationNeeded,
    Complete,
    GenerationResponse,
    MediaFile,
    Progress,
    Status,
    SurfaceLimits,
    TextResponse,
    ThinkingDelta,
    ToolCall,
    View,
    WebSearchCitations,
    WebSearchQuery,
    WorkflowEvent,
)
from bot.render import ReplyRenderer, page_end, split_text

TURN = "turn-1"
STOP = Button(label="Stop", action=ButtonAction.STOP, value=TURN, style="danger")
REGEN = Button(label="Regenerate", action=ButtonAction.REGENERATE, value=TURN)


@dataclass
class Call:
    kind: str  # "post" | "edit"
    message_id: str
    view: View
    final: bool
    started: float
    ended: float | None = None
    state_at_call: str | None = None  # what the probe said when the call began


class RecordingSurface:
    """A test double of an adapter's Surface: records every call with its timing.

    A contract breach (an edit of a message never posted) is recorded as well as raised:
    the renderer swallows a surface's errors by design, so the `_no_breaches` fixture fails
    the test at teardown instead."""

    created: ClassVar[list[RecordingSurface]] = []

    def __init__(
        self,
        *,
        interval: float = 0.0,
        max_text: int = 2000,
        edit_delay: float = 0.0,
        fail_edits: int = 0,
        fail_posts: int = 0,
    ) -> None:
        self._limits = SurfaceLimits(
            min_edit_interval=interval, max_text=max_text, max_upload_bytes=1 << 20
        )
        self.edit_delay = edit_delay
        self.fail_edits = fail_edits
        self.fail_posts = fail_posts
        self.fail_final_edits = 0
        self.probe: Callable[[], str] | None = None
        self.calls: list[Call] = []
        self.messages: dict[str, View] = {}
        self.breaches: list[str] = []
        self._changed = asyncio.Condition()
        RecordingSurface.created.append(self)

    @property
    def limits(self) -> SurfaceLimits:
        return self._limits

    async def post(self, view: View) -> str:
        call = Call("post", "", view, False, time.monotonic())
        self.calls.append(call)
        if self.fail_posts:
            self.fail_posts -= 1
            raise RuntimeError("post refused")
        message_id = f"m{len(self.messages) + 1}"
        call.message_id = message_id
        self.messages[message_id] = view
        call.ended = time.monotonic()
        await self._notify()
        return message_id

    async def edit(self, message_id: str, view: View, *, final: bool = False) -> None:
        call = Call("edit", message_id, view, final, time.monotonic())
        call.state_at_call = self.probe() if self.probe else None
        self.calls.append(call)
        if message_id not in self.messages:
            self.breaches.append(f"edit of {message_id}, a message never posted")
            raise AssertionError("edit of a message never posted")
        if self.fail_edits or (final and self.fail_final_edits):
            if final and self.fail_final_edits:
                self.fail_final_edits -= 1
            else:
                self.fail_edits -= 1
            await self._notify()
            raise RuntimeError("edit refused")
        if self.edit_delay:
            await asyncio.sleep(self.edit_delay)
        self.messages[message_id] = view
        call.ended = time.monotonic()
        await self._notify()

    async def upload(self, media: MediaFile) -> None:
        raise AssertionError("the renderer never uploads")

    async def post_link(self, url: str, *, kind: str, reason: str) -> None:
        raise AssertionError("the renderer never posts links")

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        async with asyncio.timeout(2.0), self._changed:
            await self._changed.wait_for(predicate)

    def last(self) -> View:
        return self.messages[list(self.messages)[-1]]

    def edits(self, *, final: bool | None = None) -> list[Call]:
        return [c for c in self.calls if c.kind == "edit" and (final is None or c.final == final)]


@pytest.fixture(autouse=True)
def _no_breaches() -> Iterator[None]:
    RecordingSurface.created.clear()
    yield
    breaches = [b for surface in RecordingSurface.created for b in surface.breaches]
    RecordingSurface.created.clear()
    assert not breaches, breaches


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def started(surface: RecordingSurface, **kwargs: object) -> ReplyRenderer:
    renderer = ReplyRenderer(surface, turn_id=TURN, mode="max", **kwargs)  # type: ignore[arg-type]
    await renderer.start()
    return renderer


# --- start / finish ------------------------------------------------------------------------


async def test_start_posts_thinking_with_stop_and_finish_swaps_in_regenerate() -> None:
    surface = RecordingSurface()
    renderer = await started(surface)
    assert renderer.message_ids == ["m1"]
    assert surface.messages["m1"] == View(text="", status="💭 Thinking…", buttons=(STOP,))
    renderer.feed(TextResponse("Hello"))
    await renderer.finish()
    final = surface.messages["m1"]
    assert final.text == "Hello"
    assert final.status.startswith("✅ Done · max mode · ")
    assert final.buttons == (REGEN,)
    assert surface.calls[-1].final is True
    assert renderer.flushes == len(surface.calls)


async def test_footer_shows_mode_elapsed_and_files() -> None:
    clock = FakeClock()
    surface = RecordingSurface()
    renderer = ReplyRenderer(surface, turn_id=TURN, mode="eco", clock=clock)
    await renderer.start()
    renderer.feed(TextResponse("Here you go"))
    renderer.media_done("https://cdn.example/a.png", "image")
    renderer.media_done("https://cdn.example/b.mp4", "video")
    clock.now += 12.4
    await renderer.finish()
    assert surface.last().status == "✅ Done · eco mode · 12.4 s · 2 files"


# --- throttling ----------------------------------------------------------------------------


async def test_flush_rate_never_exceeds_one_per_interval() -> None:
    interval = 0.05
    surface = RecordingSurface(interval=interval, max_text=10_000)  # no pages here
    began = time.monotonic()
    renderer = await started(surface)
    sent = []
    for batch in range(50):
        for i in range(10):
            piece = f"w{batch}.{i} "
            sent.append(piece)
            renderer.feed(TextResponse(piece))
        await asyncio.sleep(0.01)
    await renderer.finish()
    duration = time.monotonic() - began
    assert renderer.flushes <= duration / interval + 2
    live = [c.started for c in surface.calls if not c.final]
    gaps = [b - a for a, b in itertools.pairwise(live)]
    assert gaps and min(gaps) >= interval * 0.95
    assert len(surface.edits(final=False)) >= 3  # it did stream, not just post and finish
    assert surface.last().text == "".join(sent)


async def test_final_flush_does_not_wait_for_the_interval() -> None:
    surface = RecordingSurface(interval=5.0)
    renderer = await started(surface)
    renderer.feed(TextResponse("partial answer, "))
    await asyncio.sleep(0.02)  # the flusher is now waiting out the 5 s interval
    renderer.feed(TextResponse("and the rest."))
    asked = time.monotonic()
    await renderer.finish()
    (final,) = surface.edits(final=True)
    assert final.started - asked < 2.5  # not behind the 5 s interval (loose: no flake)
    assert final.view.text == "partial answer, and the rest."
    assert surface.edits(final=False) == []  # the 5 s interval never ran out


async def test_slow_surface_gets_the_latest_state_without_a_backlog() -> None:
    surface = RecordingSurface(interval=0.01, edit_delay=0.2)
    renderer = await started(surface)
    surface.probe = lambda: renderer.text
    began = time.monotonic()
    for i in range(200):
        renderer.feed(TextResponse(f"{i} "))
        await asyncio.sleep(0.005)
    fed_for = time.monotonic() - began
    asked = time.monotonic()
    await renderer.finish()
    finish_took = time.monotonic() - asked
    live = surface.edits(final=False)
    assert 2 <= len(live) <= fed_for / 0.2 + 2
    for call in live:  # every edit carried the newest text at the moment it was sent
        assert call.view.text == call.state_at_call
    assert all(c.ended is not None for c in live)  # no edit was cut off mid-call
    # finish waited for at most one in-flight edit, then made one final edit
    assert finish_took < 0.2 * 2 + 0.15
    (final,) = surface.edits(final=True)
    assert final.view.text == renderer.text == "".join(f"{i} " for i in range(200))


async def test_identical_state_is_not_sent_again() -> None:
    surface = RecordingSurface()
    renderer = await started(surface)
    renderer.feed(TextResponse("same"))
    await surface.wait_until(lambda: surface.last().text == "same")
    before = renderer.flushes
    renderer.feed(TextResponse(""))
    renderer.feed(Complete())
    await asyncio.sleep(0.02)
    assert renderer.flushes == before
    await renderer.finish()


# --- what the status line shows ------------------------------------------------------------


async def test_thinking_is_shown_then_replaced_by_text() -> None:
    surface = RecordingSurface()
    renderer = await started(surface)
    renderer.feed(ThinkingDelta("The person wants a cat.\nA tabby, "))
    renderer.feed(ThinkingDelta("probably."))
    await surface.wait_until(lambda: "tabby" in surface.last().status)
    assert surface.last().status == "💭 Thinking… The person wants a cat. A tabby, probably."
    renderer.feed(ThinkingDelta("x" * 1000 + " the end"))
    await surface.wait_until(lambda: surface.last().status.endswith("the end"))
    status = surface.last().status
    assert status.startswith("💭 Thinking… …") and len(status) <= len("💭 Thinking… …") + 150
    renderer.feed(TextResponse("Here is a tabby."))
    renderer.feed(ThinkingDelta("secret afterthought"))
    await surface.wait_until(lambda: surface.last().text == "Here is a tabby.")
    assert "Thinking" not in surface.last().status
    await renderer.finish()
    assert "afterthought" not in str(surface.last())
    assert surface.last().text == "Here is a tabby."


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (
            Status("Generating image", tool_name="generate_image"),
            "🔧 generate_image: Generating image",
        ),
        (Progress("Rendering video", percent=42.0), "⏳ Rendering video (42%)"),
        (ToolCall("search_models", {"q": "x"}), "🔧 search_models"),
        (WebSearchQuery("tabby cats"), "🔎 Searching: tabby cats"),
        (GenerationResponse("https://cdn/a.png", total=3), "🎨 Generated 1 of 3…"),
        (WorkflowEvent("execution_progress", {"message": "step 2", "progress": 50}), "50%"),
    ],
)
async def test_activity_lines(event: object, expected: str) -> None:
    surface = RecordingSurface()
    renderer = await started(surface)
    renderer.feed(event)  # type: ignore[arg-type]
    await surface.wait_until(lambda: expected in surface.last().status)
    assert surface.last().buttons == (STOP,)
    await renderer.finish()


async def test_long_jobs_show_elapsed_time_and_notes_and_files() -> None:
    clock = FakeClock()
    surface = RecordingSurface()
    renderer = await started(surface, clock=clock)
    renderer.feed(Progress("Rendering video", percent=10))
    await surface.wait_until(lambda: surface.last().status == "⏳ Rendering video (10%)")
    clock.now += 65
    renderer.feed(Progress("Rendering video", percent=80))
    await surface.wait_until(lambda: "80%" in surface.last().status)
    assert surface.last().status == "⏳ Rendering video (80%) · 1m 05s"
    renderer.note("Uploading video…")
    renderer.media_done("https://cdn/v.mp4", "video")
    await surface.wait_until(lambda: "Uploading" in surface.last().status)
    assert surface.last().status == "Uploading video… · 1m 05s · 1 file posted"
    await renderer.finish()
    assert surface.last().status == "✅ Done · max mode · 1m 05s · 1 file"


async def test_an_idle_long_job_still_updates_its_elapsed_time() -> None:
    clock = FakeClock()
    surface = RecordingSurface()
    renderer = await started(surface, clock=clock, refresh_every=0.02)
    renderer.feed(Progress("Rendering video"))
    await surface.wait_until(lambda: surface.last().status == "⏳ Rendering video")
    await asyncio.sleep(0.06)  # refreshes of an unchanged view cost no call
    calls = renderer.flushes
    clock.now += 130
    await surface.wait_until(lambda: surface.last().status == "⏳ Rendering video · 2m 10s")
    assert renderer.flushes == calls + 1
    await renderer.finish()


# --- final views ---------------------------------------------------------------------------


async def test_clarification_becomes_question_and_answer_buttons() -> None:
    surface = RecordingSurface()
    renderer = await started(surface)
    long_option = "A very detailed option " * 10
    renderer.feed(TextResponse("I can do that."))
    renderer.feed(ClarificationNeeded("Which style?", options=("Photo", long_option)))
    await renderer.finish()
    view = surface.last()
    assert view.text == "I can do that.\n\n**Question:** Which style?"
    assert view.buttons[0] == REGEN
    answers = view.buttons[1:]
    assert [b.action for b in answers] == [ButtonAction.ANSWER, ButtonAction.ANSWER]
    assert answers[0].label == answers[0].value == "Photo"
    assert answers[1].value == long_option
    assert answers[1].label == long_option[:80]


async def test_citations_become_at_most_five_sources() -> None:
    surface = RecordingSurface()
    renderer = await started(surface)
    renderer.feed(TextResponse("Cats sleep a lot."))
    bare = ("https://bare.example/", "https://bare.example/")
    cites = tuple((f"Title {i}", f"https://s{i}.example/") for i in range(7))
    renderer.feed(WebSearchCitations(cites[:1]))
    renderer.feed(WebSearchCitations((bare, *cites)))  # the repeated one is listed once
    await renderer.finish()
    text = surface.last().text
    head, sources = text.split("\n\n**Sources:**\n")
    assert head == "Cats sleep a lot."
    assert sources.split("\n") == [
        "- [Title 0](https://s0.example/)",
        "- https://bare.example/",
        "- [Title 1](https://s1.example/)",
        "- [Title 2](https://s2.example/)",
        "- [Title 3](https://s3.example/)",
    ]


async def test_fail_keeps_the_text_and_says_why() -> None:
    surface = RecordingSurface()
    renderer = await started(surface)
    renderer.feed(TextResponse("Half an ans"))
    error = StreamCut()
    await renderer.fail(error)
    view = surface.last()
    assert view.text == "Half an ans"
    assert view.status == "⚠️ " + error.user_message
    assert view.buttons == (REGEN,)
    assert surface.calls[-1].final


async def test_cancelled_keeps_the_text() -> None:
    surface = RecordingSurface(interval=1.0)
    renderer = await started(surface)
    renderer.feed(TextResponse("Stopping here"))
    await renderer.cancelled()
    assert surface.last() == View(text="Stopping here", status="⏹️ Stopped.", buttons=(REGEN,))
    await renderer.finish()  # a second ending is ignored
    assert len(surface.edits(final=True)) == 1


# --- surface errors ------------------------------------------------------------------------


async def test_failing_edits_do_not_end_the_turn_and_final_retries_once() -> None:
    surface = RecordingSurface(fail_edits=1000)
    renderer = await started(surface)
    renderer.feed(TextResponse("one "))
    await surface.wait_until(lambda: len(surface.edits()) >= 1)
    renderer.feed(TextResponse("two"))
    await surface.wait_until(lambda: len(surface.edits()) >= 2)
    surface.fail_edits = 0
    surface.fail_final_edits = 1
    await renderer.finish()
    finals = surface.edits(final=True)
    assert len(finals) == 2  # the first failed, the retry got through
    assert surface.last().text == "one two"


async def test_failed_first_post_is_retried_by_a_later_flush() -> None:
    surface = RecordingSurface(fail_posts=1)
    renderer = await started(surface)
    assert renderer.message_ids == []
    renderer.feed(TextResponse("still here"))
    await renderer.finish()
    assert renderer.message_ids == ["m1"]
    assert surface.messages["m1"].text == "still here"
    assert surface.messages["m1"].buttons == (REGEN,)


# --- pages ---------------------------------------------------------------------------------


def assert_pages(surface: RecordingSurface, renderer: ReplyRenderer, text: str) -> None:
    ids = renderer.message_ids
    assert ids == list(surface.messages)
    views = [surface.messages[i] for i in ids]
    assert "".join(v.text for v in views) == text
    limit = surface.limits.max_text
    for view in views[:-1]:
        assert view.status == "" and view.buttons == ()
        assert 0 < len(view.text) <= limit
    last = views[-1]
    assert last.buttons == (REGEN,)
    assert len(last.text) + len(last.status) + 2 <= limit


async def test_hard_split_only_without_whitespace() -> None:
    surface = RecordingSurface(max_text=2000)
    renderer = await started(surface)
    text = "x" * 5000
    renderer.feed(TextResponse(text))
    await renderer.finish()
    assert [len(surface.messages[i].text) for i in renderer.message_ids] == [2000, 2000, 1000]
    assert_pages(surface, renderer, text)


@pytest.mark.parametrize(
    ("text", "pages"),
    [
        # the last space before the limit; the space stays at the end of the page
        ("a" * 1500 + " " + "b" * 400 + " " + "c" * 300, ["a" * 1500 + " " + "b" * 400 + " "]),
        # a line break in the second half of the window wins over a later space
        ("a" * 1500 + "\n" + "b" * 400 + " " + "c" * 300, ["a" * 1500 + "\n"]),
        # a line break early in the window loses to the last space
        ("a" * 100 + "\n" + "b" * 1800 + " " + "c" * 300, ["a" * 100 + "\n" + "b" * 1800 + " "]),
        # a leading space alone would be an empty-looking page: cut hard instead
        (" " + "x" * 2500, [" " + "x" * 1999]),
    ],
)
async def test_split_points(text: str, pages: list[str]) -> None:
    surface = RecordingSurface(max_text=2000)
    renderer = await started(surface)
    renderer.feed(TextResponse(text))
    await renderer.finish()
    shown = [surface.messages[i].text for i in renderer.message_ids]
    assert shown[0] == pages[0]
    assert_pages(surface, renderer, text)


async def _stream_in_pieces(text: str, chunk_max: int, rng: random.Random) -> None:
    surface = RecordingSurface(max_text=2000)
    renderer = await started(surface)
    pos = 0
    while pos < len(text):
        size = rng.randint(1, chunk_max)
        renderer.feed(TextResponse(text[pos : pos + size]))
        pos += size
        if rng.random() < 0.3:
            await asyncio.sleep(0)  # let the flusher show intermediate states
    await renderer.finish()
    assert_pages(surface, renderer, text)
    assert renderer.text == text


def _random_text(rng: random.Random, *, length: int, space: float, newline: float) -> str:
    out = []
    for _ in range(length):
        roll = rng.random()
        out.append("\n" if roll < newline else " " if roll < newline + space else "é")
    return "".join(out)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    length=st.integers(0, 10_000),
    space=st.sampled_from([0.0, 0.0005, 0.01, 0.2, 0.9]),
    newline=st.sampled_from([0.0, 0.0005, 0.01, 0.1]),
    chunk_max=st.integers(1, 3000),
)
def test_pages_concatenate_to_exactly_the_text(
    seed: int, length: int, space: float, newline: float, chunk_max: int
) -> None:
    rng = random.Random(seed)
    text = _random_text(rng, length=length, space=space, newline=newline)
    asyncio.run(_stream_in_pieces(text, chunk_max, rng))


async def test_long_text_with_status_and_sources_splits_without_loss() -> None:
    surface = RecordingSurface(max_text=500)
    renderer = await started(surface)
    rng = random.Random(7)
    text = _random_text(rng, length=3000, space=0.15, newline=0.02)
    for i in range(0, len(text), 37):
        renderer.feed(TextResponse(text[i : i + 37]))
        renderer.feed(ThinkingDelta("ignored"))
        if i % 370 == 0:
            await asyncio.sleep(0)
    renderer.feed(WebSearchCitations((("T", "https://t.example/"),)))
    await renderer.finish()
    shown = "".join(surface.messages[i].text for i in renderer.message_ids)
    assert shown == text + "\n\n**Sources:**\n- [T](https://t.example/)"
    for message_id in renderer.message_ids[:-1]:
        assert surface.messages[message_id].buttons == ()


async def test_a_page_turn_while_streaming_costs_one_call() -> None:
    """Discord allows ~5 calls per 5 s per channel: a page turn that edited the old page
    and then posted the new one would leave the live text stale for a whole extra window.
    While streaming, the old page is cut where its text already ends; its stale status
    line goes with the final flush, after the live message's final edit."""
    surface = RecordingSurface(max_text=200)
    renderer = await started(surface)
    words = [f"word{n:04d} " for n in range(200)]  # 2,000 characters: about 10 pages
    for word in words:
        renderer.feed(TextResponse(word))
        await asyncio.sleep(0.002)  # the flusher shows intermediate states
    before_final = list(surface.calls)
    ids = renderer.message_ids
    assert len(ids) >= 6
    posted_at = {c.message_id: n for n, c in enumerate(before_final) if c.kind == "post"}
    for old, new in itertools.pairwise(ids):  # nothing touched a page once the next existed
        later = before_final[posted_at[new] :]
        assert not [c for c in later if c.message_id == old], old
        assert surface.messages[old].text.endswith(" ")  # and it ended at a word break
    # no extra call finished an old page at a page turn: every call so far was a live one
    assert all(c.view.status for c in before_final), "a page was completed mid-stream"
    calls_before_final = len(surface.calls)
    await renderer.finish()
    first_final = surface.calls[calls_before_final]
    assert first_final.message_id == renderer.message_ids[-1]  # the live message first
    assert_pages(surface, renderer, "".join(words))


# --- where pages and sections are cut ------------------------------------------------------

# Tokens a text is built from, with the positions inside each that no cut may split: a
# combining accent, a joined emoji family, a flag (two regional indicators), skin tone,
# a variation selector, "\r\n", a surrogate pair left as two code points.
_CLUSTERS = [
    "e\u0301",
    "\U0001f468\u200d\U0001f469\u200d\U0001f467",
    "\U0001f1f9\U0001f1f7",
    "\U0001f44d\U0001f3fd",
    "\u2764\ufe0f",
    "\ud83c\udf05",
    "\u0915\u094d\u0937",  # Devanagari conjunct: virama between two letters
]
_SEPARATORS = [" ", "\n", "\r\n", "\t", "\n\n", "  "]


@st.composite
def cut_texts(draw: st.DrawFn, *, longest_word: int = 40) -> tuple[str, set[int]]:
    """A text of words, clusters, code fences and separators, plus the cut positions that
    would split a character as a person sees it."""
    out: list[str] = []
    forbidden: set[int] = set()
    length = 0
    for _ in range(draw(st.integers(0, 300))):
        kind = draw(st.sampled_from(["word", "word", "cluster", "sep", "sep", "fence"]))
        if kind == "word":
            token = draw(st.text("abcxyzé🌅ı0", min_size=1, max_size=longest_word))
        elif kind == "cluster":
            token = draw(st.sampled_from(_CLUSTERS))
        elif kind == "fence":
            token = "```\n" + draw(st.text("ab (){};=", max_size=30)) + "\n```"
        else:
            token = draw(st.sampled_from(_SEPARATORS))
        if kind == "cluster" or token == "\r\n":
            forbidden.update(range(length + 1, length + len(token)))
        out.append(token)
        length += len(token)
    return "".join(out), forbidden


def _breakable(text: str, start: int, end: int, forbidden: set[int]) -> bool:
    """Whether `text[start:end]` holds a cut right after whitespace that splits nothing
    and leaves more than whitespace before it."""
    return any(
        text[p - 1] in " \t\n" and p not in forbidden and not text[start:p].isspace()
        for p in range(start + 1, end + 1)
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sample=cut_texts(), limit=st.integers(8, 300))
def test_split_text_reads_back_exactly_and_cuts_after_whitespace(
    sample: tuple[str, set[int]], limit: int
) -> None:
    text, forbidden = sample
    pieces = split_text(text, limit)
    assert "".join(pieces) == text
    assert all(0 < len(p) <= limit for p in pieces)
    start = 0
    for piece in pieces[:-1]:
        end = start + len(piece)
        if _breakable(text, start, start + limit, forbidden):
            assert piece[-1] in " \t\n", (start, piece)
            assert end not in forbidden
        elif any(p not in forbidden for p in range(start + 1, start + limit + 1)):
            assert end not in forbidden  # a hard cut, but between two characters
        start = end


@settings(max_examples=200, deadline=None)
@given(
    sample=cut_texts(),
    limit=st.integers(8, 300),
    start_at=st.floats(0, 1),
    floor_at=st.floats(0, 1),
)
def test_page_end_never_takes_back_what_a_message_shows(
    sample: tuple[str, set[int]], limit: int, start_at: float, floor_at: float
) -> None:
    text, _ = sample
    if not text:
        return
    start = int(start_at * (len(text) - 1))
    window = min(limit, len(text) - start)
    floor = int(floor_at * window)
    end = page_end(text, start, limit, floor=floor)
    assert start + max(floor, 1) <= end <= start + window


def test_split_text_of_words_longer_than_the_limit_cuts_hard() -> None:
    text = "x" * 25 + " " + "y" * 7
    assert split_text(text, 10) == ["x" * 10, "x" * 10, "xxxxx ", "y" * 7]
    assert split_text("", 10) == []
    assert split_text("short", 10) == ["short"]


def test_hard_cuts_never_split_a_character_a_person_sees() -> None:
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    pieces = split_text("a" * 8 + family + "b" * 8, 10)
    assert "".join(pieces) == "a" * 8 + family + "b" * 8
    assert pieces[0] == "a" * 8  # not "a" * 8 + the man and the joiner
    accented = split_text("x" * 9 + "e\u0301" + "y" * 5, 10)
    assert accented[0] == "x" * 9 and accented[1].startswith("e\u0301")
    assert split_text("x" * 9 + "\r\n" + "y", 10)[0] == "x" * 9  # never between \r and \n


# --- a message's text only grows ------------------------------------------------------------


class AppendOnlySurface(RecordingSurface):
    """Like Slack's native streaming: a message can gain text, never lose it."""

    async def edit(self, message_id: str, view: View, *, final: bool = False) -> None:
        before = self.messages[message_id].text
        assert view.text.startswith(before), f"{message_id} lost {before[len(view.text) :]!r}"
        await super().edit(message_id, view, final=final)


async def _stream_and_read_back(
    surface: RecordingSurface, text: str, chunk_max: int, rng: random.Random
) -> list[str]:
    renderer = await started(surface)
    pos = 0
    while pos < len(text):
        size = rng.randint(1, chunk_max)
        renderer.feed(TextResponse(text[pos : pos + size]))
        pos += size
        if rng.random() < 0.3:
            await asyncio.sleep(0)  # let the flusher show intermediate states
    await renderer.finish()
    assert_pages(surface, renderer, text)
    return [surface.messages[i].text for i in renderer.message_ids]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sample=cut_texts(longest_word=12),
    seed=st.integers(0, 2**32 - 1),
    chunk_max=st.integers(1, 400),
    max_text=st.sampled_from([120, 200, 500]),
)
def test_streamed_pages_only_grow_and_end_after_whitespace(
    sample: tuple[str, set[int]], seed: int, chunk_max: int, max_text: int
) -> None:
    text, forbidden = sample
    rng = random.Random(seed)
    surface = AppendOnlySurface(max_text=max_text)
    pages = asyncio.run(_stream_and_read_back(surface, text, chunk_max, rng))
    longest_run = max((len(run) for run in re.split(r"[ \t\n]", text)), default=0)
    start = 0
    for page in pages[:-1]:
        start += len(page)
        assert start not in forbidden
        if longest_run * 8 <= max_text:  # a break is always within reach of a page's end
            assert page[-1] in " \t\n", repr(page[-40:])
