"""The SSE decoder against the WHATWG event-stream rules, one rule per test, plus property
tests: any chunking of a stream gives the events of the whole stream, and both match a
plain line-by-line reading of the spec."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.errors import IdleTimeout, StreamCut
from bot.sse import SSEDecoder, SSEEvent, StallWatch, StreamStalled, StreamTooLarge


def decode(stream: bytes, *, sizes: list[int] | None = None) -> list[SSEEvent]:
    """Feed `stream` whole, or cut into pieces of the given sizes (cycled)."""
    decoder = SSEDecoder()
    events: list[SSEEvent] = []
    if sizes is None:
        events += decoder.feed(stream)
    else:
        pos, k = 0, 0
        while pos < len(stream):
            step = max(1, sizes[k % len(sizes)])
            events += decoder.feed(stream[pos : pos + step])
            pos += step
            k += 1
    events += decoder.close()
    return events


def reference(stream: bytes) -> list[SSEEvent]:
    """The spec's algorithm, written as plainly as possible (slow and obviously right)."""
    text = stream.decode("utf-8", "replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    parts = re.split(r"(\r\n|\r|\n)", text)
    lines = parts[0:-1:2]  # the text after the last line end is an unfinished line: dropped
    events: list[SSEEvent] = []
    data, kind, last_id, retry = "", "", None, None
    for line in lines:
        if line == "":
            if data:
                events.append(SSEEvent(data.removesuffix("\n"), kind or "message", last_id, retry))
            data, kind, retry = "", "", None
            continue
        if line.startswith(":"):
            continue
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            data += value + "\n"
        elif name == "event":
            kind = value
        elif name == "id" and "\0" not in value:
            last_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            retry = int(value)
    return events


# --- one rule at a time ----------------------------------------------------------------


def test_simple_event() -> None:
    assert decode(b"data: hello\n\n") == [SSEEvent("hello")]


@pytest.mark.parametrize("end", [b"\n", b"\r\n", b"\r"])
def test_every_line_end_style(end: bytes) -> None:
    stream = b"event: a" + end + b"data: x" + end + b"data: y" + end + end
    assert decode(stream) == [SSEEvent("x\ny", "a")]


def test_crlf_split_across_chunks_is_one_line_end() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: one\r") == []
    # The "\n" completes the "\r\n"; were it a second line end, "one" would dispatch now.
    assert decoder.feed(b"\n") == []
    assert decoder.feed(b"data: two\r\n\r\n") == [SSEEvent("one\ntwo")]


def test_cr_then_cr_is_two_line_ends() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: x\r") == []
    assert decoder.feed(b"\r") == [SSEEvent("x")]


def test_comment_lines_are_ignored() -> None:
    assert decode(b": ping\n\ndata: a\n: in the middle\ndata: b\n\n") == [SSEEvent("a\nb")]


def test_only_one_space_after_colon_is_stripped() -> None:
    assert decode(b"data:no space\n\ndata:  two spaces\n\n") == [
        SSEEvent("no space"),
        SSEEvent(" two spaces"),
    ]


def test_field_without_colon_has_empty_value() -> None:
    assert decode(b"data\n\n") == [SSEEvent("")]
    assert decode(b"data\ndata\n\n") == [SSEEvent("\n")]


def test_empty_data_buffer_dispatches_nothing() -> None:
    assert decode(b"event: lonely\n\nid: 3\n\ndata: x\n\n") == [SSEEvent("x", "message", "3")]


def test_event_type_resets_after_dispatch() -> None:
    assert decode(b"event: a\ndata: 1\n\ndata: 2\n\n") == [SSEEvent("1", "a"), SSEEvent("2")]


def test_empty_event_name_means_message() -> None:
    assert decode(b"event:\ndata: x\n\n") == [SSEEvent("x", "message")]


def test_last_event_id_persists_and_can_be_cleared() -> None:
    stream = b"id: 7\ndata: a\n\ndata: b\n\nid\ndata: c\n\n"
    assert [e.id for e in decode(stream)] == ["7", "7", ""]


def test_id_with_nul_is_ignored() -> None:
    assert decode(b"id: 1\n\nid: 2\x00x\ndata: a\n\n") == [SSEEvent("a", id="1")]


def test_retry_only_digits() -> None:
    decoder = SSEDecoder()
    events = decoder.feed(b"retry: 1500\ndata: a\n\nretry: 15s\ndata: b\n\nretry: \xd9\xa3\n\n")
    assert events == [SSEEvent("a", retry=1500), SSEEvent("b")]
    assert decoder.retry == 1500


def test_unknown_fields_are_ignored() -> None:
    assert decode(b"foo: bar\ndata: x\nDATA: y\n\n") == [SSEEvent("x")]


def test_bom_stripped_once_even_when_split() -> None:
    bom = b"\xef\xbb\xbf"
    stream = bom + b"data: a\n\n" + bom + b"data: b\n\n"
    expected = [SSEEvent("a")]  # a second BOM is part of the line: field "\ufeffdata"
    assert decode(stream) == expected
    assert decode(stream, sizes=[1]) == expected
    assert decode(bom + bom + b"data: x\n\n") == []


def test_utf8_split_across_chunks() -> None:
    stream = "data: héllo 🌅 wörld\n\n".encode()
    for size in range(1, 6):
        assert decode(stream, sizes=[size]) == [SSEEvent("héllo 🌅 wörld")]


def test_invalid_utf8_is_replaced() -> None:
    assert decode(b"data: a\xffb\n\n") == [SSEEvent("a\ufffdb")]
    assert decode(b"data: \xe2\x82\n\n", sizes=[7]) == [SSEEvent("\ufffd")]


def test_unterminated_event_is_dropped_at_close() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: done\n\ndata: half") == [SSEEvent("done")]
    assert decoder.close() == []


def test_close_can_dispatch_incomplete_event_on_request() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: [DONE]") == []
    assert decoder.close(dispatch_incomplete=True) == [SSEEvent("[DONE]")]
    decoder = SSEDecoder()
    decoder.feed(b"data: a\ndata: b\n")
    assert decoder.close(dispatch_incomplete=True) == [SSEEvent("a\nb")]


def test_long_line_across_many_chunks() -> None:
    payload = "x" * 200_000
    stream = f"data: {payload}\n\n".encode()
    assert decode(stream, sizes=[997]) == [SSEEvent(payload)]


def test_fast_path_and_slow_path_agree_in_one_chunk() -> None:
    stream = b"data: 1\n\ndata: 2\n\n: ping\n\n\n\nevent: e\ndata: 3\n\ndata: 4\n\ndata:5\n\n"
    expected = [
        SSEEvent("1"),
        SSEEvent("2"),
        SSEEvent("3", "e"),
        SSEEvent("4"),
        SSEEvent("5"),
    ]
    assert decode(stream) == expected
    assert decode(stream, sizes=[3, 1, 8]) == expected
    assert reference(stream) == expected


def test_events_are_frozen() -> None:
    event = decode(b"data: a\n\ndata: b\n\n")[0]
    with pytest.raises(AttributeError):
        event.data = "changed"  # type: ignore[misc]
    assert event == SSEEvent("a") and hash(event) == hash(SSEEvent("a"))


# --- properties ------------------------------------------------------------------------

_value_chars = st.characters(
    blacklist_categories=("Cs",),  # type: ignore[arg-type]
    blacklist_characters="\r\n",
) | st.sampled_from(["🌅", "𝄞", "é", "ı", "\u2028", "\x85", "\x0b", "\x00", ":", " "])
_values = st.text(_value_chars, max_size=12)


@st.composite
def streams(draw: st.DrawFn) -> bytes:
    """A stream built from events, comments, stray fields and blank runs, written with a
    random line-end style per line and maybe a BOM."""
    parts: list[str] = []
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["event", "comment", "field", "blank"]))
        if kind == "event":
            lines = [f"data: {v}" for v in draw(st.lists(_values, min_size=1, max_size=3))]
            if draw(st.booleans()):
                lines.insert(0, f"event: {draw(_values)}")
            if draw(st.booleans()):
                lines.append(f"id: {draw(_values)}")
            if draw(st.booleans()):
                lines.append(f"retry: {draw(st.integers(0, 10_000))}")
            lines.append("")
        elif kind == "comment":
            lines = [f":{draw(_values)}"]
        elif kind == "field":
            lines = [draw(st.sampled_from(["data", "data:", "data:x", "id", "retry: x", "x: y"]))]
        else:
            lines = [""] * draw(st.integers(1, 3))
        parts.extend(lines)
    ends = [draw(st.sampled_from(["\n", "\r\n", "\r"])) for _ in parts]
    text = "".join(line + end for line, end in zip(parts, ends, strict=True))
    text += draw(st.sampled_from(["", "data: unfinished", ": half"]))
    raw = text.encode("utf-8")
    if draw(st.booleans()):
        raw = b"\xef\xbb\xbf" + raw
    return raw


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=streams(), sizes=st.lists(st.integers(1, 40), min_size=1, max_size=8))
def test_any_chunking_matches_whole_and_spec(stream: bytes, sizes: list[int]) -> None:
    whole = decode(stream)
    assert whole == reference(stream)
    assert decode(stream, sizes=sizes) == whole
    assert decode(stream, sizes=[1]) == whole


