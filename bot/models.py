"""Neutral value objects shared by the core, the adapters and storage.

Everything here is a frozen dataclass so it can be passed between tasks without copying
and compared in tests. Nothing here knows about Discord or Slack: adapters translate their
payloads into these at the edge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

Mode = Literal["max", "eco"]
MediaKind = Literal["image", "video", "audio", "file"]


@dataclass(frozen=True, slots=True)
class ChannelKey:
    """Where channel settings (eco mode) live: one per platform channel."""

    platform: str
    workspace: str
    channel: str


@dataclass(frozen=True, slots=True)
class ThreadKey:
    """One chat thread; the unit that maps to one each::sense session."""

    platform: str
    workspace: str
    channel: str
    thread: str

    @property
    def channel_key(self) -> ChannelKey:
        return ChannelKey(self.platform, self.workspace, self.channel)

    def __str__(self) -> str:
        return f"{self.platform}:{self.workspace}:{self.channel}:{self.thread}"


@dataclass(frozen=True, slots=True)
class Turn:
    """One message a person sent that the agent should answer.

    `new_thread` is true for the message that opened the thread (the slash command);
    `mode` is a per-thread override (Discord's `mode:` option) stored with the thread;
    `event_id` is the platform's delivery id so redeliveries never start a second generation.
    """

    key: ThreadKey
    user_id: str
    text: str
    new_thread: bool = False
    mode: Mode | None = None
    event_id: str | None = None
    image_urls: tuple[str, ...] = ()  # public URLs only (re-hosted first: bot.references)
    # `behavior` is each::sense's (`plan` answers with a plan and a cost, `agent` runs);
    # `adult`: the platform marks the channel adult, the only place the safety checker may
    # be off (a channel setting alone never turns it off)
    behavior: str | None = None
    adult: bool = False


@dataclass(frozen=True, slots=True)
class ImageRef:
    """An image a person attached, as the platform names it, before it is checked and
    re-hosted (`bot.references`): a URL to download (with the `headers` the platform wants,
    such as a bot token: kept out of `repr`, so a logged ref leaks nothing) or a local
    `path` (the shell). `content_type` and `size` are what the platform declared, checked
    before anything is downloaded; the bytes decide in the end."""

    url: str = ""
    filename: str = ""
    content_type: str | None = None
    size: int | None = None
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    path: Path | None = None

    @property
    def name(self) -> str:
        """What a sentence calls this image."""
        return self.filename or (self.path.name if self.path else "the image")


# --- inbound: what adapters hand the command flow ------------------------------------------


class CommandName(StrEnum):
    """The chat commands, the same names on every platform."""

    SENSE = "sense"
    ECO = "sense-eco"
    PREDICT = "sense-predict"
    WORKFLOW = "sense-workflow"
    USAGE = "sense-usage"
    ADMIN = "sense-admin"
    SETTINGS = "sense-settings"


@dataclass(frozen=True, slots=True)
class Command:
    """A slash command as typed. `text` holds every argument as one line (Slack's `text`;
    Discord joins its options), so parsing and its refusals are the core's, once.

    `admin` is the payload's own answer to "may this person change settings here" when the
    platform puts one in it (Discord's computed permissions), None when it must be asked.
    `reply` answers the person; `event_id` dedupes a redelivered payload.
    """

    name: CommandName
    channel: ChannelKey
    user_id: str
    text: str
    reply: Any  # bot.ports.Reply (Any here: models import nothing from ports)
    mode: Mode | None = None
    admin: bool | None = None
    event_id: str | None = None
    image_urls: tuple[str, ...] = ()
    threadable: bool = True  # False where no thread can open (a DM, a channel the bot is not in)
    # Where the conversation goes when no thread can open (the adapter names it: a DM's
    # conversation, or one answered through the command's own interaction); None refuses.
    place: ThreadKey | None = None
    # The person's role or group ids when the payload carries them (None: ask the platform,
    # and only if an access rule names roles); `admitted`: the access and quota check
    # already passed before the platform was answered (`Commands.admit`).
    roles: frozenset[str] | None = None
    admitted: bool = False
    images: tuple[ImageRef, ...] = ()  # attached images, re-hosted before the turn
    plan: bool = False  # the platform's own plan switch (Discord's `plan:` option)
    adult: bool = False  # see `Turn.adult`
    locale: str | None = None  # the person's language as the platform says it (fr, ja-JP)


@dataclass(frozen=True, slots=True)
class Message:
    """A person's message the bot can see.

    `key` is the thread it belongs to (for a top-level message: the thread that would open
    under it). `message_id` names the message itself: two deliveries of one message (Slack
    sends `app_mention` *and* `message` for a mention) are one message, handled once.
    """

    key: ThreadKey
    user_id: str
    text: str
    message_id: str
    top_level: bool = False
    direct: bool = False  # a direct message to the bot
    mentioned: bool = False
    image_urls: tuple[str, ...] = ()
    admin: bool | None = None  # as `Command.admin`, when the platform puts it in the payload
    roles: frozenset[str] | None = None  # as `Command.roles`
    images: tuple[ImageRef, ...] = ()  # attached images, re-hosted before the turn
    adult: bool = False  # see `Turn.adult`
    locale: str | None = None  # the person's language as the platform says it (fr, ja-JP)


@dataclass(frozen=True, slots=True)
class Click:
    """A button pressed under one of the bot's messages in thread `key`."""

    key: ThreadKey
    user_id: str
    action: ButtonAction
    value: str
    reply: Any  # bot.ports.Reply
    admin: bool | None = None
    event_id: str | None = None
    roles: frozenset[str] | None = None  # as `Command.roles`
    adult: bool = False  # see `Turn.adult`
    locale: str | None = None  # the person's language as the platform says it (fr, ja-JP)


@dataclass(frozen=True, slots=True)
class Submission:
    """A `Form` the person filled in and sent, in thread `key`: the form's `action` and
    `value` come back as they were given, with what was typed in `text`."""

    key: ThreadKey
    user_id: str
    action: ButtonAction
    value: str
    text: str
    reply: Any  # bot.ports.Reply
    event_id: str | None = None
    adult: bool = False  # see `Turn.adult`
    locale: str | None = None  # as `Command.locale`


@dataclass(frozen=True, slots=True)
class Shortcut:
    """A message action ("Remix with each::sense", "Animate") on someone's message with
    images in `channel`. `key` is the thread the message is in (None at the top level): the
    core continues it when it is one of the bot's. `target` names the message for the
    adapter alone (it comes back in a `Form` when a prompt must be asked first); `text` is
    the prompt once there is one."""

    action: ButtonAction
    channel: ChannelKey
    user_id: str
    images: tuple[ImageRef, ...]
    reply: Any  # bot.ports.Reply
    key: ThreadKey | None = None
    target: str = ""
    text: str | None = None
    event_id: str | None = None
    adult: bool = False  # see `Turn.adult`
    locale: str | None = None  # as `Command.locale`


Inbound = Command | Message | Click | Submission | Shortcut


# --- each::sense stream events -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ThinkingDelta:
    content: str


@dataclass(frozen=True, slots=True)
class TextResponse:
    content: str


@dataclass(frozen=True, slots=True)
class Status:
    message: str
    tool_name: str | None = None


@dataclass(frozen=True, slots=True)
class Progress:
    message: str
    percent: float | None = None


@dataclass(frozen=True, slots=True)
class ToolCall:
    name: str
    input: Any = None


@dataclass(frozen=True, slots=True)
class AgentMessage:
    content: str


@dataclass(frozen=True, slots=True)
class GenerationResponse:
    url: str
    generations: tuple[str, ...] = ()
    total: int | None = None
    model: str | None = None
    execution_time_ms: int | None = None


@dataclass(frozen=True, slots=True)
class ClarificationNeeded:
    question: str
    options: tuple[str, ...] = ()
    context: str | None = None


@dataclass(frozen=True, slots=True)
class WebSearchQuery:
    query: str


@dataclass(frozen=True, slots=True)
class WebSearchCitations:
    """Citations as (title, url) pairs; a bare URL citation has its URL as title."""

    citations: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class WorkflowEvent:
    """Any `workflow_*` or `execution_*` event; `kind` is the wire type, `data` the payload."""

    kind: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Complete:
    status: str = "completed"
    generations: tuple[str, ...] = ()
    task_id: str | None = None


Event = (
    ThinkingDelta
    | TextResponse
    | Status
    | Progress
    | ToolCall
    | AgentMessage
    | GenerationResponse
    | ClarificationNeeded
    | WebSearchQuery
    | WebSearchCitations
    | WorkflowEvent
    | Complete
)


@dataclass(frozen=True, slots=True)
class Completion:
    """A non-streamed answer: the text plus every generated URL."""

    content: str
    generations: tuple[str, ...] = ()
    session_id: str | None = None
    task_id: str | None = None


# --- media ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MediaFile:
    """A fetched file on local disk, ready to upload (the fetcher owns its lifetime)."""

    url: str
    path: Path
    filename: str
    content_type: str
    kind: MediaKind
    size: int


# --- what a message shows ------------------------------------------------------------------


class ButtonAction(StrEnum):
    """What a button does. Adapters encode `action` and `value` in a stable custom/action id
    (for example `sense:regen:<turn id>`), so buttons keep working after a restart."""

    STOP = "stop"
    REGENERATE = "regen"
    ANSWER = "answer"
    CANCEL_JOB = "cancel"
    # creative controls under a generated file (the value is the stored generation's id)
    VARIATIONS = "vary"
    UPSCALE = "upscale"
    ANIMATE = "animate"
    REMIX = "remix"
    # a message action's prompt form (the value names the message, for the adapter)
    REMIX_MESSAGE = "remixmsg"
    # a plan's answer (the value is the plan turn's id)
    APPROVE = "approve"
    DECLINE = "decline"


@dataclass(frozen=True, slots=True)
class Button:
    label: str
    action: ButtonAction
    value: str
    style: Literal["primary", "danger"] | None = None


@dataclass(frozen=True, slots=True)
class View:
    """What one bot message shows: a status line above the text, and buttons below."""

    text: str = ""
    status: str = ""
    buttons: tuple[Button, ...] = ()
    by: str | None = None  # a person's id, shown as a mention before the text (never a ping)


@dataclass(frozen=True, slots=True)
class Form:
    """A small dialog (a modal) with one text field, opened in answer to a click or a
    message action. Its `action` and `value` identify it like a button's do, so a
    submission after a restart still knows what it is about."""

    action: ButtonAction
    value: str
    title: str
    label: str
    text: str = ""  # the field's initial text
    submit: str = "Send"
    max_length: int = 4000


@dataclass(frozen=True, slots=True)
class SurfaceLimits:
    """What a platform allows; the renderer and media code obey these."""

    min_edit_interval: float
    max_text: int
    max_upload_bytes: int


# --- storage records -----------------------------------------------------------------------


class TurnStatus(StrEnum):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"


@dataclass(frozen=True, slots=True)
class ThreadRecord:
    key: ThreadKey
    session_id: str
    owner_id: str
    created_at: float
    last_used_at: float
    mode: Mode | None = None


@dataclass(frozen=True, slots=True)
class ChannelSettings:
    eco: bool = False
    changed_by: str | None = None
    changed_at: float | None = None
    web_search: bool | None = None  # None: each::sense's default (on)
    safety_checker: bool = True  # off only counts where the platform marks the channel adult


@dataclass(frozen=True, slots=True)
class TurnRecord:
    id: str
    key: ThreadKey
    user_id: str
    prompt: str
    status: TurnStatus
    started_at: float
    finished_at: float | None = None
    mode: Mode = "max"
    # The replica running the turn; a restart interrupts only turns whose owner stopped
    # beating (None: recorded before replicas had ids, or by a single-process bot).
    owner: str | None = None
    # what else the request carried, so Regenerate and Retry send the same request again
    behavior: str | None = None
    image_urls: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ThreadSummary:
    """One of a person's recent threads: where it is, what it began with, when they last
    used it (their latest turn or run there)."""

    key: ThreadKey
    title: str
    last_at: float


@dataclass(frozen=True, slots=True)
class GenerationRecord:
    url: str
    media_type: str
    session_id: str
    key: ThreadKey
    message_id: str | None
    created_at: float
    # the id buttons name (`sense:vary:<id>`), chosen by the core; the turn that made it
    id: str | None = None
    turn_id: str | None = None


class JobKind(StrEnum):
    PREDICTION = "prediction"
    WORKFLOW = "workflow"


class JobStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A prediction or workflow run the bot waits for; kept so a restart resumes waiting."""

    id: str
    kind: JobKind
    remote_id: str
    key: ThreadKey
    user_id: str
    webhook_secret: str
    status: JobStatus
    created_at: float
    title: str = ""
    message_id: str | None = None
    finished_at: float | None = None
    output: tuple[str, ...] = ()
    error: str | None = None
    # The replica following the job; another replica takes it over once this one stops beating.
    owner: str | None = None


@dataclass(frozen=True, slots=True)
class BudgetRefusal:
    """What a replica learned from a 429 about shared budget `name` (rates in calls a second,
    times in wall-clock seconds): go on at `rate`, grow no higher than `ceiling` until
    `until`. `source` names the replica that learned it; `at` is when it was recorded."""

    name: str
    source: str
    rate: float
    ceiling: float
    until: float
    at: float
