"""Several replicas on one database: who runs what, and what must hold across processes.

Each process is a replica with an id and a heartbeat in the store. What must hold across
replicas lives in the store, never only in memory:
- per-thread order: a turn holds the lease `thread:<key>` while it runs, so a message for a
  thread whose turn runs on another replica waits its turn (each::sense answers
  `SESSION_BUSY` otherwise);
- per-person caps: a running turn or direct run holds `user:<id>:<token>`, counted across
  replicas;
- Stop pressed on any replica: a stop request in the store, which the owner polls;
- dead replicas: a live replica sweeps for turns and jobs whose owner's heartbeat is stale;
  turns are reported interrupted in their threads, jobs are followed on.

With one process and SQLite (`COORDINATE_REPLICAS=auto`) only the heartbeat runs: the
in-memory locks already give the same guarantees without a database write per turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator, Callable

from bot.config import Settings
from bot.errors import BusyError
from bot.i18n import ngettext
from bot.ports import Store

log = logging.getLogger(__name__)

POLL = 0.25  # seconds between looks at a lease another replica holds, or at stop requests
RENEW_SHARE = 3  # leases are renewed when a third of their time has passed


def new_replica_id() -> str:
    """Unique per process start: host, pid and a random tail (pids repeat in containers)."""
    host = socket.gethostname().split(".")[0][:24] or "host"
    return f"{host}-{os.getpid()}-{secrets.token_hex(3)}"


class Coordinator:
    """The replica's view of the shared state; `enabled` is False for a lone process."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        enabled: bool,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.enabled = enabled
        self.replica_id = settings.replica_id or new_replica_id()
        self.ttl = settings.replica_ttl
        self._clock = clock
        self._held: set[str] = set()  # leases this replica holds, renewed while held
        self._renewed = clock()  # leases taken since are fresh until a third of their ttl

    # --- leases -----------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def thread_turn(
        self, thread: str, *, on_wait: Callable[[], object]
    ) -> AsyncIterator[None]:
        """Hold the thread's lease for the block; waits (calling `on_wait` once) while
        another replica's turn runs there."""
        if not self.enabled:
            yield
            return
        name = f"thread:{thread}"
        told = False
        while not await self._take(name):
            if not told:
                told = True
                result = on_wait()
                if asyncio.iscoroutine(result):
                    await result
            await asyncio.sleep(POLL)
        try:
            yield
        finally:
            await self._release(name)

    @contextlib.asynccontextmanager
    async def person_slot(self, user_id: str, *, limit: int) -> AsyncIterator[None]:
        """One of the person's `limit` slots across every replica, or `BusyError`."""
        if not self.enabled:
            yield
            return
        prefix = f"user:{user_id}:"
        count = await self.store.count_leases(prefix, now=self._clock())
        if count >= limit:
            raise BusyError(
                ngettext(
                    "You already have {count} request running. "
                    "Please wait for it to finish before sending another.",
                    "You already have {count} requests running. "
                    "Please wait for one to finish before sending another.",
                    count,
                ).format(count=count)
            )
        name = prefix + secrets.token_hex(6)
        await self._take(name)
        try:
            yield
        finally:
            await self._release(name)

    async def _take(self, name: str) -> bool:
        taken = await self.store.acquire_lease(
            name, self.replica_id, ttl=self.ttl, now=self._clock()
        )
        if taken:
            self._held.add(name)
        return taken

    async def _release(self, name: str) -> None:
        self._held.discard(name)
        with contextlib.suppress(Exception):
            await self.store.release_lease(name, self.replica_id)

    async def renew(self) -> None:
        """Keep this replica's leases alive while their work runs: each a third of the way
        through its time, not at every look for stop requests (with a thousand turns that
        would be thousands of writes four times a second)."""
        now = self._clock()
        if now - self._renewed < self.ttl / RENEW_SHARE:
            return
        self._renewed = now
        for name in list(self._held):
            await self.store.acquire_lease(name, self.replica_id, ttl=self.ttl, now=now)

    # --- liveness ---------------------------------------------------------------------

    async def heartbeat(self) -> None:
        await self.store.heartbeat(self.replica_id, at=self._clock())

    def stale_before(self) -> float:
        return self._clock() - self.ttl


async def every(seconds: float, work: Callable[[], object], *, what: str) -> None:
    """Run `work` now and every `seconds` until cancelled; a failure is logged, not fatal."""
    while True:
        try:
            result = work()
            if asyncio.iscoroutine(result):
                await result
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s failed; trying again in %.0f s", what, seconds)
        await asyncio.sleep(seconds)
