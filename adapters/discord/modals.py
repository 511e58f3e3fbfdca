"""The core's `Form` as a Discord modal, and a modal submission back as what was typed.

A modal is the response to an interaction (a click or a context menu), sent within its 3 s.
Like buttons, a modal is identified by its `custom_id` (`sense:<action>:<value>`), and its
submission is decoded from the INTERACTION_CREATE payload in the client's `on_interaction`,
never through discord.py's in-memory modal store: a form opened before a restart still
works after it, and forms people close without sending cost no memory.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import discord

from bot.buttons import encode_button
from bot.models import Button, Form

FIELD_ID = "prompt"
MAX_TITLE = 45  # Discord's limit for a modal title and a text input's label
MAX_VALUE = 4000  # ... and for a text input's value


class FormModal(discord.ui.Modal):
    """One multi-line text field; never stored by discord.py (see the module docstring)."""

    def __init__(self, form: Form) -> None:
        custom_id = encode_button(Button(label="", action=form.action, value=form.value))
        super().__init__(title=form.title[:MAX_TITLE], custom_id=custom_id, timeout=None)
        limit = max(1, min(form.max_length, MAX_VALUE))
        self.add_item(
            discord.ui.TextInput(
                label=form.label[:MAX_TITLE],
                custom_id=FIELD_ID,
                style=discord.TextStyle.paragraph,
                default=form.text[:limit] or None,
                max_length=limit,
                required=True,
            )
        )
        # stopped before it is sent: `send_modal` keeps only modals still listening, and
        # submissions are decoded by custom_id instead
        self.stop()


def submitted_text(components: Iterable[Any]) -> str:
    """The text typed into our field, from a modal submission's `components` (action rows
    of text inputs, or the newer label components wrapping one)."""
    for component in components:
        if not isinstance(component, dict):
            continue
        kind = component.get("type")
        if kind == 1:
            found = submitted_text(component.get("components") or [])
        elif kind == 18:
            found = submitted_text([component.get("component") or {}])
        elif component.get("custom_id") == FIELD_ID:
            found = str(component.get("value") or "")
        else:
            found = ""
        if found:
            return found
    return ""
