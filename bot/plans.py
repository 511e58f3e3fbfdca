"""Plan before paying: a turn with `behavior: "plan"` and its Approve / Cancel buttons.

`/sense … --plan` (or Discord's `plan: True`, or the shell's `/plan …`) sends the prompt with
`behavior: "plan"`: each::sense answers with its plan and an estimated cost, and runs
nothing. The answer ends with Approve and Cancel (`bot.render` puts them there instead of
Regenerate; a failed plan keeps Regenerate, which plans again: the turn's stored behavior
goes with it). Approve runs it as the next turn of
the same session with `behavior: "agent"`; Cancel says so and runs nothing.

Approving spends credit, so only the person who asked (or an admin) may press either, and
of all the presses on one plan, on any replica, one counts: the first claims the plan
through the event store's atomic claim.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from bot.delivery import may_act
from bot.models import ButtonAction, Click, Turn, View
from bot.ports import Platform

if TYPE_CHECKING:
    from bot.conversations import Conversations

log = logging.getLogger(__name__)

FLAG = "--plan"
CLICKS = frozenset({ButtonAction.APPROVE, ButtonAction.DECLINE})
# The approved turn carries the request again, so it runs even if the server no longer
# has the plan in the session's history; "the plan you proposed" points at it when it does.
APPROVED = "Approved: go ahead with the plan you proposed for this request: {prompt}"
GONE = "I can't find that plan any more. Please ask again."
ELSEWHERE = "That button belongs to another thread."
REFUSED = "Only the person who asked (or an admin) can approve or cancel this plan."
DONE_ALREADY = "That plan was already approved or cancelled."
DECLINED = "Cancelled: nothing was run, and nothing was charged."


def split_flag(text: str) -> tuple[str, bool]:
    """The prompt without a `--plan` word, and whether there was one (anywhere: first or
    last is the usual place, and a prompt has no other use for the word)."""
    words = text.split(" ")
    kept = [word for word in words if word.strip().lower() != FLAG]
    return " ".join(kept).strip(), len(kept) != len(words)


def approved_prompt(prompt: str, *, limit: int) -> str:
    """The approved turn's words, the original request clipped to fit `limit`."""
    room = max(0, limit - len(APPROVED.format(prompt="")))
    clipped = prompt if len(prompt) <= room else prompt[: max(0, room - 1)] + "…"
    return APPROVED.format(prompt=clipped)


class Plans:
    """Approve and Cancel, for every platform."""

    def __init__(self, conversations: Conversations) -> None:
        self.conversations = conversations

    async def click(self, platform: Platform, click: Click, *, admin: bool) -> None:
        conversations = self.conversations
        plan = await conversations.store.get_turn(click.value)
        if plan is None:
            await click.reply.tell(GONE)
            return
        if plan.key != click.key:
            await click.reply.tell(ELSEWHERE)
            return
        if not may_act(click.user_id, plan.user_id, admin=admin, settings=conversations.settings):
            await click.reply.tell(REFUSED)
            return
        if not await conversations.claim_event(platform.name, f"plan:{plan.id}"):
            await click.reply.tell(DONE_ALREADY)
            return
        surface = platform.surface(click.key, user_id=click.user_id)
        if click.action is ButtonAction.DECLINE:
            await conversations.say(surface, View(text="cancelled the plan", by=click.user_id))
            await click.reply.tell(DECLINED)
            return
        await conversations.say(surface, View(text="approved the plan", by=click.user_id))
        limit = conversations.settings.max_prompt_chars
        turn = Turn(
            key=click.key,
            user_id=click.user_id,
            text=approved_prompt(plan.prompt, limit=limit),
            behavior="agent",
            adult=click.adult,
        )
        await conversations.run(turn, surface)
