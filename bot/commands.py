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
- the notice a thread gets when a restart cut its answer off;
- who may use the bot here and how much today (`bot.admission`: access lists and quotas,
  checked at the start of handling, or before the ack through `admit`), and the operators'
  commands `/sense-usage` and `/sense-admin` (`bot.operators`).

The creative controls (`bot.creative`), plans (`bot.plans`), reference images
(`bot.references`) and the channel settings (`bot.controls`) live in their own modules;
this flow hands them their payloads.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace

from bot import controls, plans
from bot.admin import parse_admin_args
from bot.arguments import parse_predict_args, parse_workflow_args
from bot.config import Settings
from bot.conversations import INTERRUPTED, Conversations
from bot.creative import Creative
from bot.errors import BotError, InputError
from bot.i18n import N_, _, using
from bot.jobs import Jobs
from bot.models import (
    Button,
    ButtonAction,
    ChannelKey,
    Click,
    Command,
    CommandName,
    ImageRef,
    Inbound,
    Message,
    Shortcut,
    Submission,
    ThreadKey,
    Turn,
    TurnRecord,
    View,
)
from bot.operators import Operators
from bot.ports import Platform, Reply, Surface
from bot.references import IMAGE_ONLY_PROMPT, References
from bot.status import keep_status, release, set_title
from bot.threads import open_thread

log = logging.getLogger(__name__)

ROOT_PROMPT_MAX = 1500  # the root message repeats the prompt; the agent gets all of it
NOT_HERE = N_("Use this command in a channel where I can open a thread.")
THREADLESS = (  # they need no thread
    CommandName.ECO,
    CommandName.USAGE,
    CommandName.ADMIN,
    CommandName.SETTINGS,
)
NO_REFERENCES = "Reference images are not set up on this bot."


def code(text: str, limit: int = 100) -> str:
    """`text` as an inline code span that nothing in it can close."""
    return "`" + text[:limit].replace("`", "ˋ") + "`"


