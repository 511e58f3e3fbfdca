"""Two replicas vs one on the same load: calls per workspace and 429s, on PostgreSQL.

Slack scenario B of `bench_answers` (20 conversations at once in one workspace, each in its
own channel, 500 deltas over 10 s each) against the fake Slack with Slack's limits on
(`chat.update` 50 a minute per workspace with bursts of 10, `chat.postMessage` one a second
per channel), run twice in the same run: by one bot process, and by two replicas of it on
one PostgreSQL schema with the slash commands spread over them as a load balancer would.

Each configuration first answers one run that is not counted: its budgets start at Slack's
documented tier and grow until the workspace says no, and that learning costs a 429 or two
(`*_429_while_learning`; the replicas learn it once, together, through the store). The
counted runs that follow are the steady state. Figures: the Web API calls the workspace
received over them (`calls`, and by method), the 429s it answered, and the answers' `done`
/ `blind` / `exact` as in `bench_answers`. The replicas share every budget through the
store (`bot.shared_budgets`), so the target is that two replicas make no more calls than
one (`two_over_one_calls` at most 1.05: the few tokens a replica draws ahead) and earn no
429.

Run: `python -m bench.bench_replicas [--quick]`.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from bench.bench_answers import (
    B,
    BotProcess,
    Outcome,
    Scenario,
    ScriptedSimulator,
    bot_env,
    figures_of,
    slack_run,
)
from bench.bench_store import PostgresUnreachable, postgres_schema
from bench.common import ROOT_DIR, SIGNING_SECRET, Result, result
from tests.limited_slack import LimitedSlack

RUNS = 2


async def replicas_scenario(
    folder: Path, url: str, scenario: Scenario, *, replicas: int, runs: int, tag: str
) -> tuple[Outcome, Counter[str], int]:
    """`runs` runs of `scenario` answered by `replicas` bot processes on database `url`,
    after one to learn in: the outcome, the Web API calls the workspace received during
    them (by method), and the 429s of the learning run."""
    sim = ScriptedSimulator()
    slack = LimitedSlack.slack_like()
    async with sim, slack, contextlib.AsyncExitStack() as stack:
        urls = []
        for _ in range(replicas):
            env = bot_env(
                folder,
                ROOT_DIR,
                sim,
                database_url=url,
                slack_bot_token=slack.bot_token,
                slack_signing_secret=SIGNING_SECRET,
                slack_api_url=slack.api_url,
            )
            await stack.enter_async_context(BotProcess(ROOT_DIR, "slack", env))
            urls.append(f"http://127.0.0.1:{env['HTTP_PORT']}/slack/events")
        # one run first, not counted: the budgets learn the workspace's limit in it (the
        # 429s that takes are reported apart); the runs after it are the steady state
        learning = await slack_run(slack, sim, urls, scenario, runs, tag + "w")
        before = len(slack.calls)
        total = Outcome()
        for run in range(runs):
            total.add(await slack_run(slack, sim, urls, scenario, run, tag))
        return total, Counter(call.method for call in slack.calls[before:]), learning.limited


async def compare(quick: bool) -> Result:
    scenario = Scenario("B", 4, 200, 1_200, seconds=4.0) if quick else B
    runs = 1 if quick else RUNS
    figures: dict[str, Any] = {"conversations_per_run": scenario.conversations, "runs": runs}
    with tempfile.TemporaryDirectory() as name:
        outcomes: dict[int, tuple[Outcome, Counter[str], int]] = {}
        for replicas in (1, 2):
            try:
                async with postgres_schema() as url:
                    outcomes[replicas] = await replicas_scenario(
                        Path(name), url, scenario, replicas=replicas, runs=runs, tag=f"r{replicas}"
                    )
            except PostgresUnreachable as err:
                figures["postgres"] = str(err)
                return result("replicas_calls_per_workspace", figures)
    for replicas, label in ((1, "one"), (2, "two")):
        outcome, calls, learning = outcomes[replicas]
        figures[f"{label}_429_while_learning"] = learning
        figures[f"{label}_calls"] = calls.total()
        for method in ("chat.update", "chat.postMessage"):
            figures[f"{label}_{method}"] = calls[method]
        found = figures_of(outcome, label)
        for key in ("429", "exact", "done_p99_s", "blind_max_s"):
            figures[f"{label}_{key}"] = found[f"{label}_{key}"]
    figures["two_over_one_calls"] = round(figures["two_calls"] / max(1, figures["one_calls"]), 3)
    n = runs * scenario.conversations
    targets = {
        "two_over_one_calls": "<= 1.05",
        "two_429": "== 0",
        "two_429_while_learning": "<= 5",  # a handful
        "two_exact": f"== {n}",
        "one_exact": f"== {n}",
    }
    return result("replicas_calls_per_workspace", figures, targets)


def run(quick: bool = False) -> list[Result]:
    return [asyncio.run(compare(quick))]


if __name__ == "__main__":
    for item in run(quick="--quick" in sys.argv):
        print(item)
