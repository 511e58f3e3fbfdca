"""The Store contract for the operator roles (`UsageStore`, `QuotaStore`, `AccessStore`): every
promise in their docstrings, against every store implementation (SQLite and PostgreSQL, see
`conftest.BACKENDS`); "replicas" are several stores opened on one database."""

from __future__ import annotations

import asyncio

from bot.models import ChannelKey
from bot.operator_records import AccessEntry, QuotaLimit, UsageEvent, UsageKind, UsageLeader
from bot.ports import Store
from tests.contract.conftest import Database

HERE = ChannelKey("slack", "T1", "C1")
THERE = ChannelKey("slack", "T1", "C2")
ELSEWHERE = ChannelKey("slack", "T2", "C1")


def _event(
    ref: str,
    *,
    kind: UsageKind = UsageKind.TURN,
    user: str = "U1",
    channel: ChannelKey = HERE,
    at: float = 100.0,
    detail: str = "done",
    cost: float | None = None,
) -> UsageEvent:
    return UsageEvent(kind, ref, channel, user, at, detail, cost)


def _totals(found: list) -> dict[tuple[str, str], tuple[int, float, int]]:
    return {(t.kind.value, t.detail): (t.count, round(t.cost, 6), t.priced) for t in found}


# --- usage --------------------------------------------------------------------------------


async def test_an_event_is_recorded_once(store: Store) -> None:
    assert await store.add_usage(_event("turn-1"))
    assert not await store.add_usage(_event("turn-1", user="U2", detail="failed"))
    # the same ref of another kind is another event
    assert await store.add_usage(_event("turn-1", kind=UsageKind.RUN, detail="prediction"))
    found = await store.usage_totals("slack", "T1", since=0.0)
    assert _totals(found) == {("run", "prediction"): (1, 0.0, 0), ("turn", "done"): (1, 0.0, 0)}


async def test_an_event_written_by_every_replica_at_once_lands_once(
    replicas: list[Store],
) -> None:
    results = await asyncio.gather(
        *(replica.add_usage(_event("job-7", kind=UsageKind.RUN)) for replica in replicas * 10)
    )
    assert results.count(True) == 1
    (total,) = await replicas[0].usage_totals("slack", "T1", since=0.0)
    assert total.count == 1


async def test_totals_by_person_channel_and_period(store: Store) -> None:
    events = [
        _event("t1", at=100.0),
        _event("t2", at=200.0, detail="failed"),
        _event("t3", at=200.0, user="U2", channel=THERE),
        _event("g1", kind=UsageKind.GENERATION, detail="image", at=150.0),
        _event("g2", kind=UsageKind.GENERATION, detail="image", at=250.0, user="U2"),
        _event("g3", kind=UsageKind.GENERATION, detail="video", at=250.0),
        _event("r1", kind=UsageKind.RUN, detail="prediction", cost=0.03, at=300.0),
        _event("r2", kind=UsageKind.RUN, detail="prediction", cost=None, at=300.0),
        _event("r3", kind=UsageKind.RUN, detail="workflow", cost=0.12, at=300.0, channel=THERE),
        _event("x1", at=300.0, channel=ELSEWHERE),  # another workspace: never counted here
        _event("x2", at=300.0, channel=ChannelKey("discord", "T1", "C1")),  # another platform
    ]
    for event in events:
        assert await store.add_usage(event)

    everyone = await store.usage_totals("slack", "T1", since=0.0)
    assert [(t.kind, t.detail) for t in everyone] == [
        (UsageKind.GENERATION, "image"),
        (UsageKind.GENERATION, "video"),
        (UsageKind.RUN, "prediction"),
        (UsageKind.RUN, "workflow"),
        (UsageKind.TURN, "done"),
        (UsageKind.TURN, "failed"),
    ]
    assert _totals(everyone) == {
        ("generation", "image"): (2, 0.0, 0),
        ("generation", "video"): (1, 0.0, 0),
        ("run", "prediction"): (2, 0.03, 1),
        ("run", "workflow"): (1, 0.12, 1),
        ("turn", "done"): (2, 0.0, 0),
        ("turn", "failed"): (1, 0.0, 0),
    }
    mine = await store.usage_totals("slack", "T1", since=0.0, user_id="U1")
    assert _totals(mine) == {
        ("generation", "image"): (1, 0.0, 0),
        ("generation", "video"): (1, 0.0, 0),
        ("run", "prediction"): (2, 0.03, 1),
        ("run", "workflow"): (1, 0.12, 1),
        ("turn", "done"): (1, 0.0, 0),
        ("turn", "failed"): (1, 0.0, 0),
    }
    there = await store.usage_totals("slack", "T1", since=0.0, channel="C2")
    assert _totals(there) == {("run", "workflow"): (1, 0.12, 1), ("turn", "done"): (1, 0.0, 0)}
    mine_there = await store.usage_totals("slack", "T1", since=0.0, user_id="U1", channel="C2")
    assert _totals(mine_there) == {("run", "workflow"): (1, 0.12, 1)}
    # `since` is inclusive
    late = await store.usage_totals("slack", "T1", since=250.0, user_id="U1")
    assert _totals(late) == {
        ("generation", "video"): (1, 0.0, 0),
        ("run", "prediction"): (2, 0.03, 1),
        ("run", "workflow"): (1, 0.12, 1),
    }
    assert await store.usage_totals("slack", "T9", since=0.0) == []


