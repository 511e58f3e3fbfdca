"""What a message shows, in Discord's terms: content and a row of buttons.

Buttons carry everything a click needs in their `custom_id` (`bot.buttons`), and clicks are
decoded in the client's `on_interaction`, never through discord.py's in-memory view store:
so a button posted before a restart works after it, and thousands of finished answers cost
no memory.
"""

from __future__ import annotations

import discord

from bot.buttons import encode_button
from bot.models import Button, View

MAX_CONTENT = 2000
MAX_LABEL = 80
STATUS_GAP = "\n\n"  # the renderer reserves exactly these two characters
EMPTY = "\u200b"  # Discord refuses a message with no content, embed, file or component

_STYLES = {
    "primary": discord.ButtonStyle.primary,
    "danger": discord.ButtonStyle.danger,
    None: discord.ButtonStyle.secondary,
}


def content_of(view: View) -> str:
    """The text above, the status line below it (the renderer keeps both within 2,000)."""
    text = f"<@{view.by}> {view.text}" if view.by else view.text  # shown, never a ping
    content = STATUS_GAP.join(part for part in (text, view.status) if part)
    return content[:MAX_CONTENT] or EMPTY


class ButtonRow(discord.ui.View):
    """Our buttons as a discord.py view: persistent ids, no timeout, never stored."""

    def __init__(self, buttons: tuple[Button, ...]) -> None:
        super().__init__(timeout=None)
        for button in buttons[:25]:
            self.add_item(
                discord.ui.Button(
                    label=button.label[:MAX_LABEL] or "…",
                    custom_id=encode_button(button),
                    style=_STYLES.get(button.style, discord.ButtonStyle.secondary),
                )
            )

    def is_dispatchable(self) -> bool:
        # Clicks are routed by custom_id in on_interaction, so discord.py must not keep
        # a copy of every view we send.
        return False


def components_of(view: View) -> ButtonRow | None:
    """The view to send with a message; None clears any buttons an earlier edit showed."""
    return ButtonRow(view.buttons) if view.buttons else None
