"""Slack message markup back to plain text (`adapters.slack.text`), by example and by property."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.slack.surface import escape
from adapters.slack.text import unescape, user_ids_in

NAMES = {"U123": "ada", "W9": "grace"}


@pytest.mark.parametrize(
    ("wire", "plain"),
    [
        ("fish &amp; chips", "fish & chips"),
        ("1 &lt; 2 &gt; 0", "1 < 2 > 0"),
        ("&amp;lt; stays typed", "&lt; stays typed"),  # one pass: the person typed `&lt;`
        ("&amp;amp;", "&amp;"),
        ("&quot; &#39; &nbsp;", "&quot; &#39; &nbsp;"),  # Slack escapes only three
        ("& alone, &amp", "& alone, &amp"),
        ("<@U123> draw a fox", "@ada draw a fox"),
        ("<@U123|someone-else>", "@ada"),  # the mapping wins over the label
        ("<@U777|bob>", "@bob"),
        ("<@U777>", "@U777"),
        ("<@W9>", "@grace"),
        ("<#C123|general> and <#C9>", "#general and #C9"),
        ("<https://x.example/a?b=1&amp;c=2|the docs>", "the docs (https://x.example/a?b=1&c=2)"),
        ("<https://x.example/>", "https://x.example/"),
        ("<https://x.example/|https://x.example/>", "https://x.example/"),
        ("<http://example.com|example.com>", "example.com"),
        ("<mailto:a@b.co|a@b.co>", "a@b.co"),
        ("<https://x.example|a &lt;b&gt; &amp; c>", "a <b> & c (https://x.example)"),
        ("<!here> look", "@here look"),
        ("<!channel>", "@channel"),
        ("<!everyone>", "@everyone"),
        ("<!here|here>", "@here"),
        ("<!subteam^S123|@design>", "@design"),
        ("<!subteam^S123>", "@S123"),
        ("<!date^1392734382^{date_short}|Feb 18, 2014>", "Feb 18, 2014"),
        ("", ""),
        ("no markup at all", "no markup at all"),
        ("<>", ""),
        ("a > b < c", "a > b < c"),  # stray brackets (Slack would have escaped them) stay
    ],
)
def test_unescape_examples(wire: str, plain: str) -> None:
    assert unescape(wire, names=NAMES) == plain


def test_broadcasts_become_words_not_mentions() -> None:
    text = unescape("<!channel> <!here> <!everyone> <@U1>", names={})
    assert "<" not in text and ">" not in text
    # sent back through the surface, they stay text: no token survives escaping
    assert "<!" not in escape(text) and "<@" not in escape(text)


def test_user_ids_in() -> None:
    assert user_ids_in("<@U1> and <@W2|grace>, again <@U1>; not <#C3> <!here>") == {"U1", "W2"}
    assert user_ids_in("@U1 &lt;@U2&gt; plain") == set()
    assert user_ids_in("") == set()


@given(st.text())
def test_escape_then_unescape_is_identity(text: str) -> None:
    assert unescape(escape(text), names=NAMES) == text


@given(st.text(alphabet=st.sampled_from("<>&|@#!^:/ amplgtU1;")))
def test_any_markup_soup_is_read_without_error(text: str) -> None:
    assert isinstance(unescape(text, names=NAMES), str)
    assert all(uid.isalnum() for uid in user_ids_in(text))


_IDS = st.from_regex(r"[UW][A-Z0-9]{2,10}", fullmatch=True)
_WORDS = st.text(alphabet=st.characters(blacklist_characters="<>&|"), max_size=20)


@given(st.lists(st.tuples(_IDS, st.one_of(st.none(), _WORDS)), max_size=5), _WORDS)
def test_mentions_are_found_and_named(mentions: list[tuple[str, str | None]], filler: str) -> None:
    parts = [f"<@{uid}>" if label is None else f"<@{uid}|{label}>" for uid, label in mentions]
    wire = escape(filler).join(parts) if parts else escape(filler)
    assert user_ids_in(wire) == {uid for uid, _ in mentions}
    names = {uid: f"name-{uid}" for uid, _ in mentions}
    out = unescape(wire, names=names)
    assert all(f"@name-{uid}" in out for uid, _ in mentions)
    assert "<@" not in out
