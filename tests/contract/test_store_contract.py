"""The Store contract: every promise in `bot.ports`' role docstrings, as a test, run against
every store implementation (see `conftest.BACKENDS`). "Replicas" are several stores opened
on one database, as several bot processes would."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
from collections import Counter

import pytest

from bot.models import (
    BudgetRefusal,
    ChannelKey,
    ChannelSettings,
    GenerationRecord,
    JobKind,
    JobRecord,
    JobStatus,
    ThreadKey,
    ThreadRecord,
    ThreadSummary,
    TurnRecord,
    TurnStatus,
)
from bot.ports import (
    AccessStore,
    BudgetStore,
    ChannelStore,
    EventStore,
    HistoryStore,
    JobStore,
    LeaseStore,
    QuotaStore,
    ReplicaStore,
    Store,
    ThreadStore,
    UsageStore,
)
from tests.contract.conftest import Database

KEY = ThreadKey("slack", "T1", "C1", "1700000000.000100")
ROLES = (
    ThreadStore,
    ChannelStore,
    EventStore,
    JobStore,
    ReplicaStore,
    LeaseStore,
    UsageStore,  # the operator roles' own contract: test_operator_store_contract.py
    QuotaStore,
    AccessStore,
    BudgetStore,
    HistoryStore,
)


def _thread(n: int = 0, *, mode: str | None = None) -> ThreadRecord:
    return ThreadRecord(
        key=ThreadKey("discord", "G1", "C1", f"t{n}"),
        session_id=f"sess-{n}",
        owner_id=f"u{n}",
        created_at=1000.0 + n,
        last_used_at=1000.5 + n,
        mode=mode,  # type: ignore[arg-type]
    )


def _turn(
    turn_id: str,
    *,
    status: TurnStatus = TurnStatus.RUNNING,
    at: float = 10.0,
    owner: str | None = None,
) -> TurnRecord:
    return TurnRecord(
        id=turn_id,
        key=KEY,
        user_id="U1",
        prompt="draw a cat",
        status=status,
        started_at=at,
        mode="eco",
        owner=owner,
    )


def _job(job_id: str = "job-1", *, owner: str | None = None, at: float = 50.0) -> JobRecord:
    return JobRecord(
        id=job_id,
        kind=JobKind.WORKFLOW,
        remote_id="remote-9",
        key=KEY,
        user_id="U1",
        webhook_secret="s3cret",
        status=JobStatus.RUNNING,
        created_at=at,
        title="upscale",
        message_id="m-1",
        owner=owner,
    )


def _public_methods(protocol: type) -> list[str]:
    return [name for name in dir(protocol) if not name.startswith("_")]


# --- the protocol itself -----------------------------------------------------------------


def test_store_is_every_role_and_close() -> None:
    from_roles = {name for role in ROLES for name in _public_methods(role)}
    assert set(_public_methods(Store)) == from_roles | {"close"}


async def test_implements_every_method_with_the_protocols_signature(store: Store) -> None:
    for name in _public_methods(Store):
        method = getattr(store, name, None)
        assert callable(method), name
        wanted = inspect.signature(getattr(Store, name))
        params = list(wanted.parameters.values())[1:]  # without self
        assert list(inspect.signature(method).parameters.values()) == params, name


# --- ThreadStore -------------------------------------------------------------------------


async def test_thread_roundtrip_and_touch(store: Store) -> None:
    record = _thread(1, mode="eco")
    assert await store.get_thread(record.key) is None
    await store.save_thread(record)
    assert await store.get_thread(record.key) == record

    await store.touch_thread(record.key, at=2000.0)
    touched = await store.get_thread(record.key)
    assert touched is not None and touched.last_used_at == 2000.0
    assert touched == ThreadRecord(
        record.key, record.session_id, record.owner_id, record.created_at, 2000.0, "eco"
    )

    replaced = ThreadRecord(record.key, "sess-new", "u9", 1.0, 2.0, None)
    await store.save_thread(replaced)
    assert await store.get_thread(record.key) == replaced


async def test_touching_an_unknown_thread_keeps_it_unknown(store: Store) -> None:
    await store.touch_thread(KEY, at=5.0)
    assert await store.get_thread(KEY) is None


async def test_threads_are_per_key(store: Store) -> None:
    await store.save_thread(_thread(1, mode="max"))
    await store.save_thread(_thread(2))
    assert await store.get_thread(_thread(1).key) == _thread(1, mode="max")
    assert await store.get_thread(_thread(2).key) == _thread(2)


async def test_generation_roundtrip(store: Store, database: Database) -> None:
    first = GenerationRecord("https://cdn/a.png", "image", "sess-1", KEY, "m1", 1.0)
    second = GenerationRecord("https://cdn/b.mp4", "video", "sess-1", KEY, None, 2.0)
    other = GenerationRecord("https://x", "image", "other", KEY, None, 3.0)
    for record in (first, second, other, first):  # the same URL may come twice
        await store.add_generation(record)
    rows = await database.rows(
        store,
        "SELECT url, media_type, session_id, platform, workspace, channel, thread, "
        "message_id, created_at FROM generations ORDER BY id",
    )
    stored = [GenerationRecord(r[0], r[1], r[2], ThreadKey(*r[3:7]), r[7], r[8]) for r in rows]
    assert stored == [first, second, other, first]
    assert [record for record in stored if record.session_id == "sess-1"][:2] == [first, second]


async def test_get_generation_by_its_id(store: Store) -> None:
    made = GenerationRecord(
        "https://cdn/a.png", "image", "sess-1", KEY, None, 1.0, id="gen-1", turn_id="turn-1"
    )
    other = GenerationRecord("https://cdn/b.mp4", "video", "sess-2", _thread(2).key, "m2", 2.0)
    assert await store.get_generation("gen-1") is None
    await store.add_generation(made)
    await store.add_generation(other)  # no id: recorded, never found by one
    await store.add_generation(GenerationRecord("https://cdn/a.png", "image", "s", KEY, None, 3.0))
    assert await store.get_generation("gen-1") == made
    assert await store.get_generation("gen-2") is None
    assert await store.get_generation("") is None


async def test_generation_ids_are_found_from_every_replica(replicas: list[Store]) -> None:
    records = [
        GenerationRecord(f"https://cdn/{n}.png", "image", "s", KEY, None, float(n), id=f"g{n}")
        for n in range(9)
    ]
    await asyncio.gather(*(replicas[n % 3].add_generation(r) for n, r in enumerate(records)))
    for n, record in enumerate(records):
        assert await replicas[(n + 1) % 3].get_generation(f"g{n}") == record


async def test_turn_roundtrip_and_finish(store: Store) -> None:
    turn = _turn("turn-1", owner="replica-a")
    await store.begin_turn(turn)
    assert await store.get_turn("turn-1") == turn
    await store.finish_turn("turn-1", status=TurnStatus.DONE, at=12.5)
    finished = await store.get_turn("turn-1")
    assert finished is not None
    assert (finished.status, finished.finished_at, finished.mode) == (TurnStatus.DONE, 12.5, "eco")
    assert finished.owner == "replica-a"
    assert await store.get_turn("missing") is None


async def test_a_turn_keeps_its_behavior_and_reference_images(store: Store) -> None:
    plan = TurnRecord(
        "turn-p",
        KEY,
        "U1",
        "draw a castle",
        TurnStatus.RUNNING,
        1.0,
        behavior="plan",
        image_urls=("https://cdn/a.png", "https://cdn/b.png"),
    )
    await store.begin_turn(plan)
    assert await store.get_turn("turn-p") == plan
    [interrupted] = await store.interrupt_running_turns(at=2.0)
    assert interrupted.behavior == "plan" and interrupted.image_urls == plan.image_urls
    await store.begin_turn(_turn("turn-q"))
    plain = await store.get_turn("turn-q")
    assert plain is not None and plain.behavior is None and plain.image_urls == ()


async def test_begin_turn_replaces_and_owner_defaults_to_none(store: Store) -> None:
    await store.begin_turn(_turn("t", owner="a"))
    await store.begin_turn(_turn("t", at=20.0))
    assert await store.get_turn("t") == _turn("t", at=20.0)


async def test_a_final_status_is_final(store: Store) -> None:
    await store.begin_turn(_turn("t"))
    await store.finish_turn("t", status=TurnStatus.CANCELLED, at=11.0)
    await store.finish_turn("t", status=TurnStatus.DONE, at=12.0)
    stored = await store.get_turn("t")
    assert stored is not None
    assert (stored.status, stored.finished_at) == (TurnStatus.CANCELLED, 11.0)

    await store.begin_turn(_turn("lost", owner="dead"))
    await store.interrupt_running_turns(at=13.0)
    await store.finish_turn("lost", status=TurnStatus.DONE, at=14.0)  # the owner was late
    lost = await store.get_turn("lost")
    assert lost is not None and lost.status is TurnStatus.INTERRUPTED

    await store.finish_turn("unknown", status=TurnStatus.DONE, at=1.0)
    assert await store.get_turn("unknown") is None


async def test_interrupt_running_turns(store: Store) -> None:
    await store.begin_turn(_turn("a", at=1.0))
    await store.begin_turn(_turn("b", at=2.0))
    await store.begin_turn(_turn("c", status=TurnStatus.DONE, at=3.0))

    interrupted = await store.interrupt_running_turns(at=50.0)
    assert [turn.id for turn in interrupted] == ["a", "b"]
    assert all(turn.status is TurnStatus.INTERRUPTED for turn in interrupted)
    assert all(turn.finished_at == 50.0 for turn in interrupted)
    assert interrupted[0].prompt == "draw a cat" and interrupted[0].key == KEY

    stored_c = await store.get_turn("c")
    assert stored_c is not None and stored_c.status is TurnStatus.DONE
    assert await store.interrupt_running_turns(at=60.0) == []


async def test_interrupt_without_stale_before_takes_every_owner(store: Store) -> None:
    await store.heartbeat("live", at=100.0)
    await store.begin_turn(_turn("mine", owner="live"))
    assert [t.id for t in await store.interrupt_running_turns(at=101.0)] == ["mine"]


async def test_interrupt_spares_live_replicas(store: Store) -> None:
    await store.heartbeat("live", at=100.0)
    await store.heartbeat("dead", at=40.0)
    await store.begin_turn(_turn("live-1", owner="live", at=1.0))
    await store.begin_turn(_turn("dead-1", owner="dead", at=2.0))
    await store.begin_turn(_turn("ghost-1", owner="never-beat", at=3.0))
    await store.begin_turn(_turn("none-1", at=4.0))
    await store.begin_turn(_turn("done", owner="dead", status=TurnStatus.DONE, at=5.0))

    interrupted = await store.interrupt_running_turns(at=120.0, stale_before=90.0)
    assert [t.id for t in interrupted] == ["dead-1", "ghost-1", "none-1"]
    assert all(t.status is TurnStatus.INTERRUPTED and t.finished_at == 120.0 for t in interrupted)
    live = await store.get_turn("live-1")
    assert live is not None and live.status is TurnStatus.RUNNING
    done = await store.get_turn("done")
    assert done is not None and done.status is TurnStatus.DONE
    assert await store.interrupt_running_turns(at=121.0, stale_before=90.0) == []


async def test_a_heartbeat_exactly_at_the_cut_off_is_live(store: Store) -> None:
    await store.heartbeat("edge", at=90.0)
    await store.begin_turn(_turn("edge-1", owner="edge"))
    assert await store.interrupt_running_turns(at=120.0, stale_before=90.0) == []
    assert [t.id for t in await store.interrupt_running_turns(at=120.0, stale_before=90.5)] == [
        "edge-1"
    ]


async def test_interrupt_takes_the_callers_previous_life(store: Store) -> None:
    """A replica restarting under the same id has just beaten, yet its old turns are dead."""
    await store.heartbeat("me", at=100.0)
    await store.heartbeat("other", at=100.0)
    await store.begin_turn(_turn("mine", owner="me"))
    await store.begin_turn(_turn("theirs", owner="other"))
    interrupted = await store.interrupt_running_turns(at=101.0, stale_before=90.0, replica_id="me")
    assert [t.id for t in interrupted] == ["mine"]


async def test_interrupted_turns_are_returned_once_across_replicas(
    replicas: list[Store],
) -> None:
    first = replicas[0]
    await first.heartbeat("dead", at=1.0)
    await asyncio.gather(*(first.begin_turn(_turn(f"t{i}", owner="dead")) for i in range(60)))

    async def sweep() -> list[list[TurnRecord]]:
        return await asyncio.gather(
            *(
                replica.interrupt_running_turns(at=50.0, stale_before=40.0, replica_id=f"r{i}")
                for i, replica in enumerate(replicas)
                for _ in range(2)
            )
        )

    first_round = await sweep()
    ids = Counter(turn.id for result in first_round for turn in result)
    assert ids == Counter({f"t{i}": 1 for i in range(60)})
    assert await sweep() == [[]] * len(first_round)  # nothing is left for anyone


# --- ChannelStore ------------------------------------------------------------------------


async def test_channel_defaults_and_eco(store: Store) -> None:
    key = ChannelKey("slack", "T1", "C9")
    assert await store.get_channel(key) == ChannelSettings()
    await store.set_channel_eco(key, eco=True, by="U7", at=5.0)
    assert await store.get_channel(key) == ChannelSettings(
        eco=True, changed_by="U7", changed_at=5.0
    )
    await store.set_channel_eco(key, eco=False, by="U8", at=6.0)
    assert await store.get_channel(key) == ChannelSettings(False, "U8", 6.0)
    assert await store.get_channel(ChannelKey("slack", "T1", "other")) == ChannelSettings()
    assert await store.get_channel(ChannelKey("discord", "T1", "C9")) == ChannelSettings()


async def test_channel_web_search_and_safety(store: Store) -> None:
    key = ChannelKey("discord", "G1", "C5")
    assert await store.get_channel(key) == ChannelSettings(web_search=None, safety_checker=True)
    await store.set_channel_web_search(key, web_search=False, by="U1", at=1.0)
    assert await store.get_channel(key) == ChannelSettings(False, "U1", 1.0, False, True)
    await store.set_channel_safety(key, enabled=False, by="U2", at=2.0)
    assert await store.get_channel(key) == ChannelSettings(False, "U2", 2.0, False, False)
    # each setting leaves the others as they are, eco included
    await store.set_channel_eco(key, eco=True, by="U3", at=3.0)
    assert await store.get_channel(key) == ChannelSettings(True, "U3", 3.0, False, False)
    await store.set_channel_web_search(key, web_search=None, by="U4", at=4.0)
    await store.set_channel_safety(key, enabled=True, by="U4", at=5.0)
    assert await store.get_channel(key) == ChannelSettings(True, "U4", 5.0, None, True)
    await store.set_channel_web_search(key, web_search=True, by="U4", at=6.0)
    assert (await store.get_channel(key)).web_search is True


async def test_a_new_channel_row_from_one_setting_has_the_other_defaults(store: Store) -> None:
    web = ChannelKey("slack", "T1", "C6")
    safety = ChannelKey("slack", "T1", "C7")
    await store.set_channel_web_search(web, web_search=False, by="U1", at=1.0)
    await store.set_channel_safety(safety, enabled=False, by="U1", at=1.0)
    assert await store.get_channel(web) == ChannelSettings(False, "U1", 1.0, False, True)
    assert await store.get_channel(safety) == ChannelSettings(False, "U1", 1.0, None, False)
    assert await store.get_channel(ChannelKey("slack", "T1", "C8")) == ChannelSettings()


# --- EventStore --------------------------------------------------------------------------


async def test_claim_event_once_then_redelivery(store: Store) -> None:
    assert await store.claim_event("slack", "Ev1", now=100.0, ttl=60.0)
    assert not await store.claim_event("slack", "Ev1", now=101.0, ttl=60.0)
    # the same id on another platform is a different event
    assert await store.claim_event("discord", "Ev1", now=101.0, ttl=60.0)


async def test_claim_event_concurrently_has_one_winner(store: Store) -> None:
    results = await asyncio.gather(
        *(store.claim_event("slack", "EvRace", now=1.0, ttl=10.0) for _ in range(20))
    )
    assert results.count(True) == 1


async def test_claim_event_across_replicas_has_one_winner(replicas: list[Store]) -> None:
    for round_ in range(5):
        results = await asyncio.gather(
            *(
                replica.claim_event("slack", f"Ev{round_}", now=1.0, ttl=10.0)
                for replica in replicas
                for _ in range(10)
            )
        )
        assert results.count(True) == 1, round_


async def test_expired_claim_is_reclaimed_once_across_replicas(replicas: list[Store]) -> None:
    assert await replicas[0].claim_event("slack", "old", now=0.0, ttl=10.0)
    results = await asyncio.gather(
        *(r.claim_event("slack", "old", now=10.0, ttl=10.0) for r in replicas for _ in range(5))
    )
    assert results.count(True) == 1


async def test_expired_event_reclaimed_and_purged(store: Store) -> None:
    assert await store.claim_event("slack", "old", now=0.0, ttl=10.0)
    assert await store.claim_event("slack", "fresh", now=5.0, ttl=100.0)
    assert not await store.claim_event("slack", "old", now=9.0, ttl=10.0)
    assert await store.claim_event("slack", "old", now=10.0, ttl=10.0)  # expired → reclaim
    assert not await store.claim_event("slack", "old", now=11.0, ttl=10.0)

    assert await store.purge_events(now=21.0) == 1  # "old" (expires 20) goes, "fresh" (105) stays
    assert await store.purge_events(now=21.0) == 0
    assert not await store.claim_event("slack", "fresh", now=22.0, ttl=1.0)
    assert await store.claim_event("slack", "old", now=22.0, ttl=1.0)


async def test_purge_removes_exactly_the_expired(store: Store, database: Database) -> None:
    for i in range(10):
        assert await store.claim_event("discord", f"e{i}", now=float(i), ttl=10.0)
    assert await store.purge_events(now=15.0) == 6  # e0..e5 expire at 10..15
    rows = await database.rows(store, "SELECT event_id FROM events ORDER BY event_id")
    assert [row[0] for row in rows] == [f"e{i}" for i in range(6, 10)]


# --- JobStore ----------------------------------------------------------------------------


async def test_job_roundtrip_and_running(store: Store) -> None:
    job = _job()
    await store.save_job(job)
    assert await store.get_job("job-1") == job
    assert await store.get_job("nope") is None
    assert await store.running_jobs() == [job]

    done = await store.finish_job(
        "job-1", status=JobStatus.SUCCEEDED, output=("https://a", "https://b"), error=None, at=60.0
    )
    assert done
    stored = await store.get_job("job-1")
    assert stored is not None
    assert stored.status is JobStatus.SUCCEEDED
    assert stored.output == ("https://a", "https://b")
    assert stored.finished_at == 60.0
    assert await store.running_jobs() == []


async def test_save_job_replaces_and_keeps_the_owner(store: Store) -> None:
    await store.save_job(_job(owner="a"))
    moved = _job(owner="b", at=51.0)
    await store.save_job(moved)
    assert await store.get_job("job-1") == moved


async def test_running_jobs_are_oldest_first_whoever_owns_them(store: Store) -> None:
    await store.save_job(_job("c", owner="x", at=3.0))
    await store.save_job(_job("a", owner="y", at=1.0))
    await store.save_job(_job("b", at=2.0))
    await store.save_job(_job("b2", at=2.0))
    await store.save_job(_job("gone", at=0.5))
    await store.finish_job("gone", status=JobStatus.FAILED, output=(), error="x", at=4.0)
    assert [job.id for job in await store.running_jobs()] == ["a", "b", "b2", "c"]


async def test_finish_job_only_once(store: Store) -> None:
    await store.save_job(_job("job-race"))
    results = await asyncio.gather(
        *(
            store.finish_job(
                "job-race", status=status, output=(f"out-{i}",), error=None, at=float(i)
            )
            for i, status in enumerate((JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED))
        )
    )
    assert results.count(True) == 1
    winner = results.index(True)
    stored = await store.get_job("job-race")
    assert stored is not None and stored.output == (f"out-{winner}",)
    assert not await store.finish_job(
        "job-race", status=JobStatus.FAILED, output=(), error="late", at=99.0
    )
    assert not await store.finish_job(
        "unknown", status=JobStatus.FAILED, output=(), error=None, at=1
    )


async def test_finish_job_once_across_replicas(replicas: list[Store]) -> None:
    await replicas[0].save_job(_job("job-race"))
    results = await asyncio.gather(
        *(
            replica.finish_job(
                "job-race", status=JobStatus.SUCCEEDED, output=(f"{r}-{i}",), error=None, at=1.0
            )
            for r, replica in enumerate(replicas)
            for i in range(5)
        )
    )
    assert results.count(True) == 1
    winner = results.index(True)
    stored = await replicas[1].get_job("job-race")
    assert stored is not None
    assert stored.output == (f"{winner // 5}-{winner % 5}",)
    assert stored.error is None and stored.status is JobStatus.SUCCEEDED


# --- ReplicaStore ------------------------------------------------------------------------


async def test_take_over_jobs_of_dead_owners(store: Store) -> None:
    await store.heartbeat("live", at=100.0)
    await store.heartbeat("dead", at=10.0)
    await store.save_job(_job("live-job", owner="live", at=1.0))
    await store.save_job(_job("dead-job", owner="dead", at=2.0))
    await store.save_job(_job("ghost-job", owner="never-beat", at=3.0))
    await store.save_job(_job("orphan", at=4.0))
    await store.save_job(_job("finished", owner="dead", at=5.0))
    await store.finish_job("finished", status=JobStatus.FAILED, output=(), error="e", at=6.0)

    taken = await store.take_over_jobs("me", stale_before=90.0, at=100.0)
    assert [job.id for job in taken] == ["dead-job", "ghost-job", "orphan"]
    assert all(job.owner == "me" and job.status is JobStatus.RUNNING for job in taken)
    for job in taken:
        assert await store.get_job(job.id) == job
    live = await store.get_job("live-job")
    assert live is not None and live.owner == "live"
    finished = await store.get_job("finished")
    assert finished is not None and finished.owner == "dead"
    assert await store.take_over_jobs("me", stale_before=90.0, at=101.0) == []


async def test_a_heartbeat_brings_a_replica_back_to_life(store: Store, database: Database) -> None:
    await store.heartbeat("slow", at=10.0)
    await store.save_job(_job("j", owner="slow"))
    await store.heartbeat("slow", at=95.0)
    assert await store.take_over_jobs("me", stale_before=90.0, at=100.0) == []
    rows = await database.rows(store, "SELECT id, seen_at FROM replicas ORDER BY id")
    assert rows == [("me", 100.0), ("slow", 95.0)]  # one row each


async def test_the_taker_counts_as_alive(store: Store) -> None:
    await store.save_job(_job("j", owner="dead"))
    assert [job.id for job in await store.take_over_jobs("a", stale_before=90.0, at=100.0)] == ["j"]
    # "a" beat at 100 while taking, so "b" with the same cut-off leaves the job to it
    assert await store.take_over_jobs("b", stale_before=90.0, at=100.0) == []


async def test_jobs_are_taken_over_once_across_replicas(replicas: list[Store]) -> None:
    first = replicas[0]
    await first.heartbeat("dead", at=1.0)
    await asyncio.gather(*(first.save_job(_job(f"j{i}", owner="dead")) for i in range(40)))
    results = await asyncio.gather(
        *(
            replica.take_over_jobs(f"r{i}", stale_before=50.0, at=100.0)
            for i, replica in enumerate(replicas)
            for _ in range(2)
        )
    )
    taken = Counter(job.id for result in results for job in result)
    assert taken == Counter({f"j{i}": 1 for i in range(40)})
    owners = {job.id: job.owner for result in results for job in result}
    for job in await first.running_jobs():
        assert job.owner == owners[job.id]


async def test_stop_requests(store: Store) -> None:
    await store.begin_turn(_turn("running"))
    await store.begin_turn(_turn("other"))
    await store.begin_turn(_turn("done", status=TurnStatus.DONE))
    assert await store.stop_requested(["running", "other"]) == set()

    assert await store.request_stop("running", at=1.0)
    assert await store.request_stop("running", at=2.0)  # a second click
    assert not await store.request_stop("done", at=1.0)
    assert not await store.request_stop("unknown", at=1.0)
    assert await store.stop_requested(["running", "other", "done", "unknown"]) == {"running"}
    assert await store.stop_requested(iter(["running"])) == {"running"}
    assert await store.stop_requested([]) == set()

    await store.finish_turn("running", status=TurnStatus.CANCELLED, at=3.0)
    assert await store.stop_requested(["running"]) == set()
    assert not await store.request_stop("running", at=4.0)


async def test_a_stop_click_on_one_replica_reaches_the_owner(replicas: list[Store]) -> None:
    owner, clicked = replicas[0], replicas[1]
    await owner.begin_turn(_turn("t", owner="r0"))
    assert await clicked.request_stop("t", at=1.0)
    assert await owner.stop_requested(["t"]) == {"t"}


# --- BudgetStore -------------------------------------------------------------------------


async def test_a_budget_grants_its_burst_then_spaces_callers_at_its_rate(store: Store) -> None:
    waits = [
        await store.take_token("slack:T1:chat.update", rate=2, burst=3, now=100.0) for _ in range(5)
    ]
    assert waits == [0.0, 0.0, 0.0, 0.5, 1.0]
    # time refills it: two seconds later the debt (two tokens) is paid and one more is there
    assert await store.take_token("slack:T1:chat.update", rate=2, burst=3, now=102.0) == 0.0
    # other buckets are untouched
    assert await store.take_token("slack:T2:chat.update", rate=2, burst=3, now=100.0) == 0.0


async def test_a_budget_refills_no_further_than_its_burst(store: Store) -> None:
    assert await store.take_token("b", rate=1, burst=2, now=0.0) == 0.0
    waits = [await store.take_token("b", rate=1, burst=2, now=1000.0) for _ in range(3)]
    assert waits == [0.0, 0.0, 1.0]


async def test_replicas_drawing_at_once_share_one_budget(replicas: list[Store]) -> None:
    """Every replica's callers together get the burst at once and then one per 1/rate: no
    two callers are told the same slot."""
    calls = [
        replica.take_token("discord:bot", rate=10, burst=2, now=50.0)
        for replica in replicas
        for _ in range(4)
    ]
    waits = sorted(await asyncio.gather(*calls))
    assert waits == pytest.approx([0, 0, *[n / 10 for n in range(1, len(calls) - 1)]])


async def test_a_blocked_budget_tells_no_caller_a_slot_before_the_block_ends(
    replicas: list[Store],
) -> None:
    """A 429 on one replica (Retry-After 3 s) holds every replica's callers back."""
    refused, other = replicas[0], replicas[1]
    assert await other.take_token("slack:T1:chat.update", rate=2, burst=3, now=10.0) == 0.0
    await refused.block_budget("slack:T1:chat.update", rate=2, burst=3, now=10.0, until=13.0)
    assert await other.take_token("slack:T1:chat.update", rate=2, burst=3, now=10.0) == 3.5
    # a shorter block later does not shorten it; once it is over the bucket refills as usual
    await refused.block_budget("slack:T1:chat.update", rate=2, burst=3, now=10.0, until=11.0)
    assert await other.take_token("slack:T1:chat.update", rate=2, burst=3, now=14.0) == 0.0
    # a bucket never seen before is blocked too
    await refused.block_budget("discord:bot", rate=10, burst=2, now=0.0, until=1.0)
    assert await other.take_token("discord:bot", rate=10, burst=2, now=0.5) == pytest.approx(0.6)


