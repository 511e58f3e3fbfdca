"""Creative controls: iterate on a generated image or video, or on someone's image.

each::sense is an agent in a session, so every control is simply the next turn of the same
session, with the right words and, for an image, the image itself as a reference
(`image_urls`): the words say what to do, the reference pins *which* result (a turn may have
made several, and the agent must not guess). A video cannot be an `image_urls` entry, so
its URL goes in the words instead.

- Under every generated image or video: Variations, Upscale, Animate (images only) and
  Remix, which first opens a form with the prompt that made it, to edit. Each button names
  the *stored* generation (`sense:vary:<generation id>`), so it works after a restart, and
  only in the thread it was made in.
- Message actions ("Remix with each::sense", "Animate") on anyone's message with an image:
  the image is re-hosted (`bot.references`) and the turn runs in the bot's own thread when
  the message is in one, else in a new thread.

Every control says who asked for it before its turn starts, and its turn goes through
`Conversations.run`, so per-thread order and per-person caps hold as for typed messages.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any

from bot.delivery import say
from bot.models import (
    Button,
    ButtonAction,
    Click,
    Form,
    GenerationRecord,
    Shortcut,
    Submission,
    ThreadKey,
    Turn,
    View,
)
from bot.ports import Platform, Surface
from bot.threads import open_thread

if TYPE_CHECKING:
    from bot.conversations import Conversations
    from bot.references import References

log = logging.getLogger(__name__)

CONTROLLABLE = ("image", "video")
CLICKS = frozenset(
    {ButtonAction.VARIATIONS, ButtonAction.UPSCALE, ButtonAction.ANIMATE, ButtonAction.REMIX}
)
GONE = "I can't find that file any more, so I can't work on it. Please ask again."
ELSEWHERE = "That button belongs to another thread."
NO_IMAGE = "That message has no image I can use. Pick a message with an image attached."
NO_FORM = (
    "I can't open the remix form here. Reply in the thread with what to change, "
    "and I'll work from the latest result."
)
WRITE_SOMETHING = "Please write what the remix should be."
REMIX_TITLE = "Remix with each::sense"
REMIX_LABEL = "Describe the remix"
TITLE_MAX = 90
ECHO_MAX = 300

# The words each control sends, and why: see each entry's comment. `{ref}` names the file:
# "the reference image" when it travels in `image_urls`, else "the video you made (<url>)".
WORDS: dict[ButtonAction, str] = {
    # a count, so the agent does not stop to ask "how many?"; "keep ... vary the details"
    # is what sets a variation apart from a remix
    ButtonAction.VARIATIONS: (
        "Make 3 variations of {ref}: keep its subject, composition and style, and vary the details."
    ),
    # "exactly as it is": an upscaler, not a new generation that happens to be larger
    ButtonAction.UPSCALE: (
        "Upscale {ref} to a higher resolution. Keep everything else exactly as it is."
    ),
    # image to video, short (videos cost the most and take minutes), the image as the start
    ButtonAction.ANIMATE: (
        "Animate {ref} into a short video (about 5 seconds): keep its subject, composition "
        "and style, and add natural motion."
    ),
    # the person's own words are the instruction; the file is where it starts from
    ButtonAction.REMIX: "Remix {ref}: {prompt}",
}
ASKED: dict[ButtonAction, str] = {
    ButtonAction.VARIATIONS: "asked for variations",
    ButtonAction.UPSCALE: "asked for an upscale",
    ButtonAction.ANIMATE: "asked to animate it",
    ButtonAction.REMIX: "asked for a remix: {prompt}",
}
_LABELS = (
    (ButtonAction.VARIATIONS, "Variations"),
    (ButtonAction.UPSCALE, "Upscale"),
    (ButtonAction.ANIMATE, "Animate"),
    (ButtonAction.REMIX, "Remix"),
)


def new_generation_id() -> str:
    """Client-chosen, like turn ids: short enough for any button id, unique in practice."""
    return uuid.uuid4().hex[:20]


def generation_buttons(generation: GenerationRecord) -> tuple[Button, ...]:
    """The controls under one stored generation: none for audio and other files, no
    Animate for a video (it moves already)."""
    if generation.id is None or generation.media_type not in CONTROLLABLE:
        return ()
    video = generation.media_type == "video"
    return tuple(
        Button(label, action, generation.id)
        for action, label in _LABELS
        if not (video and action is ButtonAction.ANIMATE)
    )


async def offer_controls(surface: Surface, generation: GenerationRecord) -> None:
    """Post the controls right under a generated file that was just posted and stored."""
    buttons = generation_buttons(generation)
    if buttons:
        kind = generation.media_type
        await say(surface, View(text=f"↑ Make more of this {kind}:", buttons=buttons))


def words(action: ButtonAction, *, url: str, image: bool, prompt: str = "") -> str:
    """The prompt one control sends for the file at `url` (an image travels as a reference
    image, so its words say "the reference image"; a video is named by its URL)."""
    ref = "the reference image" if image else f"the video you made ({url})"
    return WORDS[action].format(ref=ref, prompt=prompt)


def asked(action: ButtonAction, prompt: str = "") -> str:
    """What the thread is told before the control's turn: who asked for what."""
    return ASKED[action].format(prompt=_clip(" ".join(prompt.split()), ECHO_MAX))


