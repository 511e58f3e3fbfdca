"""An incremental Server-Sent Events decoder: bytes in, events out.

It follows the WHATWG "event stream interpretation" rules in full (`\\n`, `\\r\\n` and `\\r`
line ends, comments, `event`/`data`/`id`/`retry` fields, one optional space after the colon,
multi-line `data`, a leading BOM stripped once, an unterminated event dropped at EOF) and is
pure: no I/O, no clocks, so it can be fuzzed and reused by any transport.

It sits on the hot path of every streamed turn, so it works on whole chunks of *bytes*
with C-level operations (`bytes.split`, `bytes.replace`, `map`) and drops to a Python loop per
line only for chunks that are not the plain `data: X`, blank, `data: Y`, blank... shape that
nearly all each::sense traffic has. Text is decoded per field value, never per stream: line
ends and colons are ASCII, which UTF-8 never uses inside a multi-byte character, so a value
decoded on its own (errors replaced) reads exactly as it would in the whole decoded stream,
and a character split across chunks needs no special care.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import repeat
from operator import itemgetter
from typing import Any

_BOM = b"\xef\xbb\xbf"
_AFTER_DATA = itemgetter(slice(6, None))  # a `data: ` line's value


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One dispatched event.

    `id` is the stream's *last event id* when the event was dispatched: per the spec it
    persists across events until an `id` field changes it. `retry` is the `retry` value
    (milliseconds) given in this event's own block, if any.
    """

    data: str
    event: str = "message"
    id: str | None = None
    retry: int | None = None


def _slot_setter(name: str) -> Callable[[SSEEvent, Any], None]:
    """The member descriptor's `__set__` for one of SSEEvent's slots (see `_plain_events`)."""
    descriptor: Any = SSEEvent.__dict__[name]
    setter: Callable[[SSEEvent, Any], None] = descriptor.__set__
    return setter


_SET_DATA = _slot_setter("data")
_SET_EVENT = _slot_setter("event")
_SET_ID = _slot_setter("id")
_SET_RETRY = _slot_setter("retry")


def _text(value: bytes) -> str:
    return value.decode("utf-8", "replace")


def _plain_events(texts: list[str], last_id: str | None) -> list[SSEEvent]:
    """`[SSEEvent(t, "message", last_id) for t in texts]`, about five times faster.

    The dataclass `__init__` is Python code that calls `object.__setattr__` per field, which
    made building events the decoder's largest cost. Here every step is a C-level `map`:
    allocate the instances, then set each slot through its member descriptor (which a frozen
    dataclass allows: only `__setattr__` is blocked). The result is an ordinary instance.
    """
    count = len(texts)
    events: list[SSEEvent] = list(map(object.__new__, repeat(SSEEvent, count)))
    # `any` drains each map in C; the setters return None, so it never stops early.
    any(map(_SET_DATA, events, texts))
    any(map(_SET_EVENT, events, repeat("message", count)))
    any(map(_SET_ID, events, repeat(last_id, count)))
    any(map(_SET_RETRY, events, repeat(None, count)))
    return events


def _without_noops(lines: list[bytes], start: int) -> list[bytes]:
    """`lines[start:]` without the lines that cannot change anything, given that no event
    is half-built at `start`: comments (keep-alive pings) and a blank line that follows a
    blank line (or comes first), since the event it would end is already empty. Removing
    them is exact and lets a chunk with a ping still take the fast path."""
    kept: list[bytes] = []
    blank = True
    for line in lines[start:]:
        if line:
            if line[0] != 58:  # ":" starts a comment
                kept.append(line)
                blank = False
        elif not blank:
            kept.append(line)
            blank = True
    return kept


class SSEDecoder:
    """Feed network chunks, get the events they complete.

    One decoder per stream. `feed` may be called with chunks split anywhere, even inside a
    UTF-8 character or a `\\r\\n` pair; the events are the same as for the whole stream.
    """

    __slots__ = (
        "_data",
        "_dirty",
        "_event_type",
        "_head",
        "_last_id",
        "_pending",
        "_retry",
        "_skip_lf",
        "retry",
    )

    def __init__(self) -> None:
        self._head: bytes | None = b""  # bytes held until we know whether a BOM starts them
        self._pending: list[bytes] = []  # the start of a line whose end has not arrived
        self._skip_lf = False  # the last chunk ended in "\r": a leading "\n" is its pair
        self._data: list[bytes] = []
        self._event_type = b""
        self._last_id: str | None = None
        self._retry: int | None = None
        self._dirty = False  # a field of the event being built was set
        self.retry: int | None = None
        """The latest reconnection time (ms) the stream asked for, kept across events."""

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
        if b"\r" in chunk:
            # A trailing "\r" already ends its line; remember to drop the "\n" of a "\r\n"
            # pair split across chunks so it does not count as a second (blank) line.
            self._skip_lf = chunk[-1] == 13
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if b"\n" not in chunk:
            self._pending.append(chunk)  # keeps one very long line linear, not quadratic
            return []
        if self._pending:
            self._pending.append(chunk)
            chunk = b"".join(self._pending)
            self._pending = []
        return self._lines(chunk)

    def close(self, *, dispatch_incomplete: bool = False) -> list[SSEEvent]:
        """End of stream. Per the spec an event not ended by a blank line is discarded, so
        this normally returns nothing; `dispatch_incomplete=True` instead dispatches it,
        for callers that choose to tolerate a server omitting the final blank line."""
        events: list[SSEEvent] = []
        if dispatch_incomplete:
            if self._head:
                self._pending.append(self._head)
            if self._pending:
                self._line(b"".join(self._pending), events)
            self._dispatch(events)
        self._head = None
        self._pending = []
        self._reset_event()
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

    def _lines(self, buf: bytes) -> list[SSEEvent]:
        """Interpret `buf`: whole lines ended by "\\n" (the only line end by now), then
        at most one unfinished line, which waits for the next chunk."""
        events: list[SSEEvent] = []
        lines = buf.split(b"\n")
        tail = lines.pop()
        if tail:
            self._pending.append(tail)
        count = len(lines)
        i = 0
        while i < count and (self._dirty or not lines[i]):
            # Finish, line by line, an event begun in an earlier chunk.
            self._line(lines[i], events)
            i += 1
        if i == count:
            return events
        if not self._simple_run(lines, i, events):
            rest = _without_noops(lines, i)
            if not self._simple_run(rest, 0, events):
                for line in rest:
                    self._line(line, events)
        return events

    def _simple_run(self, lines: list[bytes], start: int, events: list[SSEEvent]) -> bool:
        """Fast path for the shape nearly every chunk has: `data: X`, blank, `data: Y`,
        blank... (and maybe one last `data:` line whose blank line is still to come), with
        no event half-built. Checked and converted with C-level `map`s instead of a Python
        loop per line. False, with nothing consumed, for any other shape or for a value that
        is not valid UTF-8: the caller then goes line by line."""
        end = start + (len(lines) - start) // 2 * 2
        values = lines[start:end:2]
        if any(lines[start + 1 : end : 2]):
            return False
        if not all(map(bytes.startswith, values, repeat(b"data: "))):
            return False
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
            return  # a comment, e.g. a keep-alive ": ping"
        if colon < 0:
            name, value = line, b""
        else:
            name = line[:colon]
            value = line[colon + 2 :] if line[colon + 1 : colon + 2] == b" " else line[colon + 1 :]
        if name == b"data":
            self._data.append(value)
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
        self._event_type = b""
        self._retry = None
        self._dirty = False
