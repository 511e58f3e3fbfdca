"""The two protocols the core depends on: how to show things (`Surface`) and where state
lives (`Store`). Adapters implement `Surface`; `storage/` implements `Store`.

Both stay small on purpose (bolt's two-method thread-context store is the model): a new
platform or a new database should be an afternoon's work.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

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

    Every method may raise `bot.errors.BotError` subclasses only for conditions a person should
    hear about; platform rate limits are the adapter's job (it waits them out). Messages are
    always sent with mentions disabled.
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
