"""The fake Discord's modals, attachments, context menus and age-restricted channels, proved
against the real discord.py (a plain `Client` with a `CommandTree`), before the bot's tests
rely on them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import discord
import pytest
from discord import app_commands

from tests.discord_client import connected_client
from tests.fakes.discord import FakeDiscord

PNG = b"\x89PNG\r\n\x1a\n" + bytes(200)


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as server:
        yield server


class Form(discord.ui.Modal, title="Remix"):
    prompt: discord.ui.TextInput[Any] = discord.ui.TextInput(
        label="Describe it", custom_id="prompt", style=discord.TextStyle.paragraph
    )


async def test_a_modal_is_a_response_and_its_submission_reaches_discord_py(
    fake: FakeDiscord,
) -> None:
    seen: list[discord.Interaction] = []
    async with connected_client(fake) as client:

        async def on_interaction(interaction: discord.Interaction) -> None:
            seen.append(interaction)
            if interaction.type is discord.InteractionType.component:
                custom = (interaction.data or {}).get("custom_id")
                modal = Form(custom_id="sense:remix:g1")
                if custom == "too-long":
                    modal.title = "x" * 46
                try:
                    await interaction.response.send_modal(modal)
                except discord.HTTPException as exc:
                    seen.append(exc)  # type: ignore[arg-type]

        client.on_interaction = on_interaction  # type: ignore[attr-defined]
        channel = client.get_channel(int(fake.channel_id))
        assert isinstance(channel, discord.TextChannel)
        message = await channel.send("buttons", view=_button_view("open"))
        click = await fake.click("open", message_id=str(message.id))
        await fake.wait_for(lambda: click.modal, what="the modal")
        assert click.callbacks[0]["type"] == 9
        assert click.modal is not None and click.modal["custom_id"] == "sense:remix:g1"

        sent = await fake.submit_modal(click, {"prompt": "make it blue"})
        await fake.wait_for(
            lambda: any(i.type is discord.InteractionType.modal_submit for i in seen),
            what="the submission",
        )
        submitted = next(i for i in seen if i.type is discord.InteractionType.modal_submit)
        data: Any = submitted.data
        assert data["custom_id"] == "sense:remix:g1"
        assert data["components"][0]["components"][0] == {
            "type": 4,
            "custom_id": "prompt",
            "value": "make it blue",
        }
        assert submitted.channel is not None and submitted.channel.id == channel.id
        await submitted.response.defer()
        assert sent.callbacks[0]["type"] == 6

        # Discord's form validation: a title over 45 characters is a 50035
        bad = await fake.click("too-long", message_id=str(message.id))
        await fake.wait_for(lambda: any(isinstance(x, Exception) for x in seen), what="refusal")
        error = next(x for x in seen if isinstance(x, discord.HTTPException))
        assert error.code == 50035 and bad.modal is None


def _button_view(*custom_ids: str) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    for custom_id in custom_ids:
        view.add_item(discord.ui.Button(label=custom_id, custom_id=custom_id))
    return view


async def test_attachment_options_and_links_reach_discord_py_as_discord_sends_them(
    fake: FakeDiscord,
) -> None:
    got: list[tuple[discord.Attachment | None, bool]] = []
    async with connected_client(fake) as client:
        tree = app_commands.CommandTree(client)

        @tree.command(name="sense", description="d")
        async def sense(
            interaction: discord.Interaction,
            prompt: str,
            image: discord.Attachment | None = None,
            plan: bool = False,
        ) -> None:
            got.append((image, plan))
            await interaction.response.send_message("ok")

        await fake.slash(
            "sense",
            {"prompt": "a cat", "plan": True},
            attachments={"image": ("cat.png", PNG, "image/png")},
        )
        await fake.wait_for(lambda: got, what="the command")
        [(image, plan)] = got
        assert plan is True and image is not None
        assert (image.filename, image.content_type, image.size) == (
            "cat.png",
            "image/png",
            len(PNG),
        )
        async with aiohttp.ClientSession() as http:
            async with http.get(image.url) as response:
                assert response.status == 200 and await response.read() == PNG
            unsigned = image.url.split("?")[0]
            async with http.get(unsigned) as response:
                assert response.status == 404

            # a person's message with attachments arrives over the Gateway as Discord sends it
            messages: list[discord.Message] = []
            client.event(_collect(messages))
            await fake.say(
                fake.channel_id,
                "look",
                attachments=[("dog.jpg", b"\xff\xd8\xff" + bytes(9), "image/jpeg")],
            )
            await fake.wait_for(lambda: messages, what="the message")
            [attachment] = messages[0].attachments
            assert attachment.content_type == "image/jpeg" and attachment.size == 12
            fake.expire_attachments()
            async with http.get(attachment.url) as response:
                assert response.status == 404


def _collect(messages: list[discord.Message]) -> Any:
    async def on_message(message: discord.Message) -> None:
        messages.append(message)

    return on_message


async def test_message_context_menus_reach_the_tree(fake: FakeDiscord) -> None:
    got: list[discord.Message] = []
    async with connected_client(fake) as client:
        tree = app_commands.CommandTree(client)

        @tree.context_menu(name="Animate")
        async def animate(interaction: discord.Interaction, message: discord.Message) -> None:
            got.append(message)
            await interaction.response.defer(ephemeral=True, thinking=True)

        message_id = await fake.say(
            fake.channel_id, "", attachments=[("cat.png", PNG, "image/png")]
        )
        inter = await fake.message_command("Animate", message_id)
        await fake.wait_for(lambda: got and inter.callbacks, what="the context menu")
        assert str(got[0].id) == message_id and got[0].attachments[0].filename == "cat.png"
        assert inter.callbacks[0]["type"] == 5
        assert inter.callbacks[0]["data"]["flags"] & 64


async def test_an_age_restricted_channel_is_nsfw_to_discord_py() -> None:
    async with FakeDiscord() as fake:
        adult = fake.add_text_channel("adults", nsfw=True)
        async with connected_client(fake) as client:
            channel = client.get_channel(int(adult))
            plain = client.get_channel(int(fake.channel_id))
            assert isinstance(channel, discord.TextChannel) and channel.is_nsfw()
            assert isinstance(plain, discord.TextChannel) and not plain.is_nsfw()
