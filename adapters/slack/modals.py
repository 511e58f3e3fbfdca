"""The core's `Form` as a Slack modal (`views.open`), and a `view_submission` back as what
was typed and where it belongs.

A view's `callback_id` is `sense:<action>` (bolt's `app.view` matches it); everything else the
submission needs rides in `private_metadata` (up to 3,000 characters), because a
`view_submission` names neither the channel nor the thread it came from: the form's value
(a generation id, or a message action's target) and the thread the form was opened from.
Nothing of it is secret: no token ever goes into a view.
"""

from __future__ import annotations

import json
from typing import Any

from bot.models import ButtonAction, Form

BLOCK_ID = "prompt"
ACTION_ID = "prompt"
MAX_TITLE = 24  # Slack's limit for a modal's title, submit and close texts
MAX_INPUT = 3000  # ... and for a plain-text input's value
MAX_METADATA = 3000


def _plain(text: str, limit: int) -> dict[str, Any]:
    return {"type": "plain_text", "text": text[:limit] or "…"}


def modal_view(form: Form, *, channel: str | None, thread_ts: str | None) -> dict[str, Any]:
    """The `view` for `views.open`."""
    limit = max(1, min(form.max_length, MAX_INPUT))
    element: dict[str, Any] = {
        "type": "plain_text_input",
        "action_id": ACTION_ID,
        "multiline": True,
        "max_length": limit,
    }
    if form.text:
        element["initial_value"] = form.text[:limit]
    metadata = json.dumps({"v": form.value, "c": channel, "t": thread_ts}, separators=(",", ":"))
    if len(metadata) > MAX_METADATA:
        raise ValueError("form value too long for a Slack view's private_metadata")
    return {
        "type": "modal",
        "callback_id": f"sense:{form.action.value}",
        "private_metadata": metadata,
        "title": _plain(form.title, MAX_TITLE),
        "submit": _plain(form.submit, MAX_TITLE),
        "close": _plain("Cancel", MAX_TITLE),
        "blocks": [
            {
                "type": "input",
                "block_id": BLOCK_ID,
                "label": _plain(form.label, 2000),
                "element": element,
            }
        ],
    }


def submitted(view: dict[str, Any]) -> tuple[ButtonAction, str, str, str | None, str | None] | None:
    """(action, value, typed text, channel, thread_ts) of a submitted view of ours, or None."""
    callback = str(view.get("callback_id") or "")
    prefix, _, action = callback.partition(":")
    try:
        parsed = ButtonAction(action)
    except ValueError:
        return None
    if prefix != "sense":
        return None
    try:
        metadata = json.loads(view.get("private_metadata") or "{}")
    except ValueError:
        return None
    if not isinstance(metadata, dict):
        return None
    values = ((view.get("state") or {}).get("values") or {}).get(BLOCK_ID) or {}
    text = str((values.get(ACTION_ID) or {}).get("value") or "")
    channel, thread_ts = metadata.get("c"), metadata.get("t")
    return (
        parsed,
        str(metadata.get("v") or ""),
        text,
        str(channel) if channel else None,
        str(thread_ts) if thread_ts else None,
    )