def clip(text: str, limit: int = ROOT_PROMPT_MAX) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Commands:
    """One flow for every platform; `handle` never raises at an adapter."""

    def __init__(
        self,
        *,
        conversations: Conversations,
        jobs: Jobs,
        settings: Settings,
        operators: Operators | None = None,
        references: References | None = None,
    ) -> None:
        self.conversations = conversations
        self.jobs = jobs
        self.settings = settings
        self.operators = operators or Operators(conversations.store, settings)
        self.admission = self.operators.admission(
            lambda platform, user_id, channel, hint: self.is_admin(
                platform, user_id, channel, hint=hint
            )
        )
        self.references = references
        self.creative = Creative(conversations, references)
        self.plans = plans.Plans(conversations)

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
            if command.images:
                if self.references is None:
                    raise InputError(NO_REFERENCES)
                self.references.precheck(command.images)
        except InputError as err:
            return "⚠️ " + err.user_message
        if not command.threadable and command.place is None and command.name not in THREADLESS:
            return _(NOT_HERE)
        return None

    def _arguments(self, command: Command) -> tuple[str, ...]:
        if command.name is CommandName.SENSE:
            prompt, _ = plans.split_flag(command.text)
            return (self.conversations.check_prompt(prompt),)
        if command.name is CommandName.SETTINGS:
            controls.parse_settings(command.text)
            return (command.text,)
        if command.name is CommandName.PREDICT:
            model, prompt = parse_predict_args(command.text)
            return model, self.conversations.check_prompt(prompt)
        if command.name is CommandName.WORKFLOW:
            workflow_id, _ = parse_workflow_args(command.text)
            return (workflow_id,)
        if command.name is CommandName.ADMIN:
            parse_admin_args(command.text)
        return (" ".join(command.text.split()),)

    async def admit(self, platform: Platform, command: Command) -> tuple[str | None, Command]:
        """Before the ack, for a platform whose answer turns public once acknowledged: the
        admission check (`bot.admission`) now, so a refusal goes in the private response.
        Returns the refusal, or None and the command marked `admitted` (`handle` does not
        check it again). A failed check is left to `handle`."""
        try:
            refusal = await self.admission.check(platform, command)
        except Exception:
            log.exception("%s: admission before the ack failed", platform.name)
            return None, command
        return refusal, command if refusal is not None else replace(command, admitted=True)

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
            elif isinstance(inbound, Submission):
                if await self._claim(platform, inbound.event_id) and await self._admitted(
                    platform, inbound
                ):
                    await self.creative.submit(platform, inbound)
            elif isinstance(inbound, Shortcut):
                if await self._claim(platform, inbound.event_id) and await self._admitted(
                    platform, inbound
                ):
                    await self.creative.shortcut(platform, inbound)
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
        if not command.admitted and not await self._admitted(platform, command):
            return
        args = self._arguments(command)
        if command.name is CommandName.SENSE:
            await self._sense(platform, command, args[0])
        elif command.name is CommandName.ECO:
            await self._eco(platform, command, args[0])
        elif command.name in (CommandName.USAGE, CommandName.ADMIN):
            await self._operators(platform, command)
        elif command.name is CommandName.SETTINGS:
            await self._settings(platform, command)
        elif command.name is CommandName.PREDICT:
            await self._predict(platform, command, *args)
        else:
            await self._workflow(platform, command)

    async def _open(
        self, platform: Platform, command: Command, *, root: View, title: str
    ) -> ThreadKey | None:
        """The command's thread, or None after telling the person why not. Where no thread
        can open, the conversation the adapter named (`Command.place`) begins with `root`."""
        if not command.threadable and command.place is not None:
            return await self._begin_here(platform, command, command.place, root=root)
        return await open_thread(platform, command.channel, command.reply, root=root, title=title)

    async def _begin_here(
        self, platform: Platform, command: Command, key: ThreadKey, *, root: View
    ) -> ThreadKey | None:
        """A new session in a conversation without threads (a DM): `root` marks where it
        begins; the turn that follows starts a new session there (`Turn.new_thread`)."""
        try:
            await platform.surface(key, user_id=command.user_id).post(root)
        except BotError as err:
            log.warning("%s: cannot answer in %s: %s", platform.name, key, err.detail)
            await command.reply.tell("⚠️ " + err.user_message)
            return None
        await command.reply.opened(key)
        return key

    async def _sense(self, platform: Platform, command: Command, prompt: str) -> None:
        _text, flagged = plans.split_flag(command.text)
        plan = command.plan or flagged
        # a bad image is refused privately, before any thread opens
        image_urls = command.image_urls + await self._host(command.images)
        mode = await self.conversations.mode_for(command.channel, command.mode)
        shown = _("asked: {prompt} · {mode} mode").format(prompt=clip(prompt), mode=mode)
        shown += " · plan first" if plan else ""
        root = View(text=shown, by=command.user_id)
        key = await self._open(platform, command, root=root, title=prompt)
        if key is None:
            return
        turn = Turn(
            key=key,
            user_id=command.user_id,
            text=prompt,
            new_thread=True,
            mode=command.mode,
            image_urls=image_urls,
            behavior="plan" if plan else None,
            adult=command.adult,
        )
        await self.conversations.run(turn, platform.surface(key, user_id=command.user_id))

    async def _host(self, images: tuple[ImageRef, ...]) -> tuple[str, ...]:
        """Re-host reference images (`InputError`, with a sentence, when one is bad)."""
        if not images:
            return ()
        if self.references is None:
            raise InputError(NO_REFERENCES)
        return await self.references.host(images)

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

    async def _settings(self, platform: Platform, command: Command) -> None:
        """`/sense-settings`: the same admin gate as eco; the safety checker goes off only
        where the platform marks the channel adult."""
        change = controls.parse_settings(command.text)
        store, channel = self.conversations.store, command.channel
        if change is None:
            current = await store.get_channel(channel)
            await command.reply.tell(controls.status_sentence(current, adult=command.adult))
            return
        if not await self.is_admin(platform, command.user_id, channel, hint=command.admin):
            await command.reply.tell(
                f"Only admins can change these settings here ({platform.admins}, or ids in "
                "BOT_ADMINS). `/sense-settings status` works for everyone."
            )
            return
        if change.setting == "safety" and change.value is False and not command.adult:
            await command.reply.tell(controls.ADULT_ONLY)
            return
        at = self.conversations.now()
        if change.setting == "web":
            await store.set_channel_web_search(
                channel, web_search=change.value, by=command.user_id, at=at
            )
        else:
            await store.set_channel_safety(
                channel, enabled=bool(change.value), by=command.user_id, at=at
            )
        current = await store.get_channel(channel)
        sentence = "Done. " + controls.status_sentence(current, adult=command.adult)
        await command.reply.tell(sentence, public=True)

    async def _predict(self, platform: Platform, command: Command, model: str, prompt: str) -> None:
        root = View(
            text=_("ran {model}: {prompt}").format(model=code(model), prompt=clip(prompt)),
            by=command.user_id,
        )
        key = await self._open(platform, command, root=root, title=f"{model}: {prompt}")
        if key is None:
            return
        surface = keep_status(platform.surface(key, user_id=command.user_id))
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
        surface = keep_status(platform.surface(key, user_id=command.user_id))
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
        finally:
            await release(surface)

    # --- messages ---------------------------------------------------------------------

    async def _message(self, platform: Platform, message: Message) -> None:
        new_thread = await self._answers(message)
        if new_thread is None or not (message.text.strip() or message.images):
            return
        claim = f"msg:{message.key.channel}:{message.message_id}"
        if not await self._claim(platform, claim):
            return
        if not await self._admitted(platform, message):
            return
        surface = platform.surface(message.key, user_id=message.user_id)
        try:
            hosted = await self._host(message.images)
        except BotError as err:  # a message has no private reply: the thread hears it
            log.info("message %s: images refused: %s", message.message_id, err.detail)
            await self.conversations.say(surface, View(text="⚠️ " + err.user_message))
            return
        turn = Turn(
            key=message.key,
            user_id=message.user_id,
            text=message.text if message.text.strip() else IMAGE_ONLY_PROMPT,
            new_thread=new_thread,
            image_urls=message.image_urls + hosted,
            adult=message.adult,
        )
        if new_thread and not message.top_level:  # a thread that exists already begins here
            await set_title(surface, message.text)
        await self.conversations.run(turn, surface)

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
        if not await self._admitted(platform, click):
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
            turn = Turn(key=click.key, user_id=click.user_id, text=click.value, adult=click.adult)
            await conversations.run(turn, surface)
        elif click.action in plans.CLICKS:
            await self.plans.click(platform, click, admin=admin)
        else:
            await self.creative.click(platform, click)

    # --- operators ----------------------------------------------------------------------

    async def _admitted(self, platform: Platform, inbound: Inbound) -> bool:
        """The admission check; False after telling the person why not (a message's refusal
        is a notice in its thread). A check that fails refuses too: better than letting a
        denied person through while the store is down."""
        try:
            refusal = await self.admission.check(platform, inbound)
        except Exception:
            log.exception("%s: admission check failed", platform.name)
            refusal = "⚠️ " + BotError().user_message
        if refusal is None:
            return True
        if isinstance(inbound, Message):
            surface = platform.surface(inbound.key, user_id=inbound.user_id)
            await self.conversations.say(surface, View(text=refusal, by=inbound.user_id))
        else:
            await inbound.reply.tell(refusal)
        return False

    async def _operators(self, platform: Platform, command: Command) -> None:
        """`/sense-usage` (everyone; admins see more) and `/sense-admin` (admins only)."""
        admin = await self.is_admin(platform, command.user_id, command.channel, hint=command.admin)
        operators = self.operators
        if command.name is CommandName.USAGE:
            text = await operators.usage_text(command.channel, command.user_id, admin=admin)
        elif admin:
            text = await operators.admin_text(command.channel, command.text, by=command.user_id)
        else:
            text = (
                f"Only admins can use `/{CommandName.ADMIN.value}` here ({platform.admins}, "
                "or ids in BOT_ADMINS)."
            )
        await command.reply.tell(text)

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
