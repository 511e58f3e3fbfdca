"""Adaptive budgets and the edit scheduler, on a clock the test drives (no timing)."""

from __future__ import annotations

import asyncio

import pytest

from bot.pacing import (
    CEILING_SHARE,
    MEMORY,
    PROBE_GROWTH,
    Budget,
    EditScheduler,
    LocalBudgets,
    Tier,
)

TIER = Tier(rate=1.0, burst=2, ceiling=50.0)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_tier_must_make_sense() -> None:
    with pytest.raises(ValueError):
        Tier(rate=0, burst=1, ceiling=1)
    with pytest.raises(ValueError):
        Tier(rate=2, burst=1, ceiling=1)
    assert not Tier.pinned(3, 2).adaptive and TIER.adaptive


def test_takes_the_burst_then_says_how_long_until_the_next_call() -> None:
    budgets, now = LocalBudgets(), 0.0
    assert budgets.take("k", TIER, now) == 0.0
    assert budgets.take("k", TIER, now) == 0.0
    assert budgets.take("k", TIER, now) == pytest.approx(1.0)  # refused: nothing taken
    assert budgets.take("k", TIER, now + 1.0) == 0.0
    budgets.refund("k", TIER, now + 1.0)
    assert budgets.take("k", TIER, now + 1.0) == 0.0


def test_grows_per_call_that_went_through_while_demand_waited() -> None:
    budgets = LocalBudgets()
    for _ in range(2):
        budgets.take("k", TIER, 0.0)
        budgets.settle("k", TIER, 0.0, retry_after=None)
    assert budgets.rate("k") == TIER.rate  # the burst sufficed: no reason to grow
    assert budgets.take("k", TIER, 0.0) > 0  # demand waits
    for _ in range(3):
        budgets.settle("k", TIER, 0.0, retry_after=None)
    assert budgets.rate("k") == pytest.approx(TIER.rate * PROBE_GROWTH**3)
    budgets.take("k", TIER, 1000.0)  # long idle: the bucket is full again, demand is met
    budgets.settle("k", TIER, 1000.0, retry_after=None)
    assert budgets.rate("k") == pytest.approx(TIER.rate * PROBE_GROWTH**3)
    assert budgets.learning("k", TIER, 1000.0)


def test_never_grows_past_its_ceiling_and_a_pinned_one_never_grows() -> None:
    budgets = LocalBudgets()
    pinned = Tier.pinned(1.0, 1)
    for key, tier in (("a", TIER), ("p", pinned)):
        for _ in range(3):  # the last one is refused: demand waits
            budgets.take(key, tier, 0.0)
        for _ in range(100):
            budgets.settle(key, tier, 0.0, retry_after=None)
    assert budgets.rate("a") == TIER.ceiling
    assert budgets.rate("p") == 1.0
    assert not budgets.learning("p", pinned, 0.0)


def test_a_429_above_the_tier_blocks_for_retry_after_and_leaves_a_ceiling() -> None:
    budgets = LocalBudgets()
    budgets.take("k", TIER, 0.0)
    budgets.take("k", TIER, 0.0)
    budgets.take("k", TIER, 0.0)  # demand waits
    for _ in range(8):
        budgets.settle("k", TIER, 0.0, retry_after=None)
    grown = budgets.rate("k")
    assert grown is not None and grown > 5
    budgets.settle("k", TIER, 1.0, retry_after=3.0)
    budgets.settle("k", TIER, 1.0, retry_after=3.0)  # a second 429 of the same moment
    assert budgets.rate("k") == TIER.rate  # back to the documented rate, once
    assert budgets.take("k", TIER, 3.9) == pytest.approx(0.1)  # blocked until 4.0
    assert budgets.take("k", TIER, 4.0) == 0.0
    assert not budgets.learning("k", TIER, 4.0)
    for _ in range(2):  # demand waits again: cautious growth, up to the ceiling
        budgets.take("k", TIER, 4.0)
    for _ in range(1000):
        budgets.settle("k", TIER, 4.0, retry_after=None)
    assert budgets.rate("k") == pytest.approx(grown * CEILING_SHARE)
    assert budgets.learning("k", TIER, 1.0 + MEMORY)  # forgotten after a while


