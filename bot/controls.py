"""Per-channel controls besides eco: web search and the safety checker.

Both are each::sense request fields (`web_search`, default on at the server;
`enable_safety_checker`, default on), set per channel with `/sense-settings` by the same
admins who may switch eco, and shown on every answer's footer next to the mode.

The safety checker is special: it may be off only where the platform itself marks the
channel adult (Discord's age-restricted channels; Slack has no such mark). That is checked
twice: when an admin turns it off (refused elsewhere), and at every turn (`Turn.adult`), so
a channel that stops being age-restricted gets the checker back at once, whatever is stored.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.errors import InputError
from bot.models import ChannelSettings

SETTINGS_USAGE = (
    "Use `/sense-settings status`, `/sense-settings web on|off|default` or "
    "`/sense-settings safety on|off`."
)
ADULT_ONLY = (
    "The safety checker can only be turned off in a channel the platform marks as adult "
    "(an age-restricted or NSFW channel)."
)
_SWITCH = {"on": True, "off": False}
_WEB_WORDS = ("web", "web-search", "websearch", "search")
_SAFETY_WORDS = ("safety", "safety-checker", "checker")


@dataclass(frozen=True, slots=True)
class AgentOptions:
    """What a turn sends besides the prompt: `None` leaves a field to the server's
    default (and out of the request)."""

    behavior: str | None = None
    web_search: bool | None = None
    safety_checker: bool | None = None


@dataclass(frozen=True, slots=True)
class Change:
    """One parsed `/sense-settings` change: `web` to True/False/None (default), or
    `safety` to True/False."""

    setting: str
    value: bool | None


def agent_options(
    channel: ChannelSettings, *, behavior: str | None = None, adult: bool = False
) -> AgentOptions:
    """The options of one turn in a channel with these settings. The checker goes off only
    in an adult channel; elsewhere the field is left out (the server's default is on)."""
    safety = False if (not channel.safety_checker and adult) else None
    return AgentOptions(behavior=behavior, web_search=channel.web_search, safety_checker=safety)


def footer_notes(options: AgentOptions) -> tuple[str, ...]:
    """What every answer's footer says about these options, after the mode."""
    web = "web search off" if options.web_search is False else "web search on"
    safety = "safety checker off" if options.safety_checker is False else "safety checker on"
    return (web, safety)


def parse_settings(text: str) -> Change | None:
    """`web on`, `safety off`, ... as a `Change`; None for `status` (or nothing). Raises
    `InputError` with the usage for anything else."""
    words = text.lower().split()
    if not words or words == ["status"]:
        return None
    if len(words) == 2 and words[1] in (*_SWITCH, "default"):
        name, value = words
        if name in _WEB_WORDS:
            return Change("web", None if value == "default" else _SWITCH[value])
        if name in _SAFETY_WORDS and value in _SWITCH:
            return Change("safety", _SWITCH[value])
    raise InputError(f"I don't know `{text.strip()[:60]}`. {SETTINGS_USAGE}")


def status_sentence(channel: ChannelSettings, *, adult: bool) -> str:
    """The channel's settings in one sentence, for `/sense-settings status` and changes."""
    web = {None: "on (the default)", True: "on", False: "**off**"}[channel.web_search]
    if channel.safety_checker:
        safety = "on"
    elif adult:
        safety = "**off**"
    else:  # stored off, but the channel is not adult (any more): it stays on
        safety = "on (this channel is not marked adult)"
    mode = "eco" if channel.eco else "max"
    return f"In this channel: {mode} mode, web search {web}, safety checker {safety}."
