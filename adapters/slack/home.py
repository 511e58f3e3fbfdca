"""Slack's App Home: `app_home_opened` in, `views.publish` out, and the page's buttons.

What the page shows is the core's (`bot.home.home_page`): this module translates the event
(who opened it, in which workspace), lists the channels the bot is in for an admin's page
(`users.conversations`), renders the `HomePage` as Block Kit and publishes it. A press on a
channel's eco button is translated into the `/sense-eco on|off` command for that channel and
handed to the command flow like a typed one: the same admin rule, the same sentence. The
answer comes back to the page itself (`HomeReply`: the page has no `response_url`), and a
change is also the channel's news, as with the typed command.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from adapters.slack.commands import PLATFORM, team_of
from adapters.slack.errors import slack_errors
from adapters.slack.surface import escape, render, to_mrkdwn
from bot.errors import BotError
from bot.home import HomePage, home_page
from bot.models import ChannelKey, Command, CommandName, ThreadKey, View

if TYPE_CHECKING:
    from adapters.slack.app import SlackBot

log = logging.getLogger(__name__)

PRESS = re.compile(r"^home:eco:(on|off):([A-Z0-9]+)$")
MAX_LISTED = 200  # channels asked of users.conversations for an admin's page
TITLE_CHARS = 80


def to_home_opened(body: dict[str, Any], event: dict[str, Any]) -> tuple[str, str] | None:
    """(workspace, user) of an `app_home_opened` for the Home tab; None for the other tabs."""
    user = event.get("user")
    if event.get("tab") != "home" or not user:
        return None
    return team_of(body), str(user)


def to_home_press(body: dict[str, Any], *, reply: Any) -> Command | None:
    """A press on a Home eco button as the `/sense-eco` command it stands for, or None."""
    actions = body.get("actions") or []
    match = PRESS.match(str(actions[0].get("action_id", ""))) if actions else None
    user = (body.get("user") or {}).get("id")
    if match is None or not user:
        return None
    action, channel = match.groups()
    return Command(
        name=CommandName.ECO,
        channel=ChannelKey(PLATFORM, team_of(body), channel),
        user_id=str(user),
        text=action,
        reply=reply,
    )


def thread_link(team_url: str, key: ThreadKey) -> str:
    """A link that opens the thread in Slack, built from the channel and the thread's ts."""
    base = team_url if team_url.endswith("/") else team_url + "/"
    return (
        f"{base}archives/{key.channel}/p{key.thread.replace('.', '')}"
        f"?thread_ts={key.thread}&cid={key.channel}"
    )


def _section(text: str, accessory: dict[str, Any] | None = None) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "section", "text": {"type": "mrkdwn", "text": text[:2900]}}
    if accessory is not None:
        block["accessory"] = accessory
    return block


def _title(text: str) -> str:
    line = " ".join(text.split()) or "(no prompt)"
    return line if len(line) <= TITLE_CHARS else line[: TITLE_CHARS - 1] + "…"


