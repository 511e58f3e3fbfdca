"""Slack's AI app surface: the assistant side panel and the app's DM, where every
conversation is a thread (`features.assistant_view` in the manifest).

bolt's `Assistant` middleware sorts the events: `assistant_thread_started` (offer the
suggested prompts, `SLACK_SUGGESTED_PROMPTS`, with bolt's `set_suggested_prompts`),
`assistant_thread_context_changed` (nothing to do: the bot does not read the channel the
person is looking at) and a person's message in an assistant thread, which is translated
like any message (`commands.to_message`) and handed to the core: the thread's channel and
`thread_ts` are its `ThreadKey`, so the thread is one session.

`AssistantSurface` is the thread as the core sees it: a `SlackSurface` plus the thread's
status (`assistant.threads.setStatus`, which Slack clears after two minutes and whenever the
app replies: the core's `bot.status` keeps it current) and its title
(`assistant.threads.setTitle`, from the first prompt). Generated files go into the thread as
everywhere else.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from slack_bolt.middleware.assistant.async_assistant import AsyncAssistant

from adapters.slack.errors import slack_errors
from adapters.slack.surface import SlackSurface

if TYPE_CHECKING:
    from adapters.slack.app import SlackBot

log = logging.getLogger(__name__)

STATUS_LIFETIME = 120.0  # Slack clears an assistant thread's status after two minutes
MAX_STATUS = 100
PROMPTS_TITLE = "Try one of these:"
MAX_PROMPT_TITLE = 75


def is_assistant_thread(channel: str, thread: str) -> bool:
    """Threads in the app's DM are assistant threads (bolt's rule too: an `im` message with a
    `thread_ts` is an assistant thread's); only there do status and title apply."""
    return channel.startswith("D") and bool(thread)


class AssistantSurface(SlackSurface):
    """An assistant thread: posts, edits and uploads as in any thread, plus status and title."""

    def __init__(self, *, status_lifetime: float = STATUS_LIFETIME, **options: Any) -> None:
        super().__init__(**options)
        self.status_lifetime = status_lifetime

    async def show_status(self, text: str) -> None:
        """The line under the thread ("each::sense is …"); "" clears it."""
        status = text if len(text) <= MAX_STATUS else text[: MAX_STATUS - 1] + "…"
        with slack_errors():
            await self.client.assistant_threads_setStatus(
                channel_id=self.channel, thread_ts=self.thread_ts, status=status
            )

    async def set_title(self, title: str) -> None:
        with slack_errors():
            await self.client.assistant_threads_setTitle(
                channel_id=self.channel, thread_ts=self.thread_ts, title=title
            )


def suggested_prompts(prompts: list[str]) -> list[dict[str, str]]:
    """`SLACK_SUGGESTED_PROMPTS` as Slack's `{title, message}` pairs (the title shortened)."""
    return [
        {
            "title": p if len(p) <= MAX_PROMPT_TITLE else p[: MAX_PROMPT_TITLE - 1] + "…",
            "message": p,
        }
        for p in prompts
    ]


def register_assistant(bot: SlackBot) -> AsyncAssistant:
    """Add bolt's `Assistant` to the bot's app, its listeners wired to the bot."""
    assistant = AsyncAssistant(logger=log)
    prompts = suggested_prompts(bot.settings.slack_suggested_prompts)

    @assistant.thread_started
    async def started(set_suggested_prompts: Any) -> None:
        bot.events_seen += 1
        if not prompts:
            return
        try:
            with slack_errors():
                await set_suggested_prompts(prompts=prompts, title=PROMPTS_TITLE)
        except Exception as err:  # a courtesy: the thread works without them
            log.info("Slack: suggested prompts not set: %r", err)

    @assistant.thread_context_changed
    async def context_changed() -> None:
        # Without a listener bolt would store the context in the thread's first message
        # (conversations.replies, 1 call a minute for most apps); the bot has no use for it.
        bot.events_seen += 1

    # a person's message in the thread: translated and handed over like any other
    assistant.user_message(bot.on_event)
    bot.app.assistant(assistant)
    return assistant


__all__ = ["AssistantSurface", "is_assistant_thread", "register_assistant", "suggested_prompts"]
