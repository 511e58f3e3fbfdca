"""The core's creative pieces on their own: which controls a file gets, the words each sends,
the plan flag, the channel settings' grammar and the options a turn sends; and that the Slack
manifest and README list what the adapters register."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from adapters.slack.commands import SHORTCUTS
from bot import plans
from bot.app import Core
from bot.controls import AgentOptions, Change, agent_options, footer_notes, parse_settings
from bot.creative import editable_prompt, generation_buttons, words
from bot.errors import InputError
from bot.models import (
    ButtonAction,
    ChannelKey,
    ChannelSettings,
    Command,
    CommandName,
    GenerationRecord,
    ImageRef,
    ThreadKey,
)

KEY = ThreadKey("shell", "local", "console", "1")
ROOT = Path(__file__).resolve().parent.parent


def generation(kind: str, gen_id: str | None = "g1") -> GenerationRecord:
    return GenerationRecord("https://cdn/x", kind, "s", KEY, None, 1.0, id=gen_id)


def test_controls_per_kind() -> None:
    image = generation_buttons(generation("image"))
    assert [(b.label, b.action, b.value) for b in image] == [
        ("Variations", ButtonAction.VARIATIONS, "g1"),
        ("Upscale", ButtonAction.UPSCALE, "g1"),
        ("Animate", ButtonAction.ANIMATE, "g1"),
        ("Remix", ButtonAction.REMIX, "g1"),
    ]
    assert [b.label for b in generation_buttons(generation("video"))] == [
        "Variations",
        "Upscale",
        "Remix",
    ]
    assert generation_buttons(generation("audio")) == ()
    assert generation_buttons(generation("file")) == ()
    assert generation_buttons(generation("image", None)) == (), "unstored: nothing to name"


def test_the_words_each_control_sends() -> None:
    url = "https://cdn/v.mp4"
    assert words(ButtonAction.VARIATIONS, url=url, image=True) == (
        "Make 3 variations of the reference image: keep its subject, composition and style, "
        "and vary the details."
    )
    assert words(ButtonAction.UPSCALE, url=url, image=False) == (
        "Upscale the video you made (https://cdn/v.mp4) to a higher resolution. "
        "Keep everything else exactly as it is."
    )
    assert words(ButtonAction.ANIMATE, url=url, image=True).startswith(
        "Animate the reference image into a short video (about 5 seconds)"
    )
    assert words(ButtonAction.REMIX, url=url, image=True, prompt="in snow") == (
        "Remix the reference image: in snow"
    )
    # what a Remix form starts with: only the person's own words
    assert editable_prompt("a red fox") == "a red fox"
    assert editable_prompt(words(ButtonAction.REMIX, url=url, image=True, prompt="x: y")) == "x: y"
    assert editable_prompt(words(ButtonAction.VARIATIONS, url=url, image=True)) == ""


@pytest.mark.parametrize(
    ("typed", "prompt", "plan"),
    [
        ("--plan a castle", "a castle", True),
        ("a castle --plan", "a castle", True),
        ("a --PLAN castle", "a castle", True),
        ("a floor plan of a castle", "a floor plan of a castle", False),
        ("--planet x", "--planet x", False),
    ],
)
def test_the_plan_flag(typed: str, prompt: str, plan: bool) -> None:
    assert plans.split_flag(typed) == (prompt, plan)


def test_an_approved_plan_carries_the_request_within_the_limit() -> None:
    said = plans.approved_prompt("x" * 500, limit=200)
    assert len(said) <= 200 and said.endswith("x…")
    assert plans.approved_prompt("a cat", limit=10_000).endswith("for this request: a cat")


def test_the_settings_grammar() -> None:
    assert parse_settings("") is None and parse_settings("status") is None
    assert parse_settings("web off") == Change("web", False)
    assert parse_settings("Web-Search ON") == Change("web", True)
    assert parse_settings("web default") == Change("web", None)
    assert parse_settings("safety off") == Change("safety", False)
    for bad in ("safety default", "web", "loud on", "web on please"):
        with pytest.raises(InputError, match="/sense-settings status"):
            parse_settings(bad)


def test_the_safety_checker_is_off_only_in_an_adult_channel() -> None:
    off = ChannelSettings(safety_checker=False, web_search=False)
    assert agent_options(off, adult=True) == AgentOptions(web_search=False, safety_checker=False)
    assert agent_options(off, adult=False) == AgentOptions(web_search=False)
    assert agent_options(ChannelSettings(), behavior="plan") == AgentOptions(behavior="plan")
    assert footer_notes(AgentOptions()) == ("web search on", "safety checker on")
    assert footer_notes(agent_options(off, adult=True)) == (
        "web search off",
        "safety checker off",
    )


async def test_precheck_refuses_bad_settings_and_too_many_images(core: Core) -> None:
    channel = ChannelKey("shell", "local", "console")

    def command(name: CommandName, text: str, **extra: object) -> Command:
        return Command(name=name, channel=channel, user_id="u", text=text, reply=None, **extra)  # type: ignore[arg-type]

    check = core.commands.precheck
    assert "/sense-settings status" in (check(command(CommandName.SETTINGS, "louder")) or "")
    assert check(command(CommandName.SETTINGS, "web off", threadable=False)) is None
    five = tuple(ImageRef(url=f"https://x/{n}.png") for n in range(5))
    assert "at most 4" in (check(command(CommandName.SENSE, "a cat", images=five)) or "")
    pdf = (ImageRef(url="https://x/a", filename="a.pdf", content_type="application/pdf"),)
    assert "“a.pdf” is not a JPEG" in (check(command(CommandName.SENSE, "a", images=pdf)) or "")
    assert "Please write a prompt" in (check(command(CommandName.SENSE, "--plan")) or "")


def test_the_slack_manifest_lists_every_command_shortcut_and_scope() -> None:
    manifest = (ROOT / "adapters" / "slack" / "manifest.yml").read_text()
    commands = set(re.findall(r"- command: /([\w-]+)", manifest))
    assert commands == {name.value for name in CommandName}
    assert set(re.findall(r"callback_id: (\w+)", manifest)) == set(SHORTCUTS)
    for scope in ("files:read", "files:write", "commands", "chat:write"):
        assert f"- {scope}\n" in manifest, scope


def test_the_readme_lists_every_command() -> None:
    readme = (ROOT / "README.md").read_text()
    for name in CommandName:
        assert f"`/{name.value}" in readme, name
    for words_ in ("Remix with each::sense", "Animate", "Variations", "Upscale", "/image"):
        assert words_ in readme, words_
