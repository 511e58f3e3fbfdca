"""The benchmarks at toy sizes, so the bench code cannot silently rot: each scenario runs
the real pipeline and returns figures with the names its targets refer to."""

from __future__ import annotations

import math

from bench.__main__ import table
from bench.bench_pipeline import overhead, throughput
from bench.common import meets, percentile


def test_meets_and_percentile() -> None:
    assert meets(19.9, "< 20") is True and meets(20, "< 20") is False
    assert meets(0, "== 0") is True and meets(1.0, "<= 1.0") is True
    assert meets("n/a", "< 1") is None and meets(3, "flat") is None
    assert percentile(list(range(1, 101)), 99) == 99
    assert math.isnan(percentile([], 50))


async def test_overhead_measures_every_turn() -> None:
    item = await overhead((1, 5), events=8, pace=0.05)  # the rig runs in a child process
    figures = item["figures"]
    assert 0 < figures["p50_ms_at_5"] <= figures["p99_ms_at_5"]
    assert figures["peak_in_flight_at_5"] >= 2  # starts are spread over one turn's duration
    assert 0 < figures["bot_cpu_pct_at_5"] and figures["updates_per_turn_at_5"] >= 1
    assert set(item["targets"]) == {"p99_ms_at_5"}
    rows = table([item])
    assert any("p99_ms_at_5" in row and ("ok" in row or "FAIL" in row) for row in rows)


async def test_throughput_counts_cpu_per_event() -> None:
    item = await throughput(turns=2, events=300)
    figures = item["figures"]
    assert figures["events"] == 600
    assert 0 < figures["cpu_us_per_event"] < 10_000
    assert figures["turns_per_s"] > 0