async def test_what_one_replica_learned_from_a_429_reaches_the_others(
    replicas: list[Store],
) -> None:
    learned, other = replicas[0], replicas[1]
    assert await other.refusals_since(0.0) == []
    first = BudgetRefusal("slack:T1/chat.update", "r0", 0.75, 1.0, 700.0, 100.0)
    await learned.record_refusal(first)
    assert await other.refusals_since(0.0) == [first]
    assert await other.refusals_since(100.0) == []  # only what is newer than `at`
    # the latest per budget replaces the one before, and they come oldest first
    later = BudgetRefusal("slack:T1/chat.update", "r1", 0.5, 0.75, 800.0, 200.0)
    posts = BudgetRefusal("slack:T1/chat.postMessage:C1", "r1", 1.0, 1.0, 750.0, 150.0)
    await other.record_refusal(later)
    await other.record_refusal(posts)
    assert await learned.refusals_since(0.0) == [posts, later]
    assert await learned.refusals_since(160.0) == [later]


# --- LeaseStore --------------------------------------------------------------------------


async def test_lease_acquire_renew_expire_release(store: Store) -> None:
    assert await store.acquire_lease("thread:1", "a", ttl=10.0, now=0.0)
    assert not await store.acquire_lease("thread:1", "b", ttl=10.0, now=5.0)
    assert await store.acquire_lease("thread:1", "a", ttl=10.0, now=8.0)  # renewed to 18
    assert not await store.acquire_lease("thread:1", "b", ttl=10.0, now=15.0)
    assert await store.acquire_lease("thread:1", "b", ttl=10.0, now=18.0)  # expired → b's
    assert not await store.acquire_lease("thread:1", "a", ttl=10.0, now=19.0)

    assert not await store.release_lease("thread:1", "a")  # not a's any more: b keeps it
    assert not await store.acquire_lease("thread:1", "c", ttl=10.0, now=20.0)
    assert await store.release_lease("thread:1", "b")
    assert not await store.release_lease("thread:1", "b")
    assert await store.acquire_lease("thread:1", "c", ttl=10.0, now=21.0)
    assert await store.acquire_lease("thread:2", "a", ttl=10.0, now=21.0)  # another name


