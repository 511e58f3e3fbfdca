"""The command flow: every inbound payload, on every platform, goes through here once.

Adapters translate a payload into a `Command`, `Message` or `Click` and call
`Commands.handle(platform, inbound)`; nothing else decides. Written here, once:
- the checks a command gets before the platform is answered (`precheck`: a bad prompt or bad
  arguments are refused at once, privately, before any thread opens);
- the root message of a new thread, its mode, opening the thread, the turn or job in it;
- which messages the bot answers (its own threads, mentions, direct messages) and dedupe of
  redeliveries: a payload's event id, and a message by the message itself, so Slack's
  `app_mention` and `message` for one post start one turn;
- who may press what (Stop and Cancel: the asker or an admin; eco: admins), and the sentences
  a refusal says;
- the notice a thread gets when a restart cut its answer off.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from bot.arguments import parse_predict_args, parse_workflow_args
from bot.config import Settings
from bot.conversations import INTERRUPTED, Conversations
from bot.errors import BotError, InputError, PlatformError
from bot.i18n import N_, _, using
from bot.jobs import Jobs
from bot.models import (
    Button,
    ButtonAction,
    ChannelKey,
    Click,
    Command,
    CommandName,
    Inbound,
    Message,
    ThreadKey,
    Turn,
    TurnRecord,
    View,
)
from bot.ports import Platform, Reply, Surface

log = logging.getLogger(__name__)

ROOT_PROMPT_MAX = 1500  # the root message repeats the prompt; the agent gets all of it
TITLE_MAX = 90
NOT_HERE = N_("Use this command in a channel where I can open a thread.")


def code(text: str, limit: int = 100) -> str:
    """`text` as an inline code span that nothing in it can close."""
    return "`" + text[:limit].replace("`", "ˋ") + "`"


def clip(text: str, limit: int = ROOT_PROMPT_MAX) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Commands:
    """One flow for every platform; `handle` never raises at an adapter."""

    def __init__(self, *, conversations: Conversations, jobs: Jobs, settings: Settings) -> None:
        self.conversations = conversations
        self.jobs = jobs
        self.settings = settings

    # --- before the platform is answered ------------------------------------------------

    def precheck(self, command: Command) -> str | None:
        """`_precheck` in the person's language."""
        with using(command.locale or self.settings.bot_language):
            return self._precheck(command)

    def _precheck(self, command: Command) -> str | None:
        """The sentence to answer a command with at once (it goes no further), or None.

        Pure and quick: adapters call it before their ack, so a bad prompt or argument is
        refused privately within the platform's 3 s, the same way everywhere."""
        try:
            self._arguments(command)
        except InputError as err:
            return "⚠️ " + err.user_message
        if not command.threadable and command.name is not CommandName.ECO:
            return _(NOT_HERE)
        return None

    def _arguments(self, command: Command) -> tuple[str, ...]:
        if command.name is CommandName.SENSE:
            return (self.conversations.check_prompt(command.text),)
        if command.name is CommandName.PREDICT:
            model, prompt = parse_predict_args(command.text)
            return model, self.conversations.check_prompt(prompt)
        if command.name is CommandName.WORKFLOW:
            workflow_id, _ = parse_workflow_args(command.text)
            return (workflow_id,)
        return (" ".join(command.text.split()),)

    # --- after -----------------------------------------------------------------------

    async def handle(self, platform: Platform, inbound: Inbound) -> None:
        """Do what one inbound payload asks, in the person's language: every sentence it
        causes, in every task it starts (a turn, its renderer, a job), comes out in the
        payload's `locale` (else `BOT_LANGUAGE`, else English)."""
        with using(inbound.locale or self.settings.bot_language):
            await self._handle(platform, inbound)

    async def _handle(self, platform: Platform, inbound: Inbound) -> None:
        """Do what one inbound payload asks. Every failure becomes a sentence or a log."""
        try:
            if isinstance(inbound, Command):
                await self._command(platform, inbound)
            elif isinstance(inbound, Message):
                await self._message(platform, inbound)
            else:
                await self._click(platform, inbound)
        except BotError as err:
            log.info("%s: %s", type(inbound).__name__, err.detail)
            reply = getattr(inbound, "reply", None)
            if reply is not None:
                await reply.tell("⚠️ " + err.user_message)

    async def _claim(self, platform: Platform, event_id: str | None) -> bool:
        if not event_id:
            return True
        if await self.conversations.claim_event(platform.name, event_id):
            return True
        log.info("%s: ignoring redelivered %r", platform.name, event_id[:80])
        return False

    async def _command(self, platform: Platform, command: Command) -> None:
        if not await self._claim(platform, command.event_id):
            return
        refusal = self.precheck(command)
        if refusal is not None:
            await command.reply.tell(refusal)
            return
        args = self._arguments(command)
        if command.name is CommandName.SENSE:
            await self._sense(platform, command, args[0])
        elif command.name is CommandName.ECO:
            await self._eco(platform, command, args[0])
        elif command.name is CommandName.PREDICT:
            await self._predict(platform, command, *args)
        else:
            await self._workflow(platform, command)

    async def _open(
        self, platform: Platform, command: Command, *, root: View, title: str
    ) -> ThreadKey | None:
        """The command's thread, or None after telling the person why not."""
        name = " ".join(title.split())[:TITLE_MAX] or "each::sense"
        try:
            key = await platform.open_thread(command.channel, root=root, title=name)
        except PlatformError as err:
            log.warning("%s: no thread in %s: %s", platform.name, command.channel, err.detail)
            await command.reply.tell("⚠️ " + err.user_message)
            return None
        await command.reply.opened(key)
        return key

    async def _sense(self, platform: Platform, command: Command, prompt: str) -> None:
        mode = await self.conversations.mode_for(command.channel, command.mode)
        root = View(
            text=_("asked: {prompt} · {mode} mode").format(prompt=clip(prompt), mode=mode),
            by=command.user_id,
        )
        key = await self._open(platform, command, root=root, title=prompt)
        if key is None:
            return
        turn = Turn(
            key=key,
            user_id=command.user_id,
            text=prompt,
            new_thread=True,
            mode=command.mode,
            image_urls=command.image_urls,
        )
        await self.conversations.run(turn, platform.surface(key, user_id=command.user_id))

    async def _eco(self, platform: Platform, command: Command, action: str) -> None:
        changes = action.lower() in ("on", "off")
        admin = changes and await self.is_admin(
            platform, command.user_id, command.channel, hint=command.admin
        )
        sentence = await self.conversations.eco(
            command.channel,
            action,
            user_id=command.user_id,
            is_admin=admin,
            admins=platform.admins,
        )
        # a change is the channel's news; a refusal or a status is the asker's alone
        await command.reply.tell(sentence, public=changes and admin)

    async def _predict(self, platform: Platform, command: Command, model: str, prompt: str) -> None:
        root = View(
            text=_("ran {model}: {prompt}").format(model=code(model), prompt=clip(prompt)),
            by=command.user_id,
        )
        key = await self._open(platform, command, root=root, title=f"{model}: {prompt}")
        if key is None:
            return
        surface = platform.surface(key, user_id=command.user_id)
        await self._job(
            surface,
            command.user_id,
            lambda: self.jobs.run_prediction(
                key=key, user_id=command.user_id, model=model, prompt=prompt, surface=surface
            ),
        )

    async def _workflow(self, platform: Platform, command: Command) -> None:
        workflow_id, inputs = parse_workflow_args(command.text)
        shown = " ".join(f"{k}={v}" for k, v in inputs.items()) or _("(no inputs)")
        root = View(
            text=_("ran workflow {workflow} with: {inputs}").format(
                workflow=code(workflow_id), inputs=clip(shown)
            ),
            by=command.user_id,
        )
        key = await self._open(
            platform,
            command,
            root=root,
            title=_("workflow {workflow}").format(workflow=workflow_id),
        )
        if key is None:
            return
        surface = platform.surface(key, user_id=command.user_id)
        await self._job(
            surface,
            command.user_id,
            lambda: self.jobs.run_workflow(
                key=key,
                user_id=command.user_id,
                workflow_id=workflow_id,
                inputs=inputs,
                surface=surface,
            ),
        )

    async def _job(
        self, surface: Surface, user_id: str, run: Callable[[], Awaitable[None]]
    ) -> None:
        """A direct run holds one of the person's slots, like a turn: paid runs are capped."""
        try:
            async with self.conversations.user_slot(user_id):
                await run()
        except BotError as err:
            await self.conversations.say(surface, "⚠️ " + err.user_message)

    # --- messages ---------------------------------------------------------------------

    async def _message(self, platform: Platform, message: Message) -> None:
        new_thread = await self._answers(message)
        if new_thread is None or not message.text.strip():
            return
        claim = f"msg:{message.key.channel}:{message.message_id}"
        if not await self._claim(platform, claim):
            return
        turn = Turn(
            key=message.key,
            user_id=message.user_id,
            text=message.text,
            new_thread=new_thread,
            image_urls=message.image_urls,
        )
        await self.conversations.run(turn, platform.surface(message.key, user_id=message.user_id))

    async def _answers(self, message: Message) -> bool | None:
        """None: not for us. Else whether the answer starts a new session.

        A message in one of our threads continues its session; a mention (or a direct
        message) elsewhere opens one: at the top level a thread under it, inside someone
        else's thread a session of its own there."""
        if not message.top_level and await self.conversations.is_bot_thread(message.key):
            return False
        if message.mentioned or message.direct:
            return True
        return None

    # --- clicks -----------------------------------------------------------------------

    async def _click(self, platform: Platform, click: Click) -> None:
        if not await self._claim(platform, click.event_id):
            return
        conversations = self.conversations
        admin = click.user_id in self.settings.bot_admins or bool(click.admin)
        if click.action is ButtonAction.STOP:
            await click.reply.tell(
                await conversations.stop(click.value, user_id=click.user_id, admin=admin)
            )
        elif click.action is ButtonAction.CANCEL_JOB:
            await click.reply.tell(
                await self.jobs.cancel(click.value, user_id=click.user_id, admin=admin)
            )
        elif click.action is ButtonAction.REGENERATE:
            surface = platform.surface(click.key, user_id=click.user_id)
            await conversations.regenerate(click.value, user_id=click.user_id, surface=surface)
        elif click.action is ButtonAction.ANSWER:
            surface = platform.surface(click.key, user_id=click.user_id)
            chose = _("chose: {option}").format(option=click.value)
            await conversations.say(surface, View(text=chose, by=click.user_id))
            turn = Turn(key=click.key, user_id=click.user_id, text=click.value)
            await conversations.run(turn, surface)

    # --- permissions and notices ------------------------------------------------------

    async def is_admin(
        self, platform: Platform, user_id: str, channel: ChannelKey, *, hint: bool | None
    ) -> bool:
        """One rule everywhere: `BOT_ADMINS`, else the payload's own answer, else ask."""
        if user_id in self.settings.bot_admins:
            return True
        if hint is not None:
            return hint
        try:
            return await platform.is_admin(user_id, channel)
        except BotError as err:
            log.warning("%s: admin check failed: %s", platform.name, err.detail)
            return False

    async def notify_interrupted(
        self, platforms: Sequence[Platform], turns: Sequence[TurnRecord]
    ) -> None:
        """Tell each thread whose answer a restart cut off to send its message again."""
        by_name = {p.name: p for p in platforms}
        for turn in turns:
            platform = by_name.get(turn.key.platform)
            if platform is not None:
                retry = Button(_("Retry"), ButtonAction.REGENERATE, turn.id, "primary")
                notice = View(text=_(INTERRUPTED), buttons=(retry,))
                await self.conversations.say(platform.surface(turn.key), notice)

    def surface_finder(
        self, platforms: Sequence[Platform]
    ) -> Callable[[ThreadKey], Awaitable[Surface | None]]:
        """For job resumption: the surface of a stored thread, on whichever platform."""
        by_name = {p.name: p for p in platforms}

        async def surface_for(key: ThreadKey) -> Surface | None:
            platform = by_name.get(key.platform)
            return platform.surface(key) if platform is not None else None

        return surface_for


__all__ = ["NOT_HERE", "Commands", "Reply"]