def test_a_429_at_the_tier_halves_the_rate() -> None:
    budgets = LocalBudgets()
    budgets.take("k", TIER, 0.0)
    budgets.settle("k", TIER, 0.0, retry_after=1.0)
    assert budgets.rate("k") == TIER.rate / 2
    budgets.settle("k", TIER, 5.0, retry_after=1.0)
    assert budgets.rate("k") == TIER.rate / 4  # the floor
    budgets.settle("k", TIER, 10.0, retry_after=1.0)
    assert budgets.rate("k") == TIER.floor


def scheduler(clock: Clock, tier: Tier = TIER) -> tuple[EditScheduler, Budget]:
    budget = Budget(LocalBudgets(), "k", tier, clock=clock)
    limited = lambda err: 2.0 if "429" in str(err) else None  # noqa: E731
    return EditScheduler(budget, limited=limited, clock=clock), budget


async def test_finals_go_before_live_edits_and_tidy_ups_last() -> None:
    clock = Clock()
    edits, _ = scheduler(clock, Tier.pinned(1.0, 1))
    sent: list[str] = []

    def send(name: str):
        async def go() -> None:
            sent.append(name)

        return go

    edits.budget.take()  # the only call's worth is gone: everything queues
    waits = [
        edits.submit("tidy", send("tidy"), tidy=True),
        edits.submit("live", send("live")),
        edits.submit("final", send("final"), final=True),
    ]
    for _ in range(3):
        clock.now += 1.0
        await edits_settle(edits, len(sent) + 1, sent)
    await asyncio.gather(*waits)
    assert sent == ["final", "live", "tidy"]
    await edits.aclose()


async def edits_settle(edits: EditScheduler, count: int, sent: list[str]) -> None:
    edits.submit("nudge", _nothing, tidy=True)  # wakes the worker, costs one call's worth
    for _ in range(200):
        if len(sent) >= count:
            return
        await asyncio.sleep(0.005)


async def _nothing() -> bool:
    return False  # no call made: the budget is refunded


async def test_a_final_that_cannot_get_the_budget_is_delivered_by_its_fallback() -> None:
    clock = Clock()
    edits, budget = scheduler(clock, Tier.pinned(0.001, 1))
    assert budget.take() == 0.0  # spent for the next ~17 minutes
    called: list[str] = []

    async def primary() -> None:
        called.append("primary")

    async def fallback() -> float:
        called.append("fallback")
        return 0.0

    await asyncio.wait_for(edits.send_final("m", primary, fallback=fallback), 5)
    assert called == ["fallback"]
    await edits.aclose()


async def test_an_overdue_live_edit_goes_to_its_fallback_only_once_due() -> None:
    clock = Clock()
    edits, budget = scheduler(clock, Tier.pinned(0.001, 1))
    budget.take()
    tries: list[float] = []

    async def fallback() -> float:
        tries.append(clock.now)
        return 0.0 if len(tries) > 1 else 0.5  # the first try finds no room

    async def primary() -> None:
        raise AssertionError("the budget is spent")

    done = edits.submit("m", primary, fallback=fallback, fallback_at=clock.now + 1.0)
    await asyncio.sleep(0.05)
    assert tries == []  # not due yet
    clock.now += 1.0
    edits.submit("other", _nothing, tidy=True)  # wake the worker at the new time
    for _ in range(200):
        if tries:
            break
        await asyncio.sleep(0.005)
    assert tries == [clock.now]
    clock.now += 0.5
    edits.submit("other2", _nothing, tidy=True)
    await asyncio.wait_for(done, 5)
    assert len(tries) == 2
    await edits.aclose()


async def test_a_429_puts_the_edit_back_and_blocks_the_budget() -> None:
    clock = Clock()
    edits, budget = scheduler(clock, Tier.pinned(100.0, 5))
    calls: list[str] = []

    async def send() -> None:
        calls.append("try")
        if len(calls) == 1:
            raise RuntimeError("429")

    done = edits.submit("m", send)
    for _ in range(200):
        if calls:
            break
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.02)
    assert calls == ["try"] and not done.done()
    assert budget.take() == pytest.approx(2.0)  # blocked for the Retry-After
    clock.now += 2.0
    edits.submit("wake", _nothing, tidy=True)
    await asyncio.wait_for(done, 5)
    assert calls == ["try", "try"]
    await edits.aclose()
