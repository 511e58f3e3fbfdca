"""Stable button ids: `sense:<action>:<value>`.

Buttons must keep working after a restart, so everything a click needs is in its id (the
action and what it acts on); the rest comes from storage. Discord caps `custom_id` at 100
characters, so values are cut to fit (clarification options longer than that are rare).
"""

from __future__ import annotations

from bot.models import Button, ButtonAction

PREFIX = "sense"
MAX_ID = 100


def encode_button(button: Button) -> str:
    head = f"{PREFIX}:{button.action.value}:"
    return head + button.value[: MAX_ID - len(head)]


def decode_button(custom_id: str) -> tuple[ButtonAction, str] | None:
    """The action and value of one of our ids, or None for anything else."""
    prefix, _, rest = custom_id.partition(":")
    action, sep, value = rest.partition(":")
    if prefix != PREFIX or not sep:
        return None
    try:
        return ButtonAction(action), value
    except ValueError:
        return None
