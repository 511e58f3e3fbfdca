"""The store's added latency per turn: SQLite (one process) vs PostgreSQL (several replicas).

A turn's store work is replayed exactly as the core does it, sequentially per turn and with
many turns at once: the event claim, the thread's session (new or continued), the turn's
record, and on PostgreSQL the replica coordination (the thread's lease and the person's slot
counted across replicas), then the turn's end. p50/p99 of the whole sequence per turn, both
engines in the same run, and their ratio. PostgreSQL is the local server the tests use
(`TEST_DATABASE_URL`); without it the figure says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg

from bench.common import Result, median, ms, percentile, result
from bot.models import ThreadKey, ThreadRecord, TurnRecord, TurnStatus
from bot.ports import Store
from storage import open_store

TURNS = 300
CONCURRENT = 40
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"


async def one_turn(store: Store, n: int, *, coordinated: bool) -> float:
    """The store calls of one follow-up turn, as conversations makes them."""
    key = ThreadKey("bench", "W1", "C1", f"t{n % 50}")
    now = time.time()
    began = time.perf_counter()
    await store.claim_event("bench", f"msg:C1:{uuid.uuid4().hex}", now=now, ttl=86400)
    record = await store.get_thread(key)
    if record is None:
        record = ThreadRecord(key, f"esb-{n}", "U1", now, now)
        await store.save_thread(record)
    if coordinated:
        await store.acquire_lease(f"thread:{key}", "bench", ttl=60, now=now)
        await store.count_leases("user:U1:", now=now)
        slot = f"user:U{n}:{secrets.token_hex(4)}"
        await store.acquire_lease(slot, "bench", ttl=60, now=now)
    turn_id = uuid.uuid4().hex[:20]
    turn = TurnRecord(turn_id, key, "U1", "p", TurnStatus.RUNNING, now, owner="bench")
    await store.begin_turn(turn)
    await store.finish_turn(turn_id, status=TurnStatus.DONE, at=time.time())
    await store.touch_thread(key, at=time.time())
    if coordinated:
        await store.release_lease(slot, "bench")
        await store.release_lease(f"thread:{key}", "bench")
    return time.perf_counter() - began


async def measure(url: str, *, coordinated: bool, in_flight: int) -> list[float]:
    store = await open_store(url)
    try:
        for n in range(20):  # warm-up: connections, statement caches, the first thread
            await one_turn(store, n, coordinated=coordinated)
        gate = asyncio.Semaphore(in_flight)

        async def limited(n: int) -> float:
            async with gate:
                return await one_turn(store, n, coordinated=coordinated)

        return list(await asyncio.gather(*(limited(n) for n in range(TURNS))))
    finally:
        await store.close()


async def fresh_schema(base: str) -> tuple[str, str]:
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(base, timeout=3)
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
    finally:
        await conn.close()
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}search_path={schema}", schema


async def drop_schema(base: str, schema: str) -> None:
    conn = await asyncpg.connect(base, timeout=3)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


class PostgresUnreachable(Exception):
    """The tests' PostgreSQL server could not be reached (the figure says so instead)."""


@contextlib.asynccontextmanager
async def postgres_schema() -> AsyncIterator[str]:
    """A URL for a fresh schema on the local server the tests use (`TEST_DATABASE_URL`),
    dropped afterwards; `PostgresUnreachable`, with the reason, when there is no server."""
    base = os.environ.get("TEST_DATABASE_URL") or DEFAULT_PG
    try:
        url, schema = await fresh_schema(base)
    except (OSError, asyncpg.PostgresError, TimeoutError) as err:
        raise PostgresUnreachable(f"unreachable ({type(err).__name__})") from err
    try:
        yield url
    finally:
        await drop_schema(base, schema)


def figures(name: str, samples: Sequence[float]) -> dict[str, Any]:
    return {
        f"{name} p50 ms": ms(median(samples)),
        f"{name} p99 ms": ms(percentile(samples, 99)),
    }


async def scenario(in_flight: int) -> Result:
    name = f"store per turn, {in_flight} in flight"
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = await measure(f"sqlite:///{tmp}/bench.db", coordinated=False, in_flight=in_flight)
    try:
        async with postgres_schema() as url:
            postgres = await measure(url, coordinated=True, in_flight=in_flight)
    except PostgresUnreachable as err:
        return result(name, {**figures("sqlite", sqlite), "postgres": str(err)})
    found = {**figures("sqlite", sqlite), **figures("postgres", postgres)}
    found["postgres/sqlite p50"] = round(median(postgres) / median(sqlite), 2)
    found["turns"] = TURNS
    targets = {"postgres p50 ms": "< 20"} if in_flight == 1 else {}
    return result(name, found, targets)


def run() -> list[Result]:
    """Alone (the latency a turn pays) and with many at once (the store under load)."""
    return [asyncio.run(scenario(1)), asyncio.run(scenario(CONCURRENT))]


if __name__ == "__main__":
    print(run())
