"""Background work started after a platform was answered."""

from __future__ import annotations

import asyncio
import logging

from bot.tasks import BackgroundTasks


async def test_failures_are_logged_and_waiting_covers_tasks_started_meanwhile(caplog) -> None:
    tasks = BackgroundTasks("test")
    done: list[str] = []

    async def second() -> None:
        done.append("second")

    async def first() -> None:
        tasks.spawn(second(), name="second")  # a turn that starts another (Regenerate)
        raise RuntimeError("boom")

    tasks.spawn(first(), name="first")
    await asyncio.wait_for(tasks.wait_idle(), 2)
    assert done == ["second"]
    assert any(
        r.levelno == logging.ERROR and "test: first failed" in r.getMessage()
        for r in caplog.records
    )


async def test_cancel_all_stops_running_work() -> None:
    tasks = BackgroundTasks("test")
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def forever() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    tasks.spawn(forever(), name="forever")
    await asyncio.wait_for(started.wait(), 2)
    await asyncio.wait_for(tasks.cancel_all(), 2)
    assert cancelled.is_set()
    await asyncio.wait_for(tasks.wait_idle(), 2)
