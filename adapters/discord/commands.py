"""The slash commands' and context menus' shapes (names, options, choices) and where each one
is handled.

Kept apart from the handlers so `sync-commands` can register the exact same commands
without starting a bot.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

import discord
from discord import app_commands
from discord.app_commands import locale_str

from adapters.discord.translate import image_ref
from bot.models import ButtonAction, CommandName

MAX_CHOICES = 25  # Discord shows at most 25 autocomplete choices
REMIX_MENU = "Remix with each::sense"
ANIMATE_MENU = "Animate"


def everywhere(command: Any) -> Any:
    """Usable in servers, in DMs with the bot and in private channels, as a server's app
    and as a person's own (user-installed) app. Discord leaves user installs out unless
    they are asked for (`integration_types`), so both are set explicitly."""
    command = app_commands.allowed_installs(guilds=True, users=True)(command)
    return app_commands.allowed_contexts(guilds=True, dms=True, private_channels=True)(command)


class Handlers(Protocol):
    async def on_command(
        self, interaction: discord.Interaction, name: CommandName, text: str, **extra: Any
    ) -> None: ...

    async def on_message_action(
        self, interaction: discord.Interaction, message: discord.Message, action: ButtonAction
    ) -> None: ...

    async def models(self, query: str) -> list[tuple[str, str]]: ...


def register_commands(tree: app_commands.CommandTree, handlers: Handlers) -> None:
    """Add `/sense`, `/sense-eco`, `/sense-settings`, `/sense-predict`, `/sense-workflow`,
    `/sense-usage`, `/sense-admin` and the message context menus to `tree`."""

    @tree.command(
        name="sense", description=locale_str("Ask each::sense; the answer opens a thread")
    )
    @everywhere
    @app_commands.describe(
        prompt=locale_str("What to ask or create"),
        mode=locale_str("eco: faster and cheaper"),
        image=locale_str("A reference image (JPEG, PNG, WebP or GIF, up to 20 MB)"),
        plan=locale_str(
            "Show the plan and its estimated cost first; nothing runs until you approve"
        ),
    )
    async def sense(
        interaction: discord.Interaction,
        prompt: str,
        mode: Literal["eco", "max"] | None = None,
        image: discord.Attachment | None = None,
        plan: bool = False,
    ) -> None:
        images = (image_ref(image),) if image is not None else ()
        await handlers.on_command(
            interaction, CommandName.SENSE, prompt, mode=mode, images=images, plan=plan
        )

    @tree.command(
        name="sense-eco", description=locale_str("Eco mode for this channel: on, off or status")
    )
    @everywhere
    @app_commands.describe(action=locale_str("on and off need Manage Channels"))
    async def sense_eco(
        interaction: discord.Interaction, action: Literal["on", "off", "status"] = "status"
    ) -> None:
        await handlers.on_command(interaction, CommandName.ECO, action)

    @tree.command(
        name="sense-settings",
        description=locale_str("Web search and the safety checker in this channel"),
    )
    @everywhere
    @app_commands.describe(
        setting=locale_str("Leave empty to see the current settings; changes need Manage Channels"),
        value=locale_str("default: each::sense decides (web search only)"),
    )
    async def sense_settings(
        interaction: discord.Interaction,
        setting: Literal["web", "safety", "status"] = "status",
        value: Literal["on", "off", "default"] | None = None,
    ) -> None:
        text = setting if value is None else f"{setting} {value}"
        await handlers.on_command(interaction, CommandName.SETTINGS, text)

    @tree.command(
        name="sense-predict", description=locale_str("Run one Eachlabs model on a prompt")
    )
    @everywhere
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
    @everywhere
    @app_commands.describe(
        workflow_id=locale_str("The workflow's id"), inputs=locale_str("key=value pairs")
    )
    async def sense_workflow(
        interaction: discord.Interaction, workflow_id: str, inputs: str = ""
    ) -> None:
        await handlers.on_command(interaction, CommandName.WORKFLOW, f"{workflow_id} {inputs}")

    @tree.command(
        name="sense-usage",
        description=locale_str("Your each::sense use today and in the last 30 days"),
    )
    @everywhere
    async def sense_usage(interaction: discord.Interaction) -> None:
        await handlers.on_command(interaction, CommandName.USAGE, "")

    # No default_permissions: the core's admin rule decides (Manage Channels or BOT_ADMINS),
    # and hiding the command would also hide it from the ids in BOT_ADMINS.
    @tree.command(
        name="sense-admin",
        description=locale_str("Admins: who may use each::sense, daily quotas"),
    )
    @everywhere
    @app_commands.describe(
        args=locale_str("access · access deny user @someone · quota · quota user-turns 20 · help")
    )
    async def sense_admin(interaction: discord.Interaction, args: str = "") -> None:
        await handlers.on_command(interaction, CommandName.ADMIN, args)

    @tree.context_menu(name=REMIX_MENU)
    async def remix(interaction: discord.Interaction, message: discord.Message) -> None:
        await handlers.on_message_action(interaction, message, ButtonAction.REMIX)

    @tree.context_menu(name=ANIMATE_MENU)
    async def animate(interaction: discord.Interaction, message: discord.Message) -> None:
        await handlers.on_message_action(interaction, message, ButtonAction.ANIMATE)
