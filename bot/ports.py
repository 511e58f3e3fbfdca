"""The protocols the core depends on: a chat platform (`Platform`, its threads' `Surface`s and
the `Reply` of one inbound payload) and where state lives (the Store roles). Adapters
implement the first three; `storage/` implements the Store.

They stay small on purpose (bolt's two-method thread-context store is the model): a new
platform or a new database should be an afternoon's work.
"""

from __future__ import annotations

from collections.abc import Iterable
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
        """Who counts as an admin here, for a refusal ("people with Manage Channels"): a
        sentence marked with `bot.i18n.N_`, which the core translates where it is used."""
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


class ThreadStore(Protocol):
    """Threads (one each::sense session each), the turns run in them and what they generated.

    Every method is safe to call from many concurrent turns and from several replicas.
    """

    async def get_thread(self, key: ThreadKey) -> ThreadRecord | None:
        """The record `save_thread` last stored under `key`, or None if there is none."""
        ...

    async def save_thread(self, record: ThreadRecord) -> None:
        """Insert or replace the thread's record (every field, including `mode`)."""
        ...

    async def touch_thread(self, key: ThreadKey, *, at: float) -> None:
        """Set the thread's `last_used_at` to `at`, leaving every other field; a thread that
        was never saved stays unknown."""
        ...

    async def add_generation(self, record: GenerationRecord) -> None:
        """Remember a generated file; the same URL may be recorded more than once."""
        ...

    async def begin_turn(self, record: TurnRecord) -> None:
        """Insert or replace the turn, with its `owner` (the replica running it)."""
        ...

    async def finish_turn(self, turn_id: str, *, status: TurnStatus, at: float) -> None:
        """Give a running turn its final status and `finished_at`, and forget any stop
        request for it (there is nothing left to stop). A final status is final: a turn
        already finished or interrupted (by a replica that took it for dead) keeps it, and an
        unknown id changes nothing."""
        ...

    async def get_turn(self, turn_id: str) -> TurnRecord | None:
        """The turn as last written, or None for an unknown id."""
        ...

    async def interrupt_running_turns(
        self, *, at: float, stale_before: float | None = None, replica_id: str | None = None
    ) -> list[TurnRecord]:
        """Mark turns still `running` whose process died under them as `interrupted`
        (`finished_at=at`) and return them, oldest first, so their threads can be told to
        send the message again.

        Without `stale_before` every running turn counts as dead (one process, at start-up).
        With it, only turns whose owner's last heartbeat is older than `stale_before`, whose
        owner never beat, or that have no owner; never a live replica's. `replica_id` names
        the caller when it has just started: its own running turns are a previous life's and
        are interrupted too (leave it None in a periodic sweep). Each turn is returned to
        exactly one call, however many replicas call at once.
        """
        ...


class ChannelStore(Protocol):
    """Per-channel settings."""

    async def get_channel(self, key: ChannelKey) -> ChannelSettings:
        """The channel's settings; a channel never set has the defaults (`ChannelSettings()`)."""
        ...

    async def set_channel_eco(self, key: ChannelKey, *, eco: bool, by: str, at: float) -> None:
        """Switch eco mode and record who did it when; the last call wins."""
        ...


class EventStore(Protocol):
    """Platform event ids already handled, so a redelivery never starts a second turn."""

    async def claim_event(self, platform: str, event_id: str, *, now: float, ttl: float) -> bool:
        """Record a platform event id for `ttl` seconds; True the first time, False for a
        redelivery while the claim lasts. Once it expired (`now >= claimed now + ttl`) the id
        may be claimed again. Atomic: of any number of concurrent claimers of one id, on one
        replica or several, exactly one gets True. Ids are per platform."""
        ...

    async def purge_events(self, *, now: float) -> int:
        """Forget claims that expired by `now`; return how many went. Live claims stay."""
        ...


class JobStore(Protocol):
    """Predictions and workflow runs the bot waits for, so a restart resumes waiting."""

    async def save_job(self, record: JobRecord) -> None:
        """Insert or replace the job, with its `owner` (the replica following it)."""
        ...

    async def get_job(self, job_id: str) -> JobRecord | None:
        """The job as last written, or None for an unknown id."""
        ...

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
        three webhook deliveries and a poller racing them post the result once. A finished
        or unknown job gives False and keeps what the winner wrote."""
        ...

    async def running_jobs(self) -> list[JobRecord]:
        """Every job still `running`, oldest first, whoever owns it."""
        ...


class ReplicaStore(Protocol):
    """What several bot processes on one database need to share: who is alive, who follows
    which job, and Stop clicks that arrive at a replica not running the turn."""

    async def heartbeat(self, replica_id: str, *, at: float) -> None:
        """Record that `replica_id` was alive at `at` (insert or update its one row)."""
        ...

    async def take_over_jobs(
        self, replica_id: str, *, stale_before: float, at: float
    ) -> list[JobRecord]:
        """Make `replica_id` the owner of every running job whose owner's last heartbeat is
        older than `stale_before` (or that has no owner, or whose owner never beat) and return
        them, oldest first, now owned by `replica_id`. Jobs of live replicas stay theirs.
        Each job is returned to exactly one call, however many replicas call at once. The
        caller's heartbeat is recorded at `at` first, so what it took is not stale to the
        next replica that sweeps with the same cut-off."""
        ...

    async def request_stop(self, turn_id: str, *, at: float) -> bool:
        """Ask the owner of a running turn to stop it; True if the turn is running (the
        request is recorded until the turn finishes), False if it is finished or unknown."""
        ...

    async def stop_requested(self, turn_ids: Iterable[str]) -> set[str]:
        """Which of `turn_ids` have a pending stop request; the owner polls this."""
        ...


class LeaseStore(Protocol):
    """Named leases with a time limit: per-thread order and per-person caps across replicas.

    A lease is held by one holder until it is released or its time runs out (`now >=
    expires`); a holder that dies loses it by itself. Every method is atomic, on one replica
    or several.
    """

    async def acquire_lease(self, name: str, holder: str, *, ttl: float, now: float) -> bool:
        """Take the lease for `ttl` seconds if it is free or expired, or renew it if `holder`
        already holds it; True then. False while another holder's lease lasts. Of concurrent
        callers for one free lease exactly one gets True."""
        ...

    async def release_lease(self, name: str, holder: str) -> bool:
        """Give the lease up; True if `holder` held it. Another holder's lease stays."""
        ...

    async def count_leases(self, prefix: str, *, now: float) -> int:
        """How many unexpired leases have a name starting with `prefix` (exactly, case and
        `%`/`_` included), e.g. `user:<id>:` for a person's running turns."""
        ...


class Store(ThreadStore, ChannelStore, EventStore, JobStore, ReplicaStore, LeaseStore, Protocol):
    """All durable state, every role in one object, as `storage.open_store` returns it.

    Every method is safe to call concurrently, from many turns and from several processes
    sharing one database. Parts of the core should ask for the narrowest role they use.
    """

    async def close(self) -> None:
        """Release the connection(s); the last call on a store."""
        ...