async def test_a_free_lease_has_one_winner_across_replicas(replicas: list[Store]) -> None:
    for round_ in range(5):
        results = await asyncio.gather(
            *(
                replica.acquire_lease(f"lease-{round_}", f"{r}-{i}", ttl=30.0, now=0.0)
                for r, replica in enumerate(replicas)
                for i in range(5)
            )
        )
        assert results.count(True) == 1, round_


async def test_an_expired_lease_has_one_taker_across_replicas(replicas: list[Store]) -> None:
    assert await replicas[0].acquire_lease("l", "dead", ttl=1.0, now=0.0)
    results = await asyncio.gather(
        *(
            replica.acquire_lease("l", f"{r}-{i}", ttl=30.0, now=5.0)
            for r, replica in enumerate(replicas)
            for i in range(5)
        )
    )
    assert results.count(True) == 1


async def test_count_leases(store: Store) -> None:
    for turn in ("t1", "t2", "t3"):
        assert await store.acquire_lease(f"user:U1:{turn}", "r", ttl=10.0, now=0.0)
    assert await store.acquire_lease("user:U1:short", "r", ttl=1.0, now=0.0)
    assert await store.acquire_lease("user:U10:t1", "r", ttl=10.0, now=0.0)
    assert await store.acquire_lease("user:u1:t9", "r", ttl=10.0, now=0.0)
    assert await store.acquire_lease("user:U_:t1", "r", ttl=10.0, now=0.0)
    assert await store.acquire_lease("user:U%:t1", "r", ttl=10.0, now=0.0)

    assert await store.count_leases("user:U1:", now=0.5) == 4
    assert await store.count_leases("user:U1:", now=1.0) == 3  # "short" ran out
    assert await store.count_leases("user:U_:", now=1.0) == 1  # _ is no wildcard
    assert await store.count_leases("user:U%:", now=1.0) == 1  # nor is %
    assert await store.count_leases("user:", now=1.0) == 7
    assert await store.release_lease("user:U1:t2", "r")
    assert await store.count_leases("user:U1:", now=1.0) == 2
    assert await store.count_leases("user:U1:", now=10.0) == 0
    assert await store.count_leases("nobody:", now=0.0) == 0


