"""The protocols the core depends on: a chat platform (`Platform`, its threads' `Surface`s and
the `Reply` of one inbound payload) and where state lives (the Store roles). Adapters
implement the first three; `storage/` implements the Store.

They stay small on purpose (bolt's two-method thread-context store is the model): a new
platform or a new database should be an afternoon's work.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import aiohttp

    from bot.config import Settings
    from bot.http import HttpServer

from bot.models import (
    BudgetRefusal,
    ChannelKey,
    ChannelSettings,
    Form,
    GenerationRecord,
    JobRecord,
    JobStatus,
    MediaFile,
    SurfaceLimits,
    ThreadKey,
    ThreadRecord,
    ThreadSummary,
    TurnRecord,
    TurnStatus,
    View,
)
from bot.operator_records import (
    AccessEntry,
    AccessKind,
    QuotaLimit,
    QuotaName,
    UsageBy,
    UsageEvent,
    UsageLeader,
    UsageTotal,
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


@runtime_checkable
class StatusSurface(Protocol):
    """A surface that can also show what a turn is doing outside its messages (an assistant
    thread's "is thinking…" line). Optional: the core looks for it (`bot.status`) and keeps the
    line current, refreshing it before the platform drops it."""

    @property
    def status_lifetime(self) -> float:
        """Seconds the platform keeps a status before clearing it by itself."""
        ...

    async def show_status(self, text: str) -> None:
        """Show `text` as the thread's status; "" clears it. May raise `BotError`."""
        ...


@runtime_checkable
class TitledSurface(Protocol):
    """A surface whose thread has a title the bot sets (an assistant thread); optional.
    Platforms that name a thread when it opens (`Platform.open_thread`) need none."""

    async def set_title(self, title: str) -> None:
        """Give the thread this title. May raise `BotError`."""
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

    async def form(self, form: Form) -> bool:
        """Open `form` (a modal) for the person, as this payload's answer; its submission
        arrives as a `Submission` (or a `Shortcut` with text). False when this payload
        cannot open one (too late, or not a click); the core then says what to do instead.
        Replies that predate forms lack this method: the core treats that as False."""
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

    async def roles_of(
        self, user_id: str, channel: ChannelKey, *, among: frozenset[str]
    ) -> frozenset[str]:
        """Which of `among` (role or group ids an access rule names) the person has, for
        payloads that do not carry the person's roles (`roles` None); raise
        `bot.errors.PlatformError` when the platform cannot say."""
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
        """Remember a generated file; the same URL may be recorded more than once. Its `id`
        (chosen by the core, unique) is how `get_generation` finds it again."""
        ...

    async def get_generation(self, generation_id: str) -> GenerationRecord | None:
        """The generation recorded with this `id` (every field as added), or None for an
        unknown id (and for ids of records added without one)."""
        ...

    async def begin_turn(self, record: TurnRecord) -> None:
        """Insert or replace the turn, with its `owner` (the replica running it) and every
        other field (its `behavior` and `image_urls` included: they come back as given)."""
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

    async def set_channel_web_search(
        self, key: ChannelKey, *, web_search: bool | None, by: str, at: float
    ) -> None:
        """Set web search (None: each::sense's default) and record who did it when; the
        other settings stay as they are; the last call wins."""
        ...

    async def set_channel_safety(
        self, key: ChannelKey, *, enabled: bool, by: str, at: float
    ) -> None:
        """Switch the safety checker and record who did it when; the other settings stay
        as they are; the last call wins."""
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

    async def set_channel_web_search(
        self, key: ChannelKey, *, web_search: bool | None, by: str, at: float
    ) -> None:
        """Set web search (None: each::sense's default) and record who did it when; the
        other settings stay as they are; the last call wins."""
        ...

    async def set_channel_safety(
        self, key: ChannelKey, *, enabled: bool, by: str, at: float
    ) -> None:
        """Switch the safety checker and record who did it when; the other settings stay
        as they are; the last call wins."""
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


class BudgetStore(Protocol):
    """Token buckets kept in the store, so every replica of one app draws on one platform
    budget (Slack per workspace and method, Discord per bot token), not one each."""

    async def take_token(self, name: str, *, rate: float, burst: float, now: float) -> float:
        """Draw one token from bucket `name` (refilling at `rate` per second up to `burst`)
        and return how long the caller must wait before it may spend it: 0 when one was
        there. Atomic: concurrent callers on any replica are served one after another, each
        told its own wait, so the bucket's rate holds across all of them together."""
        ...

    async def block_budget(
        self, name: str, *, rate: float, burst: float, now: float, until: float
    ) -> None:
        """The platform refused a call (a 429 saying when to come back): leave bucket `name`
        empty until `until`, so no replica's caller is told a slot before then. Tokens
        already drawn stay drawn; a bucket already blocked longer stays so."""
        ...

    async def record_refusal(self, refusal: BudgetRefusal) -> None:
        """Keep what a replica learned from a 429 (the latest per budget), for the others."""
        ...

    async def refusals_since(self, at: float) -> list[BudgetRefusal]:
        """The refusals recorded after `at` (wall time), oldest first."""
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


class UsageStore(Protocol):
    """What people used (turns, generations, direct runs and their cost), for `/sense-usage`.

    Written once per event by whichever replica saw it end; read in totals per period."""

    async def add_usage(self, event: UsageEvent) -> bool:
        """Record `event`; True the first time, False (and nothing changes) when an event of
        the same `kind` and `ref` is already recorded, on any replica, however many write it
        at once."""
        ...

    async def usage_totals(
        self,
        platform: str,
        workspace: str,
        *,
        since: float,
        user_id: str | None = None,
        channel: str | None = None,
    ) -> list[UsageTotal]:
        """Events at or after `since` in the workspace (only the person's, only the
        channel's, when given), one total per (`kind`, `detail`), ordered by kind and
        detail; a kind with no event is absent."""
        ...

    async def usage_leaders(
        self, platform: str, workspace: str, *, since: float, by: UsageBy, limit: int
    ) -> list[UsageLeader]:
        """The `limit` people (`by="user"`) or channels with the most turns and runs since
        `since`, most first (then by cost, then by id)."""
        ...

    async def purge_usage(self, *, before: float) -> int:
        """Forget events older than `before`; return how many went."""
        ...


class QuotaStore(Protocol):
    """Daily limits admins set, and how much of each limit was taken on a day."""

    async def quota_limits(
        self, platform: str, workspace: str, *, channel: str
    ) -> list[QuotaLimit]:
        """The limits set for the whole workspace (`channel` ""), then those set for
        `channel`, each ordered by name."""
        ...

    async def set_quota_limit(
        self,
        platform: str,
        workspace: str,
        *,
        channel: str,
        name: QuotaName,
        value: int | None,
        by: str,
        at: float,
    ) -> None:
        """Set a limit for the workspace (`channel` "") or one channel; `value` None removes
        it (the next level applies again). The last call wins."""
        ...

    async def take_quota(self, takes: Sequence[tuple[str, int]], *, day: int) -> str | None:
        """Count one use of each `(scope, limit)` on `day` if every scope is under its limit
        (`limit` >= 1), and return None; else count nothing and return a scope that is full.
        Atomic: of concurrent takers on one replica or several, no scope ever goes past its
        limit, and a refused take leaves every count as it was."""
        ...

    async def quota_used(self, scopes: Iterable[str], *, day: int) -> dict[str, int]:
        """How many uses of each scope `take_quota` counted on `day` (0 for none)."""
        ...

    async def purge_quota_use(self, *, before_day: int) -> int:
        """Forget the counts of days before `before_day`; return how many went."""
        ...


class AccessStore(Protocol):
    """The allow and deny lists admins keep per workspace (the settings add their own)."""

    async def access_entries(self, platform: str, workspace: str) -> list[AccessEntry]:
        """Every entry of the workspace, ordered by kind, then value."""
        ...

    async def set_access(self, platform: str, workspace: str, entry: AccessEntry) -> None:
        """Put `entry` on its list, replacing an entry of the same kind and value (an
        allowed id that is denied is no longer allowed)."""
        ...

    async def remove_access(
        self, platform: str, workspace: str, *, kind: AccessKind, value: str
    ) -> bool:
        """Take the id off both lists; True if it was on one."""
        ...


class HistoryStore(Protocol):
    """What one person did, for a page about them (Slack's App Home): their recent threads
    and how many turns they ran. Read-only over the turns and jobs already recorded."""

    async def recent_threads(
        self, platform: str, workspace: str, user_id: str, *, limit: int
    ) -> list[ThreadSummary]:
        """The threads where `user_id` began a turn or a run in this workspace, newest first
        by their latest one there (ties: channel, then thread), at most `limit`. `title` is
        the thread's first prompt (or, with no turn, its first run's title), at most 200
        characters; `last_at` is when the person's latest turn or run there started."""
        ...

    async def turn_counts(
        self, platform: str, workspace: str, user_id: str, *, since: Sequence[float]
    ) -> list[int]:
        """For each cut-off in `since`, how many turns `user_id` began in this workspace at
        or after it (whatever became of them), in the same order."""
        ...


class Store(
    ThreadStore,
    ChannelStore,
    EventStore,
    JobStore,
    ReplicaStore,
    LeaseStore,
    UsageStore,
    QuotaStore,
    AccessStore,
    BudgetStore,
    HistoryStore,
    Protocol,
):
    """All durable state, every role in one object, as `storage.open_store` returns it.

    Every method is safe to call concurrently, from many turns and from several processes
    sharing one database. Parts of the core should ask for the narrowest role they use.
    """

    async def close(self) -> None:
        """Release the connection(s); the last call on a store."""
        ...
