"""The Discord politeness benchmark at toy size, so it cannot silently rot: the real bot
against the fake Discord must earn no 429 while the naive baseline earns many."""

from __future__ import annotations

from bench.__main__ import MODULES, table
from bench.bench_discord import run


def test_quick_discord_politeness_has_its_figures_and_no_429() -> None:
    (item,) = run(quick=True)
    figures, targets = item["figures"], item["targets"]
    assert item["name"] == "politeness_discord"
    assert set(targets) <= set(figures), "every target names a figure"
    assert figures["ours_429"] == 0 and figures["concurrent_429"] == 0
    assert figures["finished"] == figures["concurrent_threads"] == 10
    assert figures["naive_calls_per_turn"] == figures["events"] + 1
    assert figures["naive_429"] > 0, "the fake must enforce Discord's edit limit"
    assert 0 < figures["ours_calls_per_turn"] < figures["naive_calls_per_turn"]
    # the age is clipped to the stream's lifetime, give or take one flush (rounding, timers)
    assert 0 < figures["discord_max_live_age_ms"] < figures["stream_seconds"] * 1000 + 500
    assert any("concurrent_429" in row and "ok" in row for row in table([item]))
    assert "bench_discord" in MODULES