@settings(max_examples=200, deadline=None)
@given(stream=st.binary(max_size=200), sizes=st.lists(st.integers(1, 9), min_size=1))
def test_arbitrary_bytes_never_crash_and_chunk_alike(stream: bytes, sizes: list[int]) -> None:
    noisy = stream.replace(b"x", b"\n").replace(b"y", b"data: ")
    whole = decode(noisy)
    assert whole == reference(noisy)
    assert decode(noisy, sizes=sizes) == whole


# --- caps: a line or an event too large to buffer -------------------------------------------


def _feed_all(decoder: SSEDecoder, stream: bytes, sizes: list[int] | None) -> list[SSEEvent]:
    events: list[SSEEvent] = []
    if sizes is None:
        events += decoder.feed(stream)
    else:
        pos, k = 0, 0
        while pos < len(stream):
            step = max(1, sizes[k % len(sizes)])
            events += decoder.feed(stream[pos : pos + step])
            pos += step
            k += 1
    return events + decoder.close()


def sizes_of(stream: bytes) -> tuple[int, int, int]:
    """(longest line, largest event data, comment lines) as the spec reads `stream`: line
    lengths in bytes without their line end, the unfinished last line included (it is
    buffered too); an event's data is its `data` values joined by "\\n", measured as it
    grows, so an event never ended by a blank line counts as well."""
    if stream.startswith(b"\xef\xbb\xbf"):
        stream = stream[3:]
    lines = re.split(rb"\r\n|\r|\n", stream)
    longest = max(map(len, lines))
    biggest = buffered = 0
    comments = 0
    for line in lines[:-1]:  # the last piece is unfinished: not a line yet
        if not line:
            buffered = 0
        elif line.startswith(b":"):
            comments += 1
        else:
            name, colon, value = line.partition(b":")
            if colon and value.startswith(b" "):
                value = value[1:]
            if name == b"data":
                buffered += len(value) + 1
                biggest = max(biggest, buffered - 1)
    return longest, biggest, comments


