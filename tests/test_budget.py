"""The process-wide live-edit budget: many turns share it fairly; finals never wait."""

from __future__ import annotations

import asyncio
import time

import pytest

from bot.models import Complete, SurfaceLimits, TextResponse
from bot.pacing import EditBudget
from bot.render import ReplyRenderer
from tests.util import RecordingSurface


async def test_bucket_spaces_acquisitions_at_its_rate() -> None:
    budget = EditBudget(100, burst=1)
    start = time.monotonic()
    for _ in range(11):
        await budget.acquire()
    assert time.monotonic() - start >= 0.09  # 10 waits of ~10 ms after the first token


async def test_waiters_are_served_in_arrival_order() -> None:
    budget = EditBudget(200, burst=1)
    await budget.acquire()
    order: list[int] = []

    async def take(n: int) -> None:
        await budget.acquire()
        order.append(n)

    tasks = []
    for n in range(5):
        tasks.append(asyncio.create_task(take(n)))
        await asyncio.sleep(0)
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3, 4]


def test_rate_must_be_positive() -> None:
    with pytest.raises(ValueError):
        EditBudget(0)


async def test_many_turns_share_the_budget_and_finals_do_not_wait() -> None:
    """20 turns streaming for ~0.5 s with a 10 ms interval would make ~1,000 live edits;
    a 40/s budget allows about 20 (+ burst); every final still lands at once."""
    budget = EditBudget(40, burst=2)
    limits = SurfaceLimits(min_edit_interval=0.01, max_text=2000, max_upload_bytes=0)
    surfaces = [RecordingSurface(limits=limits) for _ in range(20)]
    renderers = [
        ReplyRenderer(s, turn_id=f"t{i}", mode="max", budget=budget) for i, s in enumerate(surfaces)
    ]
    for renderer in renderers:
        await renderer.start()
    began = time.monotonic()
    for step in range(50):
        for renderer in renderers:
            renderer.feed(TextResponse(f"w{step} "))
        await asyncio.sleep(0.01)
    live_edits = sum(1 for s in surfaces for kind, _ in s.calls if kind == "edit")
    elapsed = time.monotonic() - began  # measured: a loaded machine makes it longer, not flaky
    assert live_edits <= 40 * elapsed + 2 + 8, live_edits  # rate x time + burst + slack
    started = time.monotonic()
    for renderer in renderers:
        renderer.feed(Complete())
        await renderer.finish()
    # 20 finals through a 40/s budget would need half a second of tokens: they took none
    # (bounded loosely, so a loaded machine cannot make this fail)
    assert time.monotonic() - started < 5.0
    for surface in surfaces:
        final = surface.messages[surface.finals[-1]]
        assert final.text.endswith("w49 ") and "Done" in final.status