async def test_leaders_most_turns_and_runs_first(store: Store) -> None:
    events = [
        _event("a1", user="UA"),
        _event("a2", user="UA", kind=UsageKind.RUN, cost=0.5),
        _event("a3", user="UA", kind=UsageKind.GENERATION, detail="image"),
        _event("b1", user="UB", channel=THERE),
        _event("b2", user="UB", channel=THERE),
        _event("b3", user="UB", channel=THERE, kind=UsageKind.RUN, cost=None),
        _event("c1", user="UC", kind=UsageKind.RUN, cost=0.1),
        _event("c2", user="UC", kind=UsageKind.RUN, cost=0.9),  # ties UA on 2, costs more
        _event("d1", user="UD"),
        _event("e1", user="UE"),  # ties UD on everything: by id
        _event("old", user="UZ", at=1.0),
        _event("x", user="UX", channel=ELSEWHERE),
    ]
    for event in events:
        await store.add_usage(event)
    leaders = await store.usage_leaders("slack", "T1", since=50.0, by="user", limit=10)
    assert [leader.id for leader in leaders] == ["UB", "UC", "UA", "UD", "UE"]
    assert leaders[0] == UsageLeader("UB", turns=2, runs=1, generations=0, cost=0.0)
    assert leaders[2] == UsageLeader("UA", turns=1, runs=1, generations=1, cost=0.5)
    assert round(leaders[1].cost, 6) == 1.0
    top = await store.usage_leaders("slack", "T1", since=50.0, by="user", limit=2)
    assert [leader.id for leader in top] == ["UB", "UC"]
    channels = await store.usage_leaders("slack", "T1", since=50.0, by="channel", limit=5)
    assert [(c.id, c.turns, c.runs) for c in channels] == [("C1", 3, 3), ("C2", 2, 1)]


async def test_purge_usage_forgets_only_older_events(store: Store) -> None:
    await store.add_usage(_event("old", at=10.0))
    await store.add_usage(_event("edge", at=20.0))
    await store.add_usage(_event("new", at=30.0))
    assert await store.purge_usage(before=20.0) == 1
    (total,) = await store.usage_totals("slack", "T1", since=0.0)
    assert total.count == 2
    # a purged event may be recorded again (its ref is free)
    assert await store.add_usage(_event("old", at=10.0))


# --- quotas -------------------------------------------------------------------------------


async def test_quota_limits_workspace_then_channel(store: Store) -> None:
    assert await store.quota_limits("slack", "T1", channel="C1") == []
    await store.set_quota_limit(
        "slack", "T1", channel="", name="user-turns", value=20, by="UA", at=1.0
    )
    await store.set_quota_limit(
        "slack", "T1", channel="C1", name="channel-turns", value=5, by="UA", at=2.0
    )
    await store.set_quota_limit(
        "slack", "T1", channel="", name="channel-turns", value=50, by="UA", at=3.0
    )
    await store.set_quota_limit(
        "slack", "T1", channel="C2", name="channel-runs", value=1, by="UA", at=4.0
    )
    await store.set_quota_limit(
        "slack", "T2", channel="", name="user-runs", value=9, by="UA", at=5.0
    )
    assert await store.quota_limits("slack", "T1", channel="C1") == [
        QuotaLimit("channel-turns", "", 50, "UA", 3.0),
        QuotaLimit("user-turns", "", 20, "UA", 1.0),
        QuotaLimit("channel-turns", "C1", 5, "UA", 2.0),
    ]
    # the last call wins; 0 is a value ("no limit"), None removes the override
    await store.set_quota_limit(
        "slack", "T1", channel="C1", name="channel-turns", value=0, by="UB", at=6.0
    )
    await store.set_quota_limit(
        "slack", "T1", channel="", name="user-turns", value=None, by="UB", at=7.0
    )
    assert await store.quota_limits("slack", "T1", channel="C1") == [
        QuotaLimit("channel-turns", "", 50, "UA", 3.0),
        QuotaLimit("channel-turns", "C1", 0, "UB", 6.0),
    ]
    assert await store.quota_limits("slack", "T1", channel="") == [
        QuotaLimit("channel-turns", "", 50, "UA", 3.0)
    ]


async def test_take_quota_up_to_the_limit(store: Store) -> None:
    for _ in range(3):
        assert await store.take_quota([("u:U1", 3)], day=100) is None
    assert await store.take_quota([("u:U1", 3)], day=100) == "u:U1"
    assert await store.quota_used(["u:U1", "u:U2"], day=100) == {"u:U1": 3, "u:U2": 0}
    # a raised limit lets more through; another day counts from zero
    assert await store.take_quota([("u:U1", 4)], day=100) is None
    assert await store.take_quota([("u:U1", 1)], day=101) is None
    assert await store.quota_used(["u:U1"], day=101) == {"u:U1": 1}
    assert await store.quota_used([], day=100) == {}