def test_a_line_without_end_is_capped_across_chunks() -> None:
    decoder = SSEDecoder(max_line_bytes=100)
    assert decoder.feed(b"data: " + b"x" * 60) == []
    with pytest.raises(StreamTooLarge) as caught:
        decoder.feed(b"x" * 60)
    assert caught.value.user_message == (
        "each::sense sent a message too large to read; please try again."
    )
    assert isinstance(caught.value, StreamCut)  # the turn ends like a dropped stream


def test_a_long_line_inside_one_big_chunk_is_capped() -> None:
    decoder = SSEDecoder(max_line_bytes=100)
    with pytest.raises(StreamTooLarge):
        decoder.feed(b"data: a\n\n" + b"data: " + b"y" * 200 + b"\n\ndata: b\n\n")


def test_an_event_of_many_small_lines_is_capped() -> None:
    decoder = SSEDecoder(max_line_bytes=120, max_event_bytes=1000)
    line = b"data: " + b"z" * 95 + b"\n"
    assert decoder.feed(line * 10) == []  # 10 * 95 + 9 joiners = 959 bytes: fine
    with pytest.raises(StreamTooLarge):
        decoder.feed(line)  # 1,055 bytes of data: over


def test_caps_at_exactly_the_size_are_allowed() -> None:
    payload = b"q" * 50
    stream = b"data: " + payload + b"\n\n"
    decoder = SSEDecoder(max_line_bytes=56, max_event_bytes=50)
    assert decoder.feed(stream) == [SSEEvent(payload.decode())]
    assert sizes_of(stream)[:2] == (56, 50)


def test_default_caps_allow_a_large_event() -> None:
    payload = "w" * 900_000
    assert decode(f"data: {payload}\n\n".encode(), sizes=[65536]) == [SSEEvent(payload)]
    assert (SSEDecoder().max_line_bytes, SSEDecoder().max_event_bytes) == (1 << 20, 4 << 20)


_long_values = st.text(_value_chars, max_size=40)


