"""Slack payloads in, neutral objects out: the one place that reads Slack's JSON shapes.

One pure function per payload kind (a slash command, a message event, a block action, a
view submission, a message shortcut), so what each payload means is easy to read and test
without a network. Which of them the bot acts on is the core's (`bot.commands`).

Files people share become `ImageRef`s for `url_private` with the bot token as the
`Authorization` header (Slack's file URLs need it, and the `files:read` scope); the core
checks and re-hosts them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from adapters.slack.modals import submitted
from adapters.slack.text import unescape, with_ids
from bot.buttons import decode_button
from bot.models import (
    ButtonAction,
    ChannelKey,
    Click,
    Command,
    CommandName,
    ImageRef,
    Message,
    Shortcut,
    Submission,
    ThreadKey,
)

PLATFORM = "slack"
# Subtypes a person's message may carry; every other one (message_changed, message_deleted,
# bot_message, channel_join, ...) is not a prompt. Our own edits cause message_changed.
PROMPT_SUBTYPES = frozenset({None, "", "file_share", "thread_broadcast"})
SHORTCUTS = {"sense_remix": ButtonAction.REMIX, "sense_animate": ButtonAction.ANIMATE}


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
    raw = body.get("text") or ""
    return Command(
        name=name,
        channel=channel,
        user_id=str(body.get("user_id") or ""),
        text=with_ids(raw) if name is CommandName.ADMIN else unescape(raw, names=names or {}),
        reply=reply,
        locale=locale,
    )


def image_refs(files: Any, *, token: str) -> tuple[ImageRef, ...]:
    """Shared files as the core checks them: Slack's declared type and size, and
    `url_private` fetched with the bot token. Files without a URL (external ones) are left
    out; a `check_file_info` stub must be completed with `files.info` first."""
    refs: list[ImageRef] = []
    for file in files if isinstance(files, list) else []:
        if not isinstance(file, dict) or not file.get("url_private"):
            continue
        size = file.get("size")
        refs.append(
            ImageRef(
                url=str(file["url_private"]),
                filename=str(file.get("name") or file.get("title") or ""),
                content_type=file.get("mimetype") or None,
                size=size if isinstance(size, int) else None,
                headers=(("Authorization", f"Bearer {token}"),),
            )
        )
    return tuple(refs)


def to_message(
    body: dict[str, Any],
    event: dict[str, Any],
    *,
    bot_user_id: str | None,
    names: Mapping[str, str] | None = None,
    token: str = "",
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
        images=image_refs(event.get("files"), token=token),
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


def to_submission(body: dict[str, Any], *, reply: Any, token: str) -> Submission | Shortcut | None:
    """A `view_submission` of one of our forms: a generation's Remix (a `Submission` in the
    thread it was opened from) or a message shortcut's Remix (a `Shortcut` with its text)."""
    found = submitted(body.get("view") or {})
    if found is None:
        return None
    action, value, text, channel, thread_ts = found
    user = str((body.get("user") or {}).get("id", ""))
    event_id = _view_event(body)
    if action is ButtonAction.REMIX_MESSAGE:
        return shortcut_from_target(
            value,
            team=team_of(body),
            user=user,
            reply=reply,
            text=text,
            event_id=event_id,
            token=token,
        )
    if not channel or not thread_ts:
        return None
    return Submission(
        key=ThreadKey(PLATFORM, team_of(body), channel, thread_ts),
        user_id=user,
        action=action,
        value=value,
        text=text,
        reply=reply,
        event_id=event_id,
    )


def _view_event(body: dict[str, Any]) -> str | None:
    """A submission's dedupe id: the view and its state's hash (a resubmission repeats
    both)."""
    view = body.get("view") or {}
    if not view.get("id"):
        return None
    return f"view:{view['id']}:{view.get('hash', '')}"


def message_target(body: dict[str, Any]) -> str:
    """What a message shortcut's form carries to act on the message later (no token): its
    channel, thread and files."""
    message = body.get("message") or {}
    files = [
        [f.get("url_private"), f.get("name") or "", f.get("mimetype") or "", f.get("size")]
        for f in message.get("files") or []
        if isinstance(f, dict) and f.get("url_private")
    ][:4]
    place = {
        "c": (body.get("channel") or {}).get("id"),
        "t": message.get("thread_ts"),
        "f": files,
    }
    return json.dumps(place, separators=(",", ":"))


def shortcut_from_target(
    target: str,
    *,
    team: str,
    user: str,
    reply: Any,
    text: str | None,
    event_id: str | None,
    token: str,
) -> Shortcut | None:
    """The `Shortcut` a form's target describes (see `message_target`), or None."""
    try:
        place = json.loads(target)
    except ValueError:
        return None
    if not isinstance(place, dict) or not place.get("c"):
        return None
    files = [
        {"url_private": f[0], "name": f[1], "mimetype": f[2], "size": f[3]}
        for f in place.get("f") or []
        if isinstance(f, list) and len(f) == 4
    ]
    channel = str(place["c"])
    thread = place.get("t")
    return Shortcut(
        action=ButtonAction.REMIX,
        channel=ChannelKey(PLATFORM, team, channel),
        user_id=user,
        images=image_refs(files, token=token),
        reply=reply,
        key=ThreadKey(PLATFORM, team, channel, str(thread)) if thread else None,
        target=target,
        text=text,
        event_id=event_id,
    )


def to_shortcut(body: dict[str, Any], *, reply: Any, token: str) -> Shortcut | None:
    """A message shortcut ("Remix with each::sense", "Animate") on a message, or None."""
    action = SHORTCUTS.get(str(body.get("callback_id") or ""))
    channel = (body.get("channel") or {}).get("id")
    message = body.get("message") or {}
    if action is None or not channel:
        return None
    team = team_of(body)
    thread = message.get("thread_ts")
    return Shortcut(
        action=action,
        channel=ChannelKey(PLATFORM, team, str(channel)),
        user_id=str((body.get("user") or {}).get("id", "")),
        images=image_refs(message.get("files"), token=token),
        reply=reply,
        key=ThreadKey(PLATFORM, team, str(channel), str(thread)) if thread else None,
        target=message_target(body),
        event_id=f"shortcut:{body.get('trigger_id') or body.get('action_ts') or ''}",
    )