def editable_prompt(prompt: str) -> str:
    """What a Remix form starts with: the person's own words in the prompt that made the
    file. A control's turn carries our words around them (a remix's instruction is the
    person's; variations, upscales and animations have none of their own)."""
    for action in (ButtonAction.VARIATIONS, ButtonAction.UPSCALE, ButtonAction.ANIMATE):
        head = WORDS[action].split("{ref}", 1)[0]
        if prompt.startswith(head):
            return ""
    head = WORDS[ButtonAction.REMIX].split("{ref}", 1)[0]
    if prompt.startswith(head) and ": " in prompt:
        return prompt.split(": ", 1)[1]
    return prompt


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


async def open_form(reply: Any, form: Form) -> bool:
    """Open `form` through a payload's reply; False where it cannot (or the reply predates
    forms)."""
    opener = getattr(reply, "form", None)
    if opener is None:
        return False
    return bool(await opener(form))


class Creative:
    """The controls' flow, for every platform (handed clicks, submissions and message
    actions by `bot.commands`)."""

    def __init__(self, conversations: Conversations, references: References | None) -> None:
        self.conversations = conversations
        self.references = references

    # --- buttons under a generation -------------------------------------------------

    async def click(self, platform: Platform, click: Click) -> None:
        generation = await self._generation(click.value, click.key, click.reply)
        if generation is None:
            return
        if click.action is ButtonAction.REMIX:
            await self._remix_form(click, generation)
            return
        surface = platform.surface(click.key, user_id=click.user_id)
        await self._iterate(surface, click.user_id, click.action, generation, adult=click.adult)

    async def submit(self, platform: Platform, submission: Submission) -> None:
        """A filled-in remix form: the remix runs as the thread's next turn."""
        if submission.action is not ButtonAction.REMIX:
            log.info("ignoring a submission for %s", submission.action)
            return
        prompt = submission.text.strip()
        if not prompt:
            await submission.reply.tell(WRITE_SOMETHING)
            return
        generation = await self._generation(submission.value, submission.key, submission.reply)
        if generation is None:
            return
        surface = platform.surface(submission.key, user_id=submission.user_id)
        await self._iterate(
            surface,
            submission.user_id,
            ButtonAction.REMIX,
            generation,
            adult=submission.adult,
            prompt=prompt,
        )

    async def _generation(
        self, generation_id: str, key: ThreadKey, reply: Any
    ) -> GenerationRecord | None:
        generation = await self.conversations.store.get_generation(generation_id)
        if generation is None:
            await reply.tell(GONE)
            return None
        if generation.key != key:
            await reply.tell(ELSEWHERE)
            return None
        return generation

    async def _remix_form(self, click: Click, generation: GenerationRecord) -> None:
        """The prompt that made the file, to edit (looked up before the form opens: the
        platform gives a click only a few seconds to open one)."""
        prompt = ""
        if generation.turn_id:
            turn = await self.conversations.store.get_turn(generation.turn_id)
            prompt = editable_prompt(turn.prompt) if turn is not None else ""
        form = Form(
            action=ButtonAction.REMIX,
            value=generation.id or "",
            title=REMIX_TITLE,
            label=REMIX_LABEL,
            text=prompt,
            max_length=self.conversations.settings.max_prompt_chars,
        )
        if not await open_form(click.reply, form):
            await click.reply.tell(NO_FORM)

    async def _iterate(
        self,
        surface: Surface,
        user_id: str,
        action: ButtonAction,
        generation: GenerationRecord,
        *,
        adult: bool,
        prompt: str = "",
    ) -> None:
        image = generation.media_type == "image"
        text = words(action, url=generation.url, image=image, prompt=prompt)
        await self.conversations.say(surface, View(text=asked(action, prompt), by=user_id))
        turn = Turn(
            key=generation.key,
            user_id=user_id,
            text=text,
            image_urls=(generation.url,) if image else (),
            adult=adult,
        )
        await self.conversations.run(turn, surface)

    # --- message actions -------------------------------------------------------------

    async def shortcut(self, platform: Platform, shortcut: Shortcut) -> None:
        """A message action: Remix asks for its prompt first (a form), then runs; Animate
        runs at once. Both in the bot's thread if the message is in one, else a new one."""
        if not shortcut.images:
            await shortcut.reply.tell(NO_IMAGE)
            return
        action = shortcut.action
        if action is ButtonAction.REMIX and shortcut.text is None:
            await self._shortcut_form(shortcut)
            return
        prompt = (shortcut.text or "").strip()
        if action is ButtonAction.REMIX and not prompt:
            await shortcut.reply.tell(WRITE_SOMETHING)
            return
        if self.references is None:
            await shortcut.reply.tell("⚠️ Reference images are not set up on this bot.")
            return
        # first of all: a bad image is refused privately, before any thread opens
        urls = await self.references.host(shortcut.images[:1])
        if action is ButtonAction.REMIX:
            said, title = asked(action, prompt), prompt
        else:
            said, title = "asked to animate an image", "Animate an image"
        key, new_thread = await self._thread_for(platform, shortcut, said, title)
        if key is None:
            return
        turn = Turn(
            key=key,
            user_id=shortcut.user_id,
            text=words(action, url=urls[0], image=True, prompt=prompt),
            new_thread=new_thread,
            image_urls=urls,
            adult=shortcut.adult,
        )
        await self.conversations.run(turn, platform.surface(key, user_id=shortcut.user_id))

    async def _shortcut_form(self, shortcut: Shortcut) -> None:
        form = Form(
            action=ButtonAction.REMIX_MESSAGE,
            value=shortcut.target,
            title=REMIX_TITLE,
            label=REMIX_LABEL,
            max_length=self.conversations.settings.max_prompt_chars,
        )
        if not await open_form(shortcut.reply, form):
            await shortcut.reply.tell(NO_FORM)

    async def _thread_for(
        self, platform: Platform, shortcut: Shortcut, said: str, title: str
    ) -> tuple[ThreadKey | None, bool]:
        """The bot's own thread the message is in (told who asked), or a new thread whose
        root says it; (None, _) when none could open (the person was told)."""
        key = shortcut.key
        if key is not None and await self.conversations.is_bot_thread(key):
            surface = platform.surface(key, user_id=shortcut.user_id)
            await self.conversations.say(surface, View(text=said, by=shortcut.user_id))
            await shortcut.reply.opened(key)
            return key, False
        root = View(text=said, by=shortcut.user_id)
        opened = await open_thread(
            platform, shortcut.channel, shortcut.reply, root=root, title=title[:TITLE_MAX]
        )
        return opened, True
