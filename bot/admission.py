"""The one check every request passes before it does anything: may this person use the bot
here (`bot.access`), and is there quota left today (`bot.quotas`)?

Where it runs: at the start of handling, in `Commands.handle`, for every command, for every
message the bot answers and for every click that starts a turn (Regenerate, an answer); Stop
and Cancel are always allowed (they only end work). A refusal is a sentence: the command's
or click's private reply, or a notice in the thread for a message. The check reads the store
(lists, limits, the atomic quota take) and, only when a rule names roles and the payload did
not carry the person's roles, asks the platform (`Platform.roles_of`, cached by the
adapter), so it is async and is not part of the synchronous `precheck`.

Before the platform is answered, where that matters: a platform that would show the answer
publicly once the command is acknowledged (Discord defers a command with a public "thinking"
response) calls `Commands.admit` first, within its 3 s, and refuses in the private response;
the command is then marked `admitted` and not checked again. Elsewhere (Slack answers through
an ephemeral `response_url`, the shell prints) the check after the ack is just as private.

Admins are never refused: the admin check (`Commands.is_admin`, which may ask the platform)
runs only when a rule or a quota would refuse, so an ordinary request costs no platform call;
an admin let through that way is not counted against a quota.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from bot.access import ROLES_UNKNOWN, Access
from bot.errors import BotError
from bot.models import (
    ButtonAction,
    ChannelKey,
    Click,
    Command,
    CommandName,
    Inbound,
    Message,
    Shortcut,
    Submission,
)
from bot.ports import Platform
from bot.quotas import Counted, Quotas

log = logging.getLogger(__name__)

IsAdmin = Callable[[Platform, str, ChannelKey, bool | None], Awaitable[bool]]
# clicks that start a turn (the creative controls and a plan's Approve included); Stop,
# Cancel and a plan's decline never do
_TURN_CLICKS = (
    ButtonAction.REGENERATE,
    ButtonAction.ANSWER,
    ButtonAction.VARIATIONS,
    ButtonAction.UPSCALE,
    ButtonAction.ANIMATE,
    ButtonAction.APPROVE,
)  # Remix only opens a form: its submission is the turn


def counted(inbound: Inbound) -> Counted | None:
    """What a request takes from the quotas: a turn, a run, or nothing."""
    if isinstance(inbound, Command):
        if inbound.name is CommandName.SENSE:
            return "turns"
        if inbound.name in (CommandName.PREDICT, CommandName.WORKFLOW):
            return "runs"
        return None
    if isinstance(inbound, Message | Submission):
        return "turns"
    if isinstance(inbound, Shortcut):  # Remix opens a form first; Animate runs at once
        return "turns" if inbound.action is ButtonAction.ANIMATE else None
    return "turns" if inbound.action in _TURN_CLICKS else None


def gated(inbound: Inbound) -> bool:
    """Whether the request is checked at all (Stop, Cancel and opening a form are not)."""
    return not isinstance(inbound, Click) or inbound.action in _TURN_CLICKS


def channel_of(inbound: Inbound) -> ChannelKey:
    if isinstance(inbound, Command | Shortcut):
        return inbound.channel
    return inbound.key.channel_key


class Admission:
    def __init__(self, access: Access, quotas: Quotas, is_admin: IsAdmin) -> None:
        self.access = access
        self.quotas = quotas
        self._is_admin = is_admin

    async def check(self, platform: Platform, inbound: Inbound) -> str | None:
        """The sentence refusing `inbound`, or None (and one use counted, if it counts)."""
        if not gated(inbound):
            return None
        channel = channel_of(inbound)
        refusal = await self._access(platform, inbound, channel)
        if refusal is None:
            what = counted(inbound)
            if what is not None:
                refusal = await self.quotas.take(channel, inbound.user_id, what)
        if refusal is not None and await self._is_admin(
            platform, inbound.user_id, channel, getattr(inbound, "admin", None)
        ):
            log.info("%s: admin %s let through", platform.name, inbound.user_id)
            return None
        return refusal

    async def _access(
        self, platform: Platform, inbound: Inbound, channel: ChannelKey
    ) -> str | None:
        lists = await self.access.lists(channel)
        if lists.empty:
            return None
        roles: frozenset[str] | None = getattr(inbound, "roles", None)
        if roles is None:
            roles = frozenset()
            if lists.roles:
                try:
                    roles = await platform.roles_of(inbound.user_id, channel, among=lists.roles)
                except BotError as err:
                    log.warning(
                        "%s: roles of %s unknown: %s", platform.name, inbound.user_id, err.detail
                    )
                    return ROLES_UNKNOWN
        return lists.refusal(user_id=inbound.user_id, roles=roles, channel=channel.channel)