# --- all roles together ------------------------------------------------------------------


async def test_two_hundred_concurrent_writers_all_land(store: Store) -> None:
    n = 200
    await asyncio.gather(
        *(store.save_thread(_thread(i)) for i in range(n)),
        *(store.begin_turn(_turn(f"turn-{i}")) for i in range(n)),
        *(store.claim_event("discord", f"ev-{i}", now=0.0, ttl=60.0) for i in range(n)),
    )
    threads = await asyncio.gather(*(store.get_thread(_thread(i).key) for i in range(n)))
    assert threads == [_thread(i) for i in range(n)]
    turns = await asyncio.gather(*(store.get_turn(f"turn-{i}") for i in range(n)))
    assert all(turn is not None for turn in turns)
    assert len(await store.interrupt_running_turns(at=1.0)) == n
    claims = await asyncio.gather(
        *(store.claim_event("discord", f"ev-{i}", now=1.0, ttl=60.0) for i in range(n))
    )
    assert not any(claims)


async def test_data_survives_reopen(database: Database) -> None:
    first = await database.open()
    await first.save_thread(_thread(3))
    await first.set_channel_eco(KEY.channel_key, eco=True, by="U1", at=1.0)
    await first.set_channel_web_search(KEY.channel_key, web_search=False, by="U1", at=1.0)
    generation = GenerationRecord("https://cdn/x.png", "image", "s", KEY, None, 1.0, id="g1")
    await first.add_generation(generation)
    await first.save_job(_job(owner="r1"))
    await first.begin_turn(_turn("t", owner="r1"))
    await first.heartbeat("r1", at=100.0)
    assert await first.request_stop("t", at=1.0)
    assert await first.acquire_lease("lease", "r1", ttl=100.0, now=0.0)
    assert await first.claim_event("slack", "E1", now=0.0, ttl=100.0)
    await database.close(first)

    second = await database.open()
    assert await second.get_thread(_thread(3).key) == _thread(3)
    assert (await second.get_channel(KEY.channel_key)).eco
    assert (await second.get_channel(KEY.channel_key)).web_search is False
    assert await second.get_generation("g1") == generation
    assert await second.get_job("job-1") == _job(owner="r1")
    assert await second.get_turn("t") == _turn("t", owner="r1")
    assert await second.stop_requested(["t"]) == {"t"}
    assert not await second.acquire_lease("lease", "r2", ttl=1.0, now=1.0)
    assert await second.take_over_jobs("r2", stale_before=90.0, at=101.0) == []
    assert not await second.claim_event("slack", "E1", now=1.0, ttl=100.0)


