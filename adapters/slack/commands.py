"""Slack payloads in, neutral decisions out: the one place that reads Slack's JSON shapes.

Pure functions, so the rules (which messages count, which thread a message belongs to) are
easy to read and test without a network.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from adapters.slack.surface import escape
from bot.models import Mode, ThreadKey

PLATFORM = "slack"
# Subtypes a person's message may carry; every other one (message_changed, message_deleted,
# bot_message, channel_join, ...) is not a prompt. Our own edits cause message_changed.
PROMPT_SUBTYPES = frozenset({None, "", "file_share", "thread_broadcast"})


@dataclass(frozen=True, slots=True)
class Incoming:
    """A message event that should become a turn."""

    key: ThreadKey
    user_id: str
    text: str
    top_level: bool  # not in a thread yet: the answer starts a new one under it


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


def from_message_event(
    body: dict[str, Any], event: dict[str, Any], *, bot_user_id: str | None
) -> Incoming | None:
    """An `app_mention` or `message` event as a prompt, or None when it is not one."""
    if event.get("bot_id") or event.get("subtype") not in PROMPT_SUBTYPES:
        return None
    user = event.get("user")
    if not user or user == bot_user_id:
        return None
    channel, ts = event.get("channel"), event.get("ts")
    if not channel or not ts:
        return None
    thread_ts = event.get("thread_ts")
    top_level = not thread_ts
    key = ThreadKey(PLATFORM, team_of(body), str(channel), str(thread_ts or ts))
    return Incoming(key, str(user), strip_mentions(event.get("text") or "", bot_user_id), top_level)


def root_text(*, user_id: str, prompt: str, mode: Mode, what: str = "asked") -> str:
    """The channel message a `/sense` thread hangs under (mrkdwn, escaped)."""
    shown = prompt if len(prompt) <= 1500 else prompt[:1499] + "…"
    return f"<@{user_id}> {what}: {escape(shown)} · _{mode} mode_"


def split_command_text(text: str) -> str:
    return " ".join((text or "").split())


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
