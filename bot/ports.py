"""The two protocols the core depends on: how to show things (`Surface`) and where state
lives (`Store`). Adapters implement `Surface`; `storage/` implements `Store`.

Both stay small on purpose (bolt's two-method thread-context store is the model): a new
platform or a new database should be an afternoon's work.
"""

from __future__ import annotations

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