async def test_replicas_opening_a_new_database_at_once_all_work(database: Database) -> None:
    stores = await asyncio.gather(*(database.open() for _ in range(4)))
    await stores[0].save_thread(_thread(1))
    for opened in stores:
        assert await opened.get_thread(_thread(1).key) == _thread(1)


@pytest.mark.parametrize("role", ROLES, ids=lambda role: role.__name__)
def test_every_role_method_has_a_docstring(role: type) -> None:
    for name in _public_methods(role):
        assert (getattr(role, name).__doc__ or "").strip(), f"{role.__name__}.{name}"


# --- HistoryStore ------------------------------------------------------------------------


def _key(n: int, *, platform: str = "slack", workspace: str = "T1") -> ThreadKey:
    return ThreadKey(platform, workspace, f"C{n % 2}", f"17000000{n:02d}.000100")


def _turn_at(
    turn_id: str, key: ThreadKey, at: float, *, user: str = "U1", prompt: str = "p"
) -> TurnRecord:
    return TurnRecord(turn_id, key, user, prompt, TurnStatus.DONE, at, finished_at=at + 1)


async def test_recent_threads_newest_first_with_their_first_prompt(store: Store) -> None:
    one, two, three = _key(1), _key(2), _key(3)
    await store.begin_turn(_turn_at("a", one, 10.0, prompt="draw a fox"))
    await store.begin_turn(_turn_at("b", one, 40.0, prompt="make it blue"))
    await store.begin_turn(_turn_at("c", two, 30.0, prompt="a lighthouse"))
    # someone else's later turn in thread two does not move it for U1, nor name it
    await store.begin_turn(_turn_at("d", two, 90.0, user="U2", prompt="mine"))
    await store.begin_turn(_turn_at("e", three, 20.0, prompt="x" * 500))
    recent = await store.recent_threads("slack", "T1", "U1", limit=10)
    assert recent == [
        ThreadSummary(one, "draw a fox", 40.0),
        ThreadSummary(two, "a lighthouse", 30.0),
        ThreadSummary(three, "x" * 200, 20.0),
    ]
    assert await store.recent_threads("slack", "T1", "U1", limit=2) == recent[:2]
    assert await store.recent_threads("slack", "T1", "U1", limit=0) == []


