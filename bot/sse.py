"""An incremental Server-Sent Events decoder: bytes in, events out.

It follows the WHATWG "event stream interpretation" rules in full (`\\n`, `\\r\\n` and `\\r`
line ends, comments, `event`/`data`/`id`/`retry` fields, one optional space after the colon,
multi-line `data`, a leading BOM stripped once, an unterminated event dropped at EOF) and is
pure: no I/O, no clocks, so it can be fuzzed and reused by any transport.

It sits on the hot path of every streamed turn, so it works on whole chunks of *bytes* with
C-level operations and drops to a Python loop per line only where a chunk is not the plain
`data: X`, blank, `data: Y`, blank... shape that nearly all each::sense traffic has. For that
shape (keep-alive comments between events allowed) the chunk's whole events are decoded with
one `bytes.decode` and cut into payloads with one `str.split`: no object per line, and no
Python code per event, down to building the events (`_plain_events`). Other chunks take a
vectorised path per line (`bytes.split` and `map`), and only what remains goes line by line.
Text is decoded per field value or per run of values, never per stream: line ends and colons
are ASCII, which UTF-8 never uses inside a multi-byte character, so a value decoded on its own
reads exactly as it would in the whole decoded stream, and a character split across chunks
needs no special care.

Memory is bounded: a line longer than `max_line_bytes` (finished or not) or an event whose
data grows past `max_event_bytes` raises `StreamTooLarge`, whatever the chunking, so a server
that never sends a line end cannot make the bot buffer without limit. Keep-alive comments
(`: ping`) keep a connection's idle timeout from firing but carry nothing: `events_seen`
and `comments_seen` count what a stream actually delivered, and `StallWatch` turns a
comment-only stretch longer than the caller's limit into `StreamStalled`.
"""

from __future__ import annotations

from itertools import repeat
from operator import itemgetter
from typing import NamedTuple

from bot.errors import IdleTimeout, StreamCut

MAX_LINE_BYTES = 1 << 20  # 1 MiB: an each::sense event is a few hundred bytes to a few KiB
MAX_EVENT_BYTES = 4 << 20  # 4 MiB of `data` in one event

_BOM = b"\xef\xbb\xbf"
_AFTER_DATA = itemgetter(slice(6, None))  # a `data: ` line's value
_RUN_SEP = "\n\ndata: "  # between two plain single-line events in a run


class StreamTooLarge(StreamCut):
    """A line or an event over the decoder's caps: the stream is abandoned, not buffered."""

    default_message = "each::sense sent a message too large to read; please try again."


class StreamStalled(IdleTimeout):
    """Only keep-alive comments (or nothing that completes an event) for too long."""

    default_message = (
        "each::sense stopped sending anything but keep-alive pings. "
        "Send your message again to continue."
    )


class SSEEvent(NamedTuple):
    """One dispatched event: an immutable named tuple, because one C-level call builds it
    (a slotted dataclass costs about twice as much, and a turn is thousands of events).

    `id` is the stream's *last event id* when the event was dispatched: per the spec it
    persists across events until an `id` field changes it. `retry` is the `retry` value
    (milliseconds) given in this event's own block, if any.
    """

    data: str
    event: str = "message"
    id: str | None = None
    retry: int | None = None


_new_tuple = tuple.__new__
# Infinite and stateless, so one of each serves every call (`zip` stops with the payloads).
_EVENT_TYPES = repeat(SSEEvent)
_MESSAGE = repeat("message")
_NONE = repeat(None)


def _text(value: bytes) -> str:
    return value.decode("utf-8", "replace")


def _plain_events(texts: list[str], last_id: str | None) -> list[SSEEvent]:
    """`[SSEEvent(t, "message", last_id) for t in texts]` in C: `map` calls
    `tuple.__new__` on each zipped field tuple, with no Python frame per event (the named
    tuple's own `__new__` is Python code, about three times slower)."""
    ids = _NONE if last_id is None else repeat(last_id)
    # no `strict=` (a keyword costs zip more than a small chunk's events): repeats never end
    return list(map(_new_tuple, _EVENT_TYPES, zip(texts, _MESSAGE, ids, _NONE)))  # noqa: B905