@st.composite
def long_streams(draw: st.DrawFn) -> bytes:
    """`streams()`, plus events with long and many-line data, so that caps bite."""
    head = draw(streams())
    lines = [f"data: {v}" for v in draw(st.lists(_long_values, min_size=0, max_size=6))]
    end = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    tail = "".join(line + end for line in lines) + draw(st.sampled_from(["", end]))
    return head + tail.encode() + draw(streams())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    stream=long_streams(),
    sizes=st.lists(st.integers(1, 40), min_size=1, max_size=8),
    slack=st.integers(0, 3),
)
def test_caps_never_trigger_on_a_stream_within_them(
    stream: bytes, sizes: list[int], slack: int
) -> None:
    longest, biggest, comments = sizes_of(stream)
    caps = {"max_line_bytes": max(1, longest + slack), "max_event_bytes": max(1, biggest + slack)}
    expected = reference(stream)
    for chunking in (None, sizes, [1]):
        decoder = SSEDecoder(**caps)
        assert _feed_all(decoder, stream, chunking) == expected
        assert decoder.events_seen == len(expected)
        assert decoder.comments_seen == comments


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    stream=long_streams(),
    sizes=st.lists(st.integers(1, 40), min_size=1, max_size=8),
    under=st.integers(1, 5),
    which=st.sampled_from(["line", "event"]),
)
def test_caps_always_trigger_on_a_stream_over_them(
    stream: bytes, sizes: list[int], under: int, which: str
) -> None:
    longest, biggest, _ = sizes_of(stream)
    if which == "line":
        caps = {"max_line_bytes": longest - under, "max_event_bytes": biggest + 1}
    else:
        caps = {"max_line_bytes": longest + 1, "max_event_bytes": biggest - under}
    if min(caps.values()) < 1:
        return  # nothing in this stream is large enough to be over a cap of one byte
    for chunking in (None, sizes, [1]):
        with pytest.raises(StreamTooLarge):
            _feed_all(SSEDecoder(**caps), stream, chunking)


@settings(max_examples=200, deadline=None)
@given(
    stream=st.binary(max_size=300),
    sizes=st.lists(st.integers(1, 9), min_size=1),
    under=st.integers(0, 2),
)
def test_caps_on_arbitrary_bytes_depend_on_the_bytes_not_the_chunking(
    stream: bytes, sizes: list[int], under: int
) -> None:
    noisy = stream.replace(b"x", b"\n").replace(b"y", b"data: ")
    longest, biggest, _ = sizes_of(noisy)
    caps = {"max_line_bytes": max(1, longest - under), "max_event_bytes": max(1, biggest - under)}
    over = longest > caps["max_line_bytes"] or biggest > caps["max_event_bytes"]
    for chunking in (None, sizes):
        if over:
            with pytest.raises(StreamTooLarge):
                _feed_all(SSEDecoder(**caps), noisy, chunking)
        else:
            assert _feed_all(SSEDecoder(**caps), noisy, chunking) == reference(noisy)


def test_caps_must_be_positive() -> None:
    with pytest.raises(ValueError):
        SSEDecoder(max_line_bytes=0)


# --- keep-alive stretches ------------------------------------------------------------------


def test_counters_tell_pings_from_events() -> None:
    decoder = SSEDecoder()
    decoder.feed(b": ping\n\n: ping\n\n")
    assert (decoder.events_seen, decoder.comments_seen) == (0, 2)
    decoder.feed(b"data: a\n\n: ping\n\ndata: b\n\n")  # pings between events, fast path
    assert (decoder.events_seen, decoder.comments_seen) == (2, 3)
    decoder.feed(b"data: c\n: in an event\n\n")
    assert (decoder.events_seen, decoder.comments_seen) == (3, 4)


def test_stall_watch_ends_a_stream_of_pings_alone() -> None:
    decoder = SSEDecoder()
    now = 100.0
    watch = StallWatch(decoder, max_stall=30.0, now=now)
    for _ in range(5):  # pings every 10 s: the connection never goes idle
        now += 10.0
        decoder.feed(b": ping\n\n")
        if now - watch.last_event_at <= 30.0:
            watch.check(now)
    with pytest.raises(StreamStalled) as caught:
        watch.check(now)
    assert isinstance(caught.value, IdleTimeout)
    assert "keep-alive" in caught.value.user_message
    assert "5 comment lines" in caught.value.detail


def test_stall_watch_restarts_its_clock_at_every_event() -> None:
    decoder = SSEDecoder()
    watch = StallWatch(decoder, max_stall=30.0, now=0.0)
    for second in range(10, 200, 10):
        decoder.feed(b": ping\n\n" if second % 20 else b"data: tick\n\n")
        watch.check(float(second))  # an event every 20 s: never a 30 s stall
    assert watch.last_event_at == 180.0
    unlimited = StallWatch(SSEDecoder(), max_stall=None, now=0.0)
    unlimited.check(1e9)  # no limit, no error
