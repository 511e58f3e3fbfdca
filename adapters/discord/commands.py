"""The slash commands' shapes (names, options, choices) and where each one is handled.

Kept apart from the handlers so `sync-commands` can register the exact same commands
without starting a bot.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

import discord
from discord import app_commands
from discord.app_commands import locale_str

from bot.models import CommandName

MAX_CHOICES = 25  # Discord shows at most 25 autocomplete choices


class Handlers(Protocol):
    async def on_command(
        self, interaction: discord.Interaction, name: CommandName, text: str, **extra: Any
    ) -> None: ...

    async def models(self, query: str) -> list[tuple[str, str]]: ...


def register_commands(tree: app_commands.CommandTree, handlers: Handlers) -> None:
    """Add `/sense`, `/sense-eco`, `/sense-predict` and `/sense-workflow` to `tree`."""

    @tree.command(
        name="sense", description=locale_str("Ask each::sense; the answer opens a thread")
    )
    @app_commands.describe(
        prompt=locale_str("What to ask or create"), mode=locale_str("eco: faster and cheaper")
    )
    async def sense(
        interaction: discord.Interaction,
        prompt: str,
        mode: Literal["eco", "max"] | None = None,
    ) -> None:
        await handlers.on_command(interaction, CommandName.SENSE, prompt, mode=mode)

    @tree.command(
        name="sense-eco", description=locale_str("Eco mode for this channel: on, off or status")
    )
    @app_commands.describe(action=locale_str("on and off need Manage Channels"))
    async def sense_eco(
        interaction: discord.Interaction, action: Literal["on", "off", "status"] = "status"
    ) -> None:
        await handlers.on_command(interaction, CommandName.ECO, action)

    @tree.command(
        name="sense-predict", description=locale_str("Run one Eachlabs model on a prompt")
    )
    @app_commands.describe(
        model=locale_str("The model's slug"), prompt=locale_str("The model's prompt")
    )
    async def sense_predict(interaction: discord.Interaction, model: str, prompt: str) -> None:
        await handlers.on_command(interaction, CommandName.PREDICT, f"{model} {prompt}")

    @sense_predict.autocomplete("model")
    async def model_choices(
        interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        found = await handlers.models(current)
        return [
            app_commands.Choice(name=(title or slug)[:100], value=slug[:100])
            for slug, title in found[:MAX_CHOICES]
        ]

    @tree.command(name="sense-workflow", description=locale_str("Run an Eachlabs workflow"))
    @app_commands.describe(
        workflow_id=locale_str("The workflow's id"), inputs=locale_str("key=value pairs")
    )
    async def sense_workflow(
        interaction: discord.Interaction, workflow_id: str, inputs: str = ""
    ) -> None:
        await handlers.on_command(interaction, CommandName.WORKFLOW, f"{workflow_id} {inputs}")
