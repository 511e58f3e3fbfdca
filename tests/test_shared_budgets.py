"""Platform budgets shared by replicas through a real PostgreSQL store (`bot.shared_budgets`).

Two "replicas" here are two stores opened on one fresh schema, each with its own
`SharedTokens` and its own local budgets, as two processes would have. Time is a hand-driven
wall clock; the store's round trips are real.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from adapters.discord.ratelimit import ChannelLimiter
from bot.pacing import LocalBudgets, Tier
from bot.ports import Store
from bot.shared_budgets import AHEAD, SharedBudgets, SharedTokens
from storage import open_store
from tests.postgres import fresh_schema_url

TIER = Tier.pinned(rate=20.0, burst=4)
KEY = "slack:chat.update"


class WallClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


_TOKENS: list[SharedTokens] = []  # closed after each test (their lesson readers)


@pytest.fixture
async def stores() -> AsyncIterator[list[Store]]:
    async with fresh_schema_url() as url:
        opened = [await open_store(url), await open_store(url)]
        try:
            yield opened
        finally:
            while _TOKENS:
                await _TOKENS.pop().aclose()
            for store in opened:
                await store.close()


async def drawn(*tokens: SharedTokens) -> None:
    """Wait until every token draw in flight has come back from the store."""
    for _ in range(200):
        if not any(t._tasks for t in tokens):
            return
        await asyncio.sleep(0.005)
    raise AssertionError("token draws never finished")


def replica(store: Store, clock: WallClock) -> SharedBudgets:
    _TOKENS.append(tokens := SharedTokens(store, clock=clock))
    state = SharedBudgets(tokens)
    state.scope = "slack:T1"
    return state


async def grants_over_one_second(states: list[SharedBudgets], clock: WallClock) -> int:
    """Every replica tries ten calls every 50 ms for a second; how many were allowed."""
    granted = 0
    for _ in range(20):
        clock.now += 0.05
        for state in states:
            for _ in range(10):
                if state.take(KEY, TIER, clock.now) == 0:
                    granted += 1
        await drawn(*(s.tokens for s in states))
    return granted


async def test_two_replicas_together_make_the_calls_one_budget_allows(
    stores: list[Store],
) -> None:
    clock = WallClock()
    shared = [replica(store, clock) for store in stores]
    together = await grants_over_one_second(shared, clock)
    # one budget: its burst, then its rate for a second (and a token drawn ahead per replica)
    allowed = TIER.burst + TIER.rate * 1.0 + AHEAD * len(stores)
    assert together <= allowed
    assert together >= TIER.rate * 0.75  # and it is not starved by the round trips
    # the same load with each replica pacing alone spends the budget twice over
    alone = [LocalBudgets(), LocalBudgets()]
    clock2 = WallClock()
    solo = 0
    for _ in range(20):
        clock2.now += 0.05
        for state in alone:
            solo += sum(state.take(KEY, TIER, clock2.now) == 0 for _ in range(10))
    assert solo > allowed


async def test_budgets_shared_by_replicas_still_grow_while_no_429_comes(
    stores: list[Store],
) -> None:
    """An adaptive budget grows while demand waits; under the shared bucket the waiting
    happens there (each replica's own budget stays half full), and it must still grow."""
    tier = Tier(rate=4.0, burst=2, ceiling=100.0)
    clock = WallClock()
    states = [replica(store, clock) for store in stores]
    for _ in range(40):
        clock.now += 0.1
        for state in states:
            for _ in range(5):
                if state.take(KEY, tier, clock.now) == 0:
                    state.settle(KEY, tier, clock.now, retry_after=None)
        await drawn(*(s.tokens for s in states))
    for state in states:
        rate = state.local.rate(KEY)
        assert rate is not None and rate > tier.rate * 2


async def test_a_crowd_of_callers_books_no_more_than_the_bucket_could_spare(
    stores: list[Store],
) -> None:
    """Twenty callers at once on one replica: it draws at most a burst, then one slot at a
    time, so it never books seconds of the shared budget ahead of the other replicas; the
    slots it holds are served in order."""
    clock = WallClock()
    state, other = replica(stores[0], clock), replica(stores[1], clock)
    for _ in range(5):
        for _ in range(20):
            state.take(KEY, TIER, clock.now)
        await drawn(state.tokens)
    bucket = state.tokens._buckets[f"slack:T1/{KEY}"]
    assert len(bucket.ready) <= TIER.burst + 1
    assert list(bucket.ready) == sorted(bucket.ready)
    # the other replica's caller is told a slot within a few of the bucket's intervals
    other.take(KEY, TIER, clock.now)
    await drawn(other.tokens)
    assert other.take(KEY, TIER, clock.now) <= (TIER.burst + 2) / TIER.rate


async def test_a_429_on_one_replica_holds_the_other_back(stores: list[Store]) -> None:
    clock = WallClock()
    refused, other = (replica(store, clock) for store in stores)
    for state in (refused, other):
        assert state.take(KEY, TIER, clock.now) > 0  # nothing drawn yet: it draws now
    await drawn(refused.tokens, other.tokens)
    assert refused.take(KEY, TIER, clock.now) == 0
    refused.settle(KEY, TIER, clock.now, retry_after=3.0)
    await drawn(refused.tokens, other.tokens)
    # the other replica may spend what it had drawn before the 429, and nothing more
    spent = 0
    for _ in range(10):
        if other.take(KEY, TIER, clock.now) == 0:
            spent += 1
        await drawn(other.tokens)
    assert spent <= AHEAD
    wait = other.take(KEY, TIER, clock.now)
    await drawn(other.tokens)
    assert other.take(KEY, TIER, clock.now) >= 3.0 - 0.01
    assert wait > 0
    clock.now += 3.5
    assert other.take(KEY, TIER, clock.now) == 0


async def test_what_a_429_taught_one_replica_every_replica_adopts(stores: list[Store]) -> None:
    """The lesson (a lower rate, a ceiling for a while) is learned once for all replicas:
    the others, and one that starts later, pace as the refused one does, and stop treating
    the budget as still to be explored (which decides how long a live edit may wait)."""
    tier = Tier(rate=4.0, burst=2, ceiling=100.0)
    clock = WallClock()

    def started(store: Store) -> SharedBudgets:
        _TOKENS.append(tokens := SharedTokens(store, clock=clock, poll=0.01))
        state = SharedBudgets(tokens)
        state.scope = "slack:T1"
        state.take(KEY, tier, clock.now)  # in use: it reads the others' lessons from now on
        return state

    refused, other = started(stores[0]), started(stores[1])
    await drawn(refused.tokens, other.tokens)
    assert refused.take(KEY, tier, clock.now) == 0
    refused.settle(KEY, tier, clock.now, retry_after=1.0)  # refused at the documented rate
    assert refused.local.rate(KEY) == 2.0 and not refused.learning(KEY, tier, clock.now)
    assert other.learning(KEY, tier, clock.now)

    async def heard(state: SharedBudgets) -> None:
        for _ in range(200):
            if KEY in state._lessons:
                return
            await asyncio.sleep(0.01)
        raise AssertionError("the lesson never arrived")

    await heard(other)
    other.take(KEY, tier, clock.now)  # adopted at its next call
    assert other.local.rate(KEY) == 2.0 and not other.learning(KEY, tier, clock.now)
    # a 429 the other earns right after (a call it made before it knew) teaches nothing new
    other.settle(KEY, tier, clock.now, retry_after=1.0)
    assert other.local.rate(KEY) == 2.0
    # a replica that starts after the 429 begins from the lesson too
    later = started(stores[1])
    await heard(later)
    later.take(KEY, tier, clock.now)
    assert later.local.rate(KEY) == 2.0 and not later.learning(KEY, tier, clock.now)


async def test_a_refunded_call_gives_its_token_to_the_next_caller(stores: list[Store]) -> None:
    clock = WallClock()
    state = replica(stores[0], clock)
    state.take(KEY, TIER, clock.now)
    await drawn(state.tokens)
    assert state.take(KEY, TIER, clock.now) == 0
    draws = state.tokens.draws
    state.refund(KEY, TIER, clock.now)
    await drawn(state.tokens)
    assert state.take(KEY, TIER, clock.now) == 0
    assert state.tokens.draws <= draws + AHEAD  # the refunded token, not a new draw


async def test_without_the_store_each_replica_still_paces_itself(
    stores: list[Store], caplog: pytest.LogCaptureFixture
) -> None:
    clock = WallClock()
    state = replica(stores[0], clock)
    await stores[0].close()  # the database is gone
    caplog.set_level(logging.WARNING, logger="bot.shared_budgets")
    granted = 0
    for _ in range(20):
        clock.now += 0.05
        granted += sum(state.take(KEY, TIER, clock.now) == 0 for _ in range(10))
        await drawn(state.tokens)
    # the local budget alone: burst plus a second at its rate
    assert TIER.rate * 0.75 <= granted <= TIER.burst + TIER.rate * 1.0
    complaints = [r for r in caplog.records if "pacing locally" in r.getMessage()]
    assert len(complaints) == 1  # said once, not on every call
    stores.remove(stores[0])


async def test_discord_processes_of_one_bot_share_its_global_budget(
    stores: list[Store],
) -> None:
    """Two processes' limiters, each within its own window, draw from one bucket: 10 a
    second with bursts of 2 for the bot, not each."""
    clock = WallClock()
    tokens = [SharedTokens(store, clock=clock) for store in stores]
    limiters = [
        ChannelLimiter(
            global_rate=1000,
            global_burst=1000,
            shared=lambda _rate, _burst, t=t: t.take("discord:1:global", rate=10.0, burst=2),
            clock=clock,
            sleep=lambda delay: asyncio.sleep(min(delay, 0.01)),  # re-check often
        )
        for t in tokens
    ]
    granted: list[int] = []

    async def request(n: int, limiter: ChannelLimiter) -> None:
        await limiter.acquire(None)
        granted.append(n)

    waiting = [asyncio.create_task(request(n, limiters[n % 2])) for n in range(30)]
    # real time passes here (the limiters sleep on the loop) while the bucket's clock moves
    for _ in range(10):
        await asyncio.sleep(0.03)
        clock.now += 0.1
    await asyncio.sleep(0.05)
    # a second of the bucket: its burst, its rate, and a token drawn ahead per process
    assert len(granted) <= 2 + 10 + AHEAD * 2
    assert len(granted) >= 6
    for task in waiting:
        task.cancel()
    await asyncio.gather(*waiting, return_exceptions=True)
    for t in tokens:
        await t.aclose()


# --- wiring: what production builds on PostgreSQL ----------------------------------------


async def test_on_postgresql_both_adapters_draw_their_budgets_from_the_store(sim) -> None:
    from pydantic import SecretStr

    from adapters.discord.client import DiscordBot
    from adapters.slack.app import SlackBot
    from bot.app import build_core, close_core, simulated
    from bot.http import HttpServer
    from tests.conftest import make_settings
    from tests.fakes.slack import FakeSlack

    async with fresh_schema_url() as url, FakeSlack() as slack:
        settings = simulated(
            make_settings(
                database_url=url,
                slack_bot_token=SecretStr(slack.bot_token),
                slack_signing_secret=SecretStr("s"),
                slack_api_url=slack.api_url,
                discord_token=SecretStr("MTIzNDU2.x.y"),
            ),
            sim,
        )
        core = await build_core(settings)
        try:
            assert core.shared_tokens is not None
            bot = SlackBot(settings, core, HttpServer(host="127.0.0.1", port=0))
            await bot.start()  # learns the workspace: its budgets are that workspace's
            assert bot.limiter.state is bot.shared
            assert bot.shared is not None and bot.shared.scope == f"slack:{slack.team_id}"
            bot.limiter.updates.take()
            await drawn(core.shared_tokens)
            rows = await core.store._pool.fetch("SELECT name FROM budgets")  # type: ignore[attr-defined]
            assert [r["name"] for r in rows] == [f"slack:{slack.team_id}/slack:chat.update"]
            await bot.stop()
            # the Discord bot's global budget is drawn from the store too, named by its id
            discord_bot = DiscordBot(settings, core)
            shared = discord_bot.limiter._shared
            assert shared is not None
            assert shared(40.0, 10) > 0  # nothing drawn yet: it draws now
            await drawn(core.shared_tokens)
            assert shared(40.0, 10) == 0
            names = {r["name"] for r in await core.store._pool.fetch("SELECT name FROM budgets")}  # type: ignore[attr-defined]
            assert "discord:123456:global" in names
        finally:
            await close_core(core)


async def test_one_process_on_sqlite_paces_itself_alone(core) -> None:
    assert core.shared_tokens is None