async def test_recent_threads_count_runs_and_stay_in_their_workspace(store: Store) -> None:
    run = dataclasses.replace(_job("job-7", at=70.0), key=_key(4), title="flux-pro")
    await store.save_job(run)
    await store.begin_turn(_turn_at("a", _key(5), 60.0))
    await store.begin_turn(_turn_at("b", _key(6, workspace="T2"), 99.0))
    await store.begin_turn(_turn_at("c", _key(7, platform="discord"), 98.0))
    recent = await store.recent_threads("slack", "T1", "U1", limit=10)
    assert recent == [ThreadSummary(_key(4), "flux-pro", 70.0), ThreadSummary(_key(5), "p", 60.0)]
    assert await store.recent_threads("slack", "T1", "U9", limit=10) == []


async def test_recent_threads_ties_order_by_channel_then_thread(store: Store) -> None:
    keys = [
        ThreadKey("slack", "T1", channel, thread)
        for channel, thread in (("C2", "1.1"), ("C1", "2.2"), ("C1", "1.9"))
    ]
    for n, key in enumerate(keys):
        await store.begin_turn(_turn_at(f"t{n}", key, 5.0))
    recent = await store.recent_threads("slack", "T1", "U1", limit=10)
    assert [s.key for s in recent] == [keys[2], keys[1], keys[0]]


async def test_turn_counts_per_cut_off(store: Store) -> None:
    for n, at in enumerate((5.0, 10.0, 15.0, 20.0)):
        await store.begin_turn(_turn_at(f"t{n}", _key(n), at))
    await store.begin_turn(_turn_at("running", _key(1), 25.0))  # unfinished turns count too
    await store.begin_turn(_turn_at("other", _key(1), 25.0, user="U2"))
    await store.begin_turn(_turn_at("elsewhere", _key(1, workspace="T2"), 25.0))
    assert await store.turn_counts("slack", "T1", "U1", since=[15.0, 0.0, 10.0]) == [3, 5, 4]
    assert await store.turn_counts("slack", "T1", "U1", since=[26.0]) == [0]
    assert await store.turn_counts("slack", "T1", "U9", since=[0.0]) == [0]
    assert await store.turn_counts("slack", "T1", "U1", since=[]) == []
