"""Slack payloads in, neutral objects out: the one place that reads Slack's JSON shapes.

One pure function per payload kind (a slash command, a message event, a block action), so
what each payload means is easy to read and test without a network. Which of them the bot
acts on is the core's (`bot.commands`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from adapters.slack.text import unescape
from bot.buttons import decode_button
from bot.models import ChannelKey, Click, Command, CommandName, Message, ThreadKey

PLATFORM = "slack"
# Subtypes a person's message may carry; every other one (message_changed, message_deleted,
# bot_message, channel_join, ...) is not a prompt. Our own edits cause message_changed.
PROMPT_SUBTYPES = frozenset({None, "", "file_share", "thread_broadcast"})


def strip_mentions(text: str, bot_user_id: str | None) -> str:
    """Drop the bot's own mention (and only that) from a prompt."""
    if bot_user_id:
        text = re.sub(rf"<@{re.escape(bot_user_id)}(?:\|[^>]*)?>", " ", text)
    return " ".join(text.split())


def team_of(body: dict[str, Any]) -> str:
    """The workspace id in any payload shape (events, commands, block actions)."""
    team = body.get("team_id") or body.get("team") or ""
    if isinstance(team, dict):
        team = team.get("id", "")
    user = body.get("user")
    if not team and isinstance(user, dict):
        team = user.get("team_id", "")
    return str(team)


def to_command(
    body: dict[str, Any],
    *,
    reply: Any,
    names: Mapping[str, str] | None = None,
    locale: str | None = None,
) -> Command | None:
    """A slash command payload; None for a command that is not ours. Payloads carry no
    language: `locale` is the person's (`users.info`), when known."""
    try:
        name = CommandName(str(body.get("command") or "").lstrip("/"))
    except ValueError:
        return None
    channel = ChannelKey(PLATFORM, team_of(body), str(body.get("channel_id") or ""))
    return Command(
        name=name,
        channel=channel,
        user_id=str(body.get("user_id") or ""),
        text=unescape(body.get("text") or "", names=names or {}),
        reply=reply,
        locale=locale,
    )


def to_message(
    body: dict[str, Any],
    event: dict[str, Any],
    *,
    bot_user_id: str | None,
    names: Mapping[str, str] | None = None,
) -> Message | None:
    """An `app_mention` or `message` event as a person's message, or None when it is none
    (the bot's own posts and edits, other subtypes, malformed events)."""
    if event.get("bot_id") or event.get("subtype") not in PROMPT_SUBTYPES:
        return None
    user = event.get("user")
    if not user or user == bot_user_id:
        return None
    channel, ts = event.get("channel"), event.get("ts")
    if not channel or not ts:
        return None
    text = event.get("text") or ""
    thread_ts = event.get("thread_ts")
    mentioned = event.get("type") == "app_mention" or bool(
        bot_user_id and f"<@{bot_user_id}" in text
    )
    return Message(
        key=ThreadKey(PLATFORM, team_of(body), str(channel), str(thread_ts or ts)),
        user_id=str(user),
        text=unescape(strip_mentions(text, bot_user_id), names=names or {}),
        message_id=str(ts),
        top_level=not thread_ts,
        direct=event.get("channel_type") == "im",
        mentioned=mentioned,
    )


def to_click(body: dict[str, Any], *, reply: Any, locale: str | None = None) -> Click | None:
    """A block action on one of our buttons, or None."""
    actions = body.get("actions") or []
    place = thread_of_action(body)
    decoded = decode_button(actions[0].get("action_id", "")) if actions else None
    if decoded is None or place is None:
        return None
    action, value = decoded
    channel, thread_ts = place
    return Click(
        key=ThreadKey(PLATFORM, team_of(body), channel, thread_ts),
        user_id=str((body.get("user") or {}).get("id", "")),
        action=action,
        value=actions[0].get("value") or value,  # the full value (ids may be cut to fit)
        reply=reply,
        locale=locale,
    )


def thread_of_action(body: dict[str, Any]) -> tuple[str, str] | None:
    """(channel, thread_ts) of the message a button was clicked on."""
    channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get(
        "channel_id"
    )
    message = body.get("message") or {}
    thread_ts = message.get("thread_ts") or message.get("ts")
    if not thread_ts:
        thread_ts = (body.get("container") or {}).get("thread_ts") or (
            body.get("container") or {}
        ).get("message_ts")
    if not channel or not thread_ts:
        return None
    return str(channel), str(thread_ts)