async def test_a_refused_take_counts_nothing(store: Store) -> None:
    assert await store.take_quota([("c:C1", 1)], day=7) is None
    # the person has room but the channel has none: neither count moves
    assert await store.take_quota([("u:U1", 5), ("c:C1", 1)], day=7) == "c:C1"
    assert await store.take_quota([("c:C1", 1), ("u:U1", 5)], day=7) == "c:C1"
    assert await store.quota_used(["u:U1", "c:C1"], day=7) == {"u:U1": 0, "c:C1": 1}
    assert await store.take_quota([("u:U1", 5), ("c:C2", 2)], day=7) is None
    assert await store.quota_used(["u:U1", "c:C2"], day=7) == {"u:U1": 1, "c:C2": 1}


async def test_concurrent_takers_on_every_replica_never_pass_the_limit(
    replicas: list[Store],
) -> None:
    takes = [("u:U1", 50), ("c:C1", 5)]
    results = await asyncio.gather(*(replica.take_quota(takes, day=3) for replica in replicas * 10))
    assert results.count(None) == 5
    assert set(results) == {None, "c:C1"}
    assert await replicas[1].quota_used(["u:U1", "c:C1"], day=3) == {"u:U1": 5, "c:C1": 5}


async def test_purge_quota_use_forgets_older_days(store: Store) -> None:
    for day in (1, 2, 3):
        await store.take_quota([("u:U1", 9)], day=day)
    assert await store.purge_quota_use(before_day=3) == 2
    assert await store.quota_used(["u:U1"], day=2) == {"u:U1": 0}
    assert await store.quota_used(["u:U1"], day=3) == {"u:U1": 1}


# --- access -------------------------------------------------------------------------------


async def test_access_entries_set_replace_remove(store: Store) -> None:
    assert await store.access_entries("slack", "T1") == []
    await store.set_access("slack", "T1", AccessEntry("user", "U2", "deny", "UA", 1.0))
    await store.set_access("slack", "T1", AccessEntry("channel", "C9", "allow", "UA", 2.0))
    await store.set_access("slack", "T1", AccessEntry("role", "S1", "allow", "UA", 3.0))
    await store.set_access("slack", "T1", AccessEntry("user", "U1", "allow", "UA", 4.0))
    await store.set_access("slack", "T2", AccessEntry("user", "U2", "allow", "UA", 5.0))
    assert await store.access_entries("slack", "T1") == [
        AccessEntry("channel", "C9", "allow", "UA", 2.0),
        AccessEntry("role", "S1", "allow", "UA", 3.0),
        AccessEntry("user", "U1", "allow", "UA", 4.0),
        AccessEntry("user", "U2", "deny", "UA", 1.0),
    ]
    # one entry per kind and id: allowing a denied id replaces the deny
    await store.set_access("slack", "T1", AccessEntry("user", "U2", "allow", "UB", 6.0))
    assert AccessEntry("user", "U2", "allow", "UB", 6.0) in await store.access_entries(
        "slack", "T1"
    )
    assert await store.remove_access("slack", "T1", kind="user", value="U2")
    assert not await store.remove_access("slack", "T1", kind="user", value="U2")
    assert not await store.remove_access("slack", "T1", kind="role", value="U1")
    assert [e.value for e in await store.access_entries("slack", "T1")] == ["C9", "S1", "U1"]
    assert await store.access_entries("slack", "T2") == [
        AccessEntry("user", "U2", "allow", "UA", 5.0)
    ]
    assert await store.access_entries("discord", "T1") == []


# --- all together -------------------------------------------------------------------------


async def test_operator_data_survives_reopen(database: Database) -> None:
    first = await database.open()
    await first.add_usage(_event("t1", cost=0.25, kind=UsageKind.RUN))
    await first.set_quota_limit("slack", "T1", channel="", name="user-runs", value=2, by="A", at=1)
    await first.take_quota([("u:U1", 2)], day=5)
    await first.set_access("slack", "T1", AccessEntry("user", "U2", "deny", "A", 1.0))
    await database.close(first)

    second = await database.open()
    (total,) = await second.usage_totals("slack", "T1", since=0.0)
    assert (total.count, total.cost, total.priced) == (1, 0.25, 1)
    assert not await second.add_usage(_event("t1", kind=UsageKind.RUN))
    assert await second.quota_limits("slack", "T1", channel="C1") == [
        QuotaLimit("user-runs", "", 2, "A", 1.0)
    ]
    assert await second.take_quota([("u:U1", 2)], day=5) is None
    assert await second.take_quota([("u:U1", 2)], day=5) == "u:U1"
    assert await second.access_entries("slack", "T1") == [
        AccessEntry("user", "U2", "deny", "A", 1.0)
    ]