class SSEDecoder:
    """Feed network chunks, get the events they complete.

    One decoder per stream. `feed` may be called with chunks split anywhere, even inside a
    UTF-8 character or a `\\r\\n` pair; the events are the same as for the whole stream.

    Caps: a line (without its line end) longer than `max_line_bytes`, counted as soon as its
    bytes are buffered, or an event whose data (its `data` values joined by `\\n`) exceeds
    `max_event_bytes`, raises `StreamTooLarge` (from `feed`, or from `close` for the
    unfinished last line); the decoder is then spent. The decision depends only on the
    stream's bytes, never on how they were chunked. The defaults are far above any event
    each::sense sends and far below what would hurt a process.

    Counters, for a caller that enforces a maximum stall (see `StallWatch`): `events_seen`
    is the number of events dispatched so far, `comments_seen` the number of comment lines
    (keep-alive pings) read so far. A stretch in which `comments_seen` moves and
    `events_seen` does not is a stream kept open by pings alone.
    """

    __slots__ = (
        "_data",
        "_data_len",
        "_dirty",
        "_event_type",
        "_head",
        "_last_id",
        "_pending",
        "_pending_len",
        "_retry",
        "_skip_lf",
        "comments_seen",
        "events_seen",
        "max_event_bytes",
        "max_line_bytes",
        "retry",
    )

    def __init__(
        self, *, max_line_bytes: int = MAX_LINE_BYTES, max_event_bytes: int = MAX_EVENT_BYTES
    ) -> None:
        if max_line_bytes < 1 or max_event_bytes < 1:
            raise ValueError("the caps must be at least one byte")
        self.max_line_bytes = max_line_bytes
        self.max_event_bytes = max_event_bytes
        self._head: bytes | None = b""  # bytes held until we know whether a BOM starts them
        self._pending: list[bytes] = []  # the start of a line whose end has not arrived
        self._pending_len = 0
        self._skip_lf = False  # the last chunk ended in "\r": a leading "\n" is its pair
        self._data: list[bytes] = []
        self._data_len = 0  # bytes in `_data` plus one per value (the spec's data buffer)
        self._event_type = b""
        self._last_id: str | None = None
        self._retry: int | None = None
        self._dirty = False  # a field of the event being built was set
        self.retry: int | None = None
        """The latest reconnection time (ms) the stream asked for, kept across events."""
        self.events_seen = 0
        """Events dispatched so far (by `feed` and `close`)."""
        self.comments_seen = 0
        """Comment lines (`: ping` keep-alives) read so far."""

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Consume one chunk; return the events it completed, in order."""
        if self._head is not None:
            chunk = self._strip_bom(chunk)
        if not chunk:
            return []
        if self._skip_lf:
            self._skip_lf = False
            if chunk[0] == 10:  # "\n"
                chunk = chunk[1:]
                if not chunk:
                    return []
        if 13 in chunk:  # "\r" (an int test is a bare memchr, a bytes test is not)
            # A trailing "\r" already ends its line; remember to drop the "\n" of a "\r\n"
            # pair split across chunks so it does not count as a second (blank) line.
            self._skip_lf = chunk[-1] == 13
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if 10 not in chunk:  # no "\n": the line goes on
            self._pending.append(chunk)  # keeps one very long line linear, not quadratic
            self._pending_len += len(chunk)
            if self._pending_len > self.max_line_bytes:
                raise self._too_large(f"a line over {self.max_line_bytes} bytes")
            return []
        pending = self._pending
        if pending:
            pending.append(chunk)
            chunk = b"".join(pending)
            self._pending = []
            self._pending_len = 0
        if len(chunk) > self.max_line_bytes:
            self._check_lines(chunk)
        events = self._lines(chunk) if self._dirty else self._run(chunk)
        self.events_seen += len(events)
        return events

    def close(self, *, dispatch_incomplete: bool = False) -> list[SSEEvent]:
        """End of stream. Per the spec an event not ended by a blank line is discarded, so
        this normally returns nothing; `dispatch_incomplete=True` instead dispatches it,
        for callers that choose to tolerate a server omitting the final blank line."""
        events: list[SSEEvent] = []
        if self._head and len(self._head) > self.max_line_bytes:
            # the start of a BOM, held to see whether the rest follows: it was a line
            raise self._too_large(f"a line over {self.max_line_bytes} bytes")
        if dispatch_incomplete:
            if self._head:
                self._pending.append(self._head)
            if self._pending:
                self._line(b"".join(self._pending), events)
            self._dispatch(events)
        self._head = None
        self._pending = []
        self._pending_len = 0
        self._reset_event()
        self.events_seen += len(events)
        return events

    # --- internals ---------------------------------------------------------------------

    def _strip_bom(self, chunk: bytes) -> bytes:
        """Drop one leading UTF-8 BOM, even one split across chunks."""
        head = (self._head or b"") + chunk
        if len(head) < 3 and _BOM.startswith(head):
            self._head = head
            return b""
        self._head = None
        return head[3:] if head.startswith(_BOM) else head

    def _too_large(self, what: str) -> StreamTooLarge:
        return StreamTooLarge(detail=f"SSE stream abandoned: {what}")

    def _check_lines(self, buf: bytes) -> None:
        """Raise if a line of `buf` (the unfinished last one included) is over the cap.
        Only called for a buffer longer than the cap, so the common case pays nothing."""
        if max(map(len, buf.split(b"\n"))) > self.max_line_bytes:
            raise self._too_large(f"a line over {self.max_line_bytes} bytes")

    def _hold(self, tail: bytes) -> None:
        """Keep the unfinished last line of a buffer for the next chunk."""
        if tail:
            self._pending.append(tail)
            self._pending_len = len(tail)

    def _run(self, buf: bytes) -> list[SSEEvent]:
        """The fastest path, for a buffer that starts a line with no event half-built.

        After any leading comments and blank lines (no-ops here), the buffer's whole events
        are usually all `data: X` + blank line, each X one valid UTF-8 line, maybe with a
        keep-alive comment between two of them: then one decode and one split make every
        payload, with no object per line. Anything else goes to `_lines`, which is exact
        for every shape."""
        first = buf[0]
        if first == 10 or first == 58:  # a blank line or a comment first
            buf = self._skip_noops(buf)
            if 10 not in buf:
                self._hold(buf)
                return []
        end = buf.rfind(b"\n\n")
        if end < 6 or end > self.max_event_bytes or not buf.startswith(b"data: "):
            return self._lines(buf)
        try:
            texts = buf[6:end].decode().split(_RUN_SEP)
        except UnicodeDecodeError:
            return self._lines(buf)
        # One memchr over a joined copy is several times cheaper than a test per payload.
        if "\n" in "".join(texts):
            plain = self._without_comment_blocks(texts)
            if plain is None:
                return self._lines(buf)  # another field, a multi-line value...
            texts = plain
        events = _plain_events(texts, self._last_id)
        tail = buf[end + 2 :]
        if tail:
            if 10 in tail:
                events += self._lines(tail)
            else:
                self._pending.append(tail)
                self._pending_len = len(tail)
        return events

    def _skip_noops(self, buf: bytes) -> bytes:
        """`buf` without its leading blank lines and comment lines, which change nothing
        when no event is half-built; an unfinished comment line is left in place."""
        while buf:
            if buf[0] == 10:
                buf = buf.lstrip(b"\n")
            elif buf[0] == 58:  # ":"
                end = buf.find(b"\n")
                if end < 0:
                    break
                self.comments_seen += 1
                buf = buf[end + 1 :]
            else:
                break
        return buf

    def _without_comment_blocks(self, texts: list[str]) -> list[str] | None:
        """The payloads of a run whose events were separated by comment blocks as well
        (`data: X`, blank, `: ping`, blank, `data: Y`...), which split into `X\n\n: ping`
        and `Y`; None unless every extra line is a comment or a blank line."""
        kept: list[str] = []
        comments = 0
        for text in texts:
            if "\n" in text:
                head, *blocks = text.split("\n\n")
                if "\n" in head:
                    return None
                for block in blocks:
                    if block:
                        if block[0] != ":" or "\n" in block:
                            return None
                        comments += 1
                text = head
            kept.append(text)
        self.comments_seen += comments
        return kept

    def _lines(self, buf: bytes) -> list[SSEEvent]:
        """Interpret `buf`: whole lines ended by "\\n" (the only line end by now), then
        at most one unfinished line, which waits for the next chunk."""
        events: list[SSEEvent] = []
        lines = buf.split(b"\n")
        self._hold(lines.pop())
        count = len(lines)
        i = 0
        while i < count and (self._dirty or not lines[i]):
            # Finish, line by line, an event begun in an earlier chunk.
            self._line(lines[i], events)
            i += 1
        if i == count:
            return events
        if not self._simple_run(lines, i, events):
            rest = self._without_noops(lines, i)
            if not self._simple_run(rest, 0, events):
                for line in rest:
                    self._line(line, events)
        return events

    def _without_noops(self, lines: list[bytes], start: int) -> list[bytes]:
        """`lines[start:]` without the lines that cannot change anything, given that no
        event is half-built at `start`: comments (keep-alive pings, counted) and a blank
        line that follows a blank line (or comes first), since the event it would end is
        already empty. Removing them is exact and lets a chunk with a ping still take the
        fast path."""
        kept: list[bytes] = []
        blank = True
        comments = 0
        for line in lines[start:]:
            if line:
                if line[0] != 58:  # ":" starts a comment
                    kept.append(line)
                    blank = False
                else:
                    comments += 1
            elif not blank:
                kept.append(line)
                blank = True
        self.comments_seen += comments
        return kept

    def _simple_run(self, lines: list[bytes], start: int, events: list[SSEEvent]) -> bool:
        """Fast path for `data: X`, blank, `data: Y`, blank... (and maybe one last `data:`
        line whose blank line is still to come), with no event half-built. Checked and
        converted with C-level `map`s instead of a Python loop per line. False, with nothing
        consumed, for any other shape or for a value that is not valid UTF-8: the caller
        then goes line by line."""
        end = start + (len(lines) - start) // 2 * 2
        values = lines[start:end:2]
        if any(lines[start + 1 : end : 2]):
            return False
        if not all(map(bytes.startswith, values, repeat(b"data: "))):
            return False
        if values and max(map(len, values)) - 6 > self.max_event_bytes:
            return False  # line by line, where the cap is enforced
        try:
            texts = list(map(bytes.decode, map(_AFTER_DATA, values)))
        except UnicodeDecodeError:
            return False
        events.extend(_plain_events(texts, self._last_id))
        if end < len(lines):
            self._line(lines[end], events)  # an odd last line: its event ends next chunk
        return True

    def _line(self, line: bytes, events: list[SSEEvent]) -> None:
        if not line:
            self._dispatch(events)
            return
        colon = line.find(b":")
        if colon == 0:
            self.comments_seen += 1  # a comment, e.g. a keep-alive ": ping"
            return
        if colon < 0:
            name, value = line, b""
        else:
            name = line[:colon]
            value = line[colon + 2 :] if line[colon + 1 : colon + 2] == b" " else line[colon + 1 :]
        if name == b"data":
            self._data.append(value)
            self._data_len += len(value) + 1
            if self._data_len > self.max_event_bytes + 1:
                raise self._too_large(f"an event over {self.max_event_bytes} bytes")
            self._dirty = True
        elif name == b"event":
            self._event_type = value
            self._dirty = True
        elif name == b"id":
            if b"\0" not in value:
                self._last_id = _text(value)
        elif name == b"retry":
            if value.isdigit():  # bytes.isdigit is ASCII digits only, as the spec wants
                self._retry = self.retry = int(value)
                self._dirty = True
        # any other field name is ignored, as the spec says

    def _dispatch(self, events: list[SSEEvent]) -> None:
        if not self._dirty:
            return
        data = self._data
        if data:
            raw = data[0] if len(data) == 1 else b"\n".join(data)
            kind = _text(self._event_type) if self._event_type else "message"
            events.append(SSEEvent(_text(raw), kind, self._last_id, self._retry))
        self._reset_event()

    def _reset_event(self) -> None:
        self._data = []
        self._data_len = 0
        self._event_type = b""
        self._retry = None
        self._dirty = False


class StallWatch:
    """Ends a stream that stays open on keep-alive comments alone.

    A server that sends `: ping` every few seconds resets every idle timeout, so a turn
    stuck upstream would otherwise stay open for good. Call `check(now)` after each
    `decoder.feed` (and whenever else is convenient) with the caller's own clock: it
    raises `StreamStalled` once no event has been dispatched for more than `max_stall`
    seconds, however many comments or partial lines arrived meanwhile. Pure: it reads the
    decoder's `events_seen` counter and the times it is given, nothing else.

    `last_event_at` is when (on the caller's clock) an event was last seen, for callers
    that prefer to apply their own rule (for example a whole-turn deadline in the core).
    """

    __slots__ = ("_decoder", "_events", "last_event_at", "max_stall")

    def __init__(self, decoder: SSEDecoder, *, max_stall: float | None, now: float) -> None:
        self._decoder = decoder
        self._events = decoder.events_seen
        self.max_stall = max_stall
        self.last_event_at = now

    def check(self, now: float) -> None:
        events = self._decoder.events_seen
        if events != self._events:
            self._events = events
            self.last_event_at = now
            return
        stalled = now - self.last_event_at
        if self.max_stall is not None and stalled > self.max_stall:
            raise StreamStalled(
                detail=(
                    f"no SSE event for {stalled:.0f} s "
                    f"({self._decoder.comments_seen} comment lines so far)"
                )
            )
