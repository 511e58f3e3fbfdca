"""The protocols the core depends on: a chat platform (`Platform`, its threads' `Surface`s and
the `Reply` of one inbound payload) and where state lives (the Store roles). Adapters
implement the first three; `storage/` implements the Store.

They stay small on purpose (bolt's two-method thread-context store is the model): a new
platform or a new database should be an afternoon's work.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import aiohttp

    from bot.config import Settings
    from bot.http import HttpServer

from bot.models import (
    ChannelKey,
    ChannelSettings,
    GenerationRecord,
    JobRecord,
    JobStatus,
    MediaFile,
    SurfaceLimits,
    ThreadKey,
    ThreadRecord,
    TurnRecord,
    TurnStatus,
    View,
)


class Surface(Protocol):
    """One thread on one platform, as the core sees it.

    Pacing is the surface's, through `bot.pacing`: a live `edit` may return before the
    platform has it (a newer edit of the same message replaces a pending one), a `final`
    edit returns once the platform has it and is served before live edits. Platform rate
    limits are waited out, never raised. Failures arrive as `bot.errors.BotError` subclasses
    (the adapter maps its SDK's errors in one place); `MediaRejected` from `upload` means
    "post a link instead". Messages are always sent with mentions disabled.
    """

    @property
    def limits(self) -> SurfaceLimits: ...

    async def post(self, view: View) -> str:
        """Post a new message in the thread; return its id."""
        ...

    async def edit(self, message_id: str, view: View, *, final: bool = False) -> None:
        """Replace what a message posted by `post` shows. `final` marks a turn's last edit:
        adapters that share a rate budget between threads serve it first."""
        ...

    async def upload(self, media: MediaFile) -> None:
        """Upload a fetched file into the thread (images and videos display inline)."""
        ...

    async def post_link(self, url: str, *, kind: str, reason: str) -> None:
        """Show a generated file by link when it cannot be uploaded (`reason` says why)."""
        ...


class Reply(Protocol):
    """How the core answers the person behind one inbound payload (a command or a click).

    Adapters build one per payload: Slack answers through the payload's `response_url`,
    Discord through the interaction (its response, then followups), the shell prints.
    """

    async def tell(self, text: str, *, public: bool = False) -> None:
        """Say `text` to the person: privately unless `public` (then the channel sees it).
        Never raises: a reply that cannot be delivered is logged by the adapter."""
        ...

    async def opened(self, key: ThreadKey) -> None:
        """The command's answer continues in thread `key` (Discord points its deferred
        response there); a no-op where the platform shows that by itself."""
        ...


class Platform(Protocol):
    """One connected chat platform, as the command flow (`bot.commands`) sees it.

    An adapter translates payloads into `Inbound` objects and hands them to
    `Commands.handle(platform, inbound)`; everything else (checks, sessions, who may press
    what, dedupe, notices) happens in the core, once for every platform.
    """

    @property
    def name(self) -> str:
        """The `ThreadKey.platform` value of this platform's threads."""
        ...

    async def open_thread(self, channel: ChannelKey, *, root: View, title: str) -> ThreadKey:
        """Post `root` in `channel` and open a thread under it; raise
        `bot.errors.PlatformRefused` with a sentence for the person (what to fix: a
        permission, an invitation) when the platform will not."""
        ...

    async def is_admin(self, user_id: str, channel: ChannelKey) -> bool:
        """Whether the person may change this channel's settings (platform roles only;
        the core adds `BOT_ADMINS` and the payload's own hint)."""
        ...

    @property
    def admins(self) -> str:
        """Who counts as an admin here, for a refusal ("people with Manage Channels")."""
        ...

    def surface(self, key: ThreadKey, *, user_id: str | None = None) -> Surface:
        """The surface of one of this platform's threads (`user_id`: who the turn is for)."""
        ...

    @property
    def connected(self) -> bool:
        """Whether it can take work now (`/readyz`)."""
        ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class AdapterSpec(Protocol):
    """What the composition root needs to know of one adapter package (`adapters.REGISTRY`).

    Kept free of platform SDK imports, so listing the adapters costs nothing: `build`
    imports the SDK."""

    @property
    def name(self) -> str: ...

    @property
    def not_configured(self) -> str:
        """The sentence `run` prints when this platform is wanted but not configured."""
        ...

    def configured(self, settings: Settings) -> bool: ...

    def build(self, settings: Settings, core: Any, http: HttpServer) -> Platform:
        """The platform, ready to `start()`; `core` is a `bot.core.Core`."""
        ...

    async def doctor(self, settings: Settings, session: aiohttp.ClientSession) -> int:
        """Print this platform's checks (never a secret); the number of problems found."""
        ...


class Store(Protocol):
    """Durable state. Every method is safe to call from many concurrent turns."""

    async def get_thread(self, key: ThreadKey) -> ThreadRecord | None: ...

    async def save_thread(self, record: ThreadRecord) -> None:
        """Insert or replace the thread's record."""
        ...

    async def touch_thread(self, key: ThreadKey, *, at: float) -> None: ...

    async def get_channel(self, key: ChannelKey) -> ChannelSettings: ...

    async def set_channel_eco(self, key: ChannelKey, *, eco: bool, by: str, at: float) -> None: ...

    async def begin_turn(self, record: TurnRecord) -> None: ...

    async def finish_turn(self, turn_id: str, *, status: TurnStatus, at: float) -> None: ...

    async def get_turn(self, turn_id: str) -> TurnRecord | None: ...

    async def interrupt_running_turns(self, *, at: float) -> list[TurnRecord]:
        """Mark every turn still `running` (the process died under it) as `interrupted` and
        return them, so their threads can be told to send the message again."""
        ...

    async def add_generation(self, record: GenerationRecord) -> None: ...

    async def claim_event(self, platform: str, event_id: str, *, now: float, ttl: float) -> bool:
        """Record a platform event id; True the first time, False for a redelivery.
        Atomic, so two replicas handling the same retry agree on one winner."""
        ...

    async def save_job(self, record: JobRecord) -> None: ...

    async def get_job(self, job_id: str) -> JobRecord | None: ...

    async def finish_job(
        self,
        job_id: str,
        *,
        status: JobStatus,
        output: tuple[str, ...],
        error: str | None,
        at: float,
    ) -> bool:
        """Move a running job to a terminal status; True only for the call that did it, so
        three webhook deliveries and a poller racing them post the result once."""
        ...

    async def running_jobs(self) -> list[JobRecord]: ...

    async def close(self) -> None: ...