def home_view(
    page: HomePage, *, link: Callable[[ThreadKey], str], about: str | None = None
) -> dict[str, Any]:
    """The `home` view for one page; `about` is the channel the notice is about."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": "each::sense"}}
    ]
    if page.notice:
        where = f"<#{escape(about)}>: " if about else ""
        blocks.append(_section(where + to_mrkdwn(page.notice)))
    blocks.append(_section("*Your recent threads*"))
    for thread in page.threads:
        url = link(thread.key).replace("|", "%7C").replace(">", "%3E")
        when = int(thread.last_at)
        stamp = f"<!date^{when}^{{date_short_pretty}} {{time}}|{when}>"
        blocks.append(_section(f"<{url}|{escape(_title(thread.title))}> · {stamp}"))
    if not page.threads:
        blocks.append(
            _section(
                "No threads yet. Open the assistant, send me a message, or type "
                "`/sense a lighthouse at dawn` in a channel."
            )
        )
    turns = "turn" if page.turns_day == 1 else "turns"
    blocks.append(
        _section(
            f"*Your usage:* {page.turns_day} {turns} in the last 24 hours · "
            f"{page.turns_month} in the last 30 days"
        )
    )
    if page.admin:
        blocks += _admin_blocks(page)
    return {"type": "home", "blocks": blocks}


def _admin_blocks(page: HomePage) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = [
        {"type": "divider"},
        _section("*Channels* (you can change these as an admin)"),
    ]
    for row in page.channels:
        state = "*on*" if row.eco else "off"
        button = {
            "type": "button",
            "text": {"type": "plain_text", "text": f"Turn eco {row.flip}"},
            "action_id": f"home:eco:{row.flip}:{row.channel.channel}",
            "value": row.channel.channel,
        }
        if not row.eco:
            button["style"] = "primary"
        blocks.append(_section(f"<#{escape(row.channel.channel)}> · eco mode {state}", button))
    if not page.channels:
        blocks.append(_section("I'm not in any channel yet: invite me with `/invite @eachsense`."))
    if page.more_channels:
        blocks.append(_section(f"…and {page.more_channels} more channels."))
    return blocks


class SlackHome:
    """Publishes each person's Home; wired to the bot's app by `register_home`."""

    def __init__(self, bot: SlackBot) -> None:
        self.bot = bot

    async def publish(
        self, workspace: str, user_id: str, *, notice: str = "", about: str | None = None
    ) -> None:
        """Build the person's page and publish it; a failure is logged (the old page stays)."""
        bot = self.bot
        try:
            page = await home_page(
                bot.core.commands,
                bot,
                workspace=workspace,
                user_id=user_id,
                channels=self._channels,
                notice=notice,
            )
            view = home_view(page, link=lambda key: thread_link(bot.team_url, key), about=about)
            with slack_errors():
                await bot.client.views_publish(user_id=user_id, view=view)
        except BotError as err:
            log.warning("Slack: App Home not published: %s", err.detail)
        except Exception:
            log.exception("Slack: App Home not published")

    async def _channels(self) -> list[str]:
        """The channels the bot is a member of (public and private), in Slack's order."""
        found: list[str] = []
        with slack_errors():
            pages = await self.bot.client.users_conversations(
                types="public_channel,private_channel", exclude_archived=True, limit=100
            )
            async for page in pages:
                found += [str(c["id"]) for c in page.get("channels") or []]
                if len(found) >= MAX_LISTED:
                    break
        return found[:MAX_LISTED]

    async def on_opened(self, body: dict[str, Any], event: dict[str, Any]) -> None:
        self.bot.events_seen += 1
        opened = to_home_opened(body, event)
        if opened is not None:
            workspace, user = opened
            self.bot.spawn(self.publish(workspace, user), name="slack-home")

    async def on_press(self, ack: Any, body: dict[str, Any]) -> None:
        await ack()
        command = to_home_press(body, reply=None)
        if command is not None:
            reply = HomeReply(self, command)
            self.bot.hand_over(dataclasses.replace(command, reply=reply), "home-press")


class HomeReply:
    """Answers a press on the Home page on the page itself (it has no `response_url`); a
    public answer (a change) is posted in the channel too, as `/sense-eco` does."""

    def __init__(self, home: SlackHome, command: Command) -> None:
        self._home = home
        self._workspace = command.channel.workspace
        self._command = command

    async def tell(self, text: str, *, public: bool = False) -> None:
        channel, user = self._command.channel.channel, self._command.user_id
        if public:
            shown, blocks = render(View(text=text, by=user))
            try:
                with slack_errors():
                    await self._home.bot.client.chat_postMessage(
                        channel=channel, text=shown, blocks=blocks, link_names=False
                    )
            except BotError as err:
                log.info("Slack: eco change not announced in %s: %s", channel, err.detail)
        await self._home.publish(self._workspace, user, notice=text, about=channel)

    async def opened(self, key: ThreadKey) -> None:
        """A press opens no thread."""


def register_home(bot: SlackBot) -> SlackHome:
    home = SlackHome(bot)
    bot.app.event("app_home_opened")(home.on_opened)
    bot.app.action(re.compile(r"^home:"))(home.on_press)
    return home


__all__ = ["HomeReply", "SlackHome", "home_view", "register_home", "thread_link", "to_home_press"]
