"""Slack message text back to what the person typed: pure functions, no SDK.

Slack sends a message's `text` in its own markup: `&`, `<` and `>` arrive as `&amp;`,
`&lt;` and `&gt;`, and everything between real angle brackets is a token: `<@U123>` a
mention, `<#C123|general>` a channel, `<https://x|label>` a link, `<!here>` a broadcast.
The agent should read the words, not the markup, and a broadcast must reach it as plain text
(`@here`), never as something that could be sent back as a mention.

Both escaping and tokens are undone in one left-to-right pass, so `&amp;lt;` becomes `&lt;`
(the person typed that) and not `<`; and `unescape(escape(text)) == text` for any text, where
`escape` is the surface's (`adapters.slack.surface.escape`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

# A token, or one of the three entities Slack escapes. Tokens cannot hold a raw `<` or `>`:
# Slack escapes those inside labels too.
_PIECE = re.compile(r"<([^<>]*)>|&(amp|lt|gt);")
_ENTITIES = {"amp": "&", "lt": "<", "gt": ">"}
_ENTITY = re.compile(r"&(amp|lt|gt);")
_USER = re.compile(r"<@([A-Za-z0-9]+)(?:\|[^<>]*)?>")
_BROADCASTS = frozenset({"here", "channel", "everyone"})


def unescape(text: str, *, names: Mapping[str, str]) -> str:
    """`text` as a person would read it.

    - `&amp;` `&lt;` `&gt;` become `&` `<` `>`;
    - `<@U123>` / `<@U123|name>` become `@name`: the name from `names` (user id → display
      name) if there, else the token's label, else the id;
    - `<#C123|general>` becomes `#general` (`#C123` without a label);
    - `<https://x|label>` becomes `label (https://x)`, `<https://x>` just the URL (and an
      auto-linked `<http://x.com|x.com>` or `<mailto:a@b.co|a@b.co>` what was typed);
    - `<!here>`, `<!channel>`, `<!everyone>` become the words `@here` etc. (not mentions);
      `<!subteam^S1|@team>` its label, `<!date^…|fallback>` its fallback.
    """

    def piece(match: re.Match[str]) -> str:
        entity = match.group(2)
        if entity is not None:
            return _ENTITIES[entity]
        return _token(match.group(1), names)

    return _PIECE.sub(piece, text)


def with_ids(text: str) -> str:
    """`text` with people, channels and user groups as their bare ids (`<@U1|ann>` → `U1`,
    `<#C1|general>` → `C1`, `<!subteam^S1|@design>` → `S1`), the rest as `unescape` reads it:
    what `/sense-admin` needs, since its arguments name ids (its manifest entry asks Slack to
    send them, `should_escape: true`)."""

    def piece(match: re.Match[str]) -> str:
        entity = match.group(2)
        if entity is not None:
            return _ENTITIES[entity]
        target = _plain(match.group(1).partition("|")[0])
        if target[:1] in ("@", "#"):
            return target[1:]
        if target.startswith("!subteam^"):
            return target.removeprefix("!subteam^")
        return _token(match.group(1), {})

    return _PIECE.sub(piece, text)


def user_ids_in(text: str) -> set[str]:
    """The ids of every user mentioned (`<@U123>` or `<@U123|name>`) in Slack message text."""
    return {match.group(1) for match in _USER.finditer(text)}


def _token(inner: str, names: Mapping[str, str]) -> str:
    target, _, label = inner.partition("|")
    target, label = _plain(target), _plain(label)
    if target.startswith("@"):
        user = target[1:]
        return "@" + (names.get(user) or label.removeprefix("@") or user)
    if target.startswith("#"):
        return "#" + (label.removeprefix("#") or target[1:])
    if target.startswith("!"):
        return _special(target[1:], label)
    return _link(target, label)


def _special(command: str, label: str) -> str:
    name, _, _ = command.partition("^")
    if name in _BROADCASTS:
        return "@" + name
    if name == "subteam":
        group = command.partition("^")[2]
        return label if label.startswith("@") else "@" + (label or group)
    if name == "date":
        return label
    return label or "@" + name


def _link(url: str, label: str) -> str:
    if not label or label == url:
        return url
    # Slack links what people type: `example.com` arrives as `<http://example.com|example.com>`
    # and `a@b.co` as `<mailto:a@b.co|a@b.co>`. Then the label is what they typed.
    if url.partition(":")[2].removeprefix("//") == label:
        return label
    return f"{label} ({url})"


def _plain(text: str) -> str:
    """Entities inside a token (a URL's `&amp;`, a label's `&lt;`), in one pass."""
    return _ENTITY.sub(lambda m: _ENTITIES[m.group(1)], text)
