"""The purge loop: at once, then every interval; store errors are logged and survived."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import pytest

from bot.housekeeping import purge_expired_events, purge_once
from storage.sqlite import SqliteStore


class FakeEvents:
    """An EventStore that records each purge's `now` and fails when told to."""

    def __init__(self, fail: set[int] | None = None) -> None:
        self.calls: list[float] = []
        self.fail = fail or set()
        self.called = asyncio.Event()

    async def claim_event(self, platform: str, event_id: str, *, now: float, ttl: float) -> bool:
        raise AssertionError("the purge loop never claims")

    async def purge_events(self, *, now: float) -> int:
        self.calls.append(now)
        self.called.set()
        if len(self.calls) in self.fail:
            raise RuntimeError("database went away")
        return 3


async def _run_until(
    events: FakeEvents, calls: int, *, interval: float, clock: Callable[[], float]
) -> None:
    task = asyncio.create_task(purge_expired_events(events, interval=interval, clock=clock))
    try:
        async with asyncio.timeout(5):
            while len(events.calls) < calls:
                events.called.clear()
                await events.called.wait()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert task.cancelled()


async def test_purges_at_start_before_the_first_interval() -> None:
    events = FakeEvents()
    task = asyncio.create_task(purge_expired_events(events, interval=3600, clock=lambda: 42.0))
    async with asyncio.timeout(1):
        await events.called.wait()
    assert events.calls == [42.0]
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_purges_every_interval_with_the_clocks_time() -> None:
    ticks = iter(range(100))
    events = FakeEvents()
    await _run_until(events, 4, interval=0.01, clock=lambda: float(next(ticks)))
    assert events.calls[:4] == [0.0, 1.0, 2.0, 3.0]


async def test_survives_and_logs_store_errors(caplog: pytest.LogCaptureFixture) -> None:
    events = FakeEvents(fail={1, 2})
    with caplog.at_level(logging.DEBUG, logger="bot.housekeeping"):
        await _run_until(events, 3, interval=0.01, clock=lambda: 1.0)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2 and "database went away" in caplog.text
    assert "purged 3 expired event claims" in caplog.text


async def test_purge_once_against_a_real_store(caplog: pytest.LogCaptureFixture) -> None:
    store = await SqliteStore.open(":memory:")
    try:
        assert await store.claim_event("slack", "old", now=0.0, ttl=10.0)
        assert await store.claim_event("slack", "new", now=0.0, ttl=100.0)
        with caplog.at_level(logging.DEBUG, logger="bot.housekeeping"):
            assert await purge_once(store, now=50.0) == 1
        assert "purged 1 expired event claims" in caplog.text
        assert await store.claim_event("slack", "old", now=51.0, ttl=10.0)
        assert not await store.claim_event("slack", "new", now=51.0, ttl=10.0)
        await store.close()
        assert await purge_once(store, now=60.0) == 0  # a closed store: logged, not raised
    finally:
        await store.close()
