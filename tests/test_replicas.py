"""`Coordinator` on a hand-driven clock against a real store: leases of running work are
renewed in time, and not at every look for stop requests."""

from __future__ import annotations

from pathlib import Path

from bot.replicas import RENEW_SHARE, Coordinator
from storage import open_store
from tests.conftest import make_settings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_leases_of_running_work_are_renewed_a_third_of_the_way_through(
    tmp_path: Path,
) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 'bot.db'}")
    clock = Clock()
    settings = make_settings(replica_ttl=30.0)
    mine = Coordinator(store, settings, enabled=True, clock=clock)
    try:
        async with mine.thread_turn("T/C/1", on_wait=lambda: None):
            for _ in range(10):  # looks for stop requests, 0.25 s apart: nothing to renew
                clock.now += 0.25
                await mine.renew()
            # still the lease as taken: it runs out 30 s after it was taken
            assert await store.count_leases("thread:", now=1000.0 + 30.0) == 0
            clock.now = 1000.0 + 30.0 / RENEW_SHARE + 0.1
            await mine.renew()
            clock.now = 1000.0 + 30.0 + 1.0  # past the first lease's end
            assert not await store.acquire_lease("thread:T/C/1", "other", ttl=30, now=clock.now)
    finally:
        await store.close()
