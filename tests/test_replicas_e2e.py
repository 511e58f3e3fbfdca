"""Several replicas as an operator runs them: two real `eachsense-bot run` processes in Slack
HTTP mode on one PostgreSQL, the fake Slack delivering to one or the other (as a load
balancer would), the simulator as each::sense and each::api.

What it proves, in one scenario: Stop pressed on B stops A's answer; a redelivered event on B
after A handled it generates nothing; `kill -9` of A mid-turn is reported in that thread by B
within the heartbeat TTL, with a Retry button; a job A followed is finished by B, once; and
SIGTERM of B mid-turn gives the thread its interrupted final edit and a clean exit.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from simulator import Simulator
from simulator.jobs import sim_jobs
from tests.fakes.slack import FakeMessage, FakeSlack
from tests.postgres import fresh_schema_url

SECRET = "replica-signing-secret"
TTL = 2.0  # seconds: a dead replica is noticed within this (plus one sweep)
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Replica:
    name: str
    port: int
    process: subprocess.Popen[bytes]

    @property
    def events_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/slack/events"

    async def ready(self, session: aiohttp.ClientSession) -> None:
        async with asyncio.timeout(30):
            while True:
                if self.process.poll() is not None:
                    raise AssertionError(f"replica {self.name} exited: {self.process.returncode}")
                try:
                    async with session.get(f"http://127.0.0.1:{self.port}/readyz") as r:
                        if r.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)

    async def exited(self) -> int:
        return await asyncio.to_thread(self.process.wait, 30)


def start_replica(name: str, *, database_url: str, slack: FakeSlack, sim: Simulator) -> Replica:
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("EACHSENSE_", "SLACK_", "DISCORD_", "DATABASE_URL", "HTTP"))
    }
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "SLACK_BOT_TOKEN": slack.bot_token,
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": slack.api_url,
            "EACHSENSE_API_KEY": "replica-test-key",
            "EACHSENSE_BASE_URL": sim.base_url,
            "EACHLABS_API_URL": sim.url + "/eachlabs/v1",
            "EACHLABS_WORKFLOWS_URL": sim.url + "/workflows/api/v1",
            "MEDIA_ALLOW_INSECURE": "true",
            "DATABASE_URL": database_url,
            "HTTP_HOST": "127.0.0.1",
            "HTTP_PORT": str(port),
            "REPLICA_ID": name,
            "REPLICA_TTL": str(TTL),
            "SHUTDOWN_GRACE": "0.5",
            "JOB_POLL_INITIAL": "0.2",
            "JOB_POLL_MAX": "0.5",
            "LOG_LEVEL": "WARNING",
        }
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "run", "--platform", "slack"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return Replica(name, port, process)


@pytest.fixture
async def two_replicas() -> AsyncIterator[tuple[FakeSlack, Simulator, Replica, Replica]]:
    async with (
        fresh_schema_url() as database_url,
        Simulator(speed=1000) as sim,
        FakeSlack() as slack,
        aiohttp.ClientSession() as session,
    ):
        a = start_replica("replica-a", database_url=database_url, slack=slack, sim=sim)
        b = start_replica("replica-b", database_url=database_url, slack=slack, sim=sim)
        try:
            await a.ready(session)
            await b.ready(session)
            yield slack, sim, a, b
        finally:
            for replica in (a, b):
                if replica.process.poll() is None:
                    replica.process.kill()
                replica.process.wait(timeout=10)


def buttons(message: FakeMessage) -> list[dict[str, Any]]:
    return [e for b in message.blocks if b.get("type") == "actions" for e in b["elements"]]


async def stalled_turn(slack: FakeSlack, sim: Simulator, prompt: str) -> tuple[str, FakeMessage]:
    """A `/sense` whose answer streams forever; its root ts and live message."""
    before = len(slack.top_level("C1"))
    await slack.send_command("/sense", f"fail:stall {prompt}")
    root = (await slack.wait_for(lambda: slack.top_level("C1")[before:], what="root"))[0].ts
    live = await slack.wait_for(
        lambda: next((m for m in slack.thread("C1", root) if buttons(m)), None),
        what="the live answer with its Stop button",
    )
    await slack.wait_for(lambda: any(prompt in r.prompt for r in sim.requests), what="stream")
    return root, live


async def test_two_replicas_share_one_database_and_lose_nothing(
    two_replicas: tuple[FakeSlack, Simulator, Replica, Replica],
) -> None:
    slack, sim, a, b = two_replicas

    # Stop pressed on B stops the answer A is streaming, with the one-replica sentence
    slack.connect_app(a.events_url, SECRET)
    _, live = await stalled_turn(slack, sim, "stop me")
    stop = next(x for x in buttons(live) if x["action_id"].startswith("sense:stop:"))
    slack.connect_app(b.events_url, SECRET)
    await slack.click(stop, live)
    await slack.wait_for(lambda: "Stopped" in live.all_text, what="A to stop the answer", within=10)
    assert any("Stopping" in r["text"] for r in slack.responses)

    # an event A handled, redelivered to B, generates nothing more
    mention = {
        "type": "app_mention",
        "channel": "C1",
        "user": "U1",
        "text": f"<@{slack.bot_user_id}> just text once",
        "ts": "1800000100.000001",
    }
    slack.connect_app(a.events_url, SECRET)
    first = await slack.send_event(mention, event_id="EvReplica")
    await first.settled()
    await slack.wait_for(
        lambda: any(r.prompt.endswith("just text once") for r in sim.requests), what="A's turn"
    )
    slack.connect_app(b.events_url, SECRET)
    again = await slack.send_event(mention, event_id="EvReplica")
    await again.settled()
    await slack.wait_for(
        lambda: any("Done" in m.all_text for m in slack.thread("C1", "1800000100.000001")),
        what="the answer",
    )
    assert sum(r.prompt.endswith("just text once") for r in sim.requests) == 1

    # a job A follows and a turn A streams, then A dies: B reports the turn and finishes the job
    sim_jobs(sim.app).speed = 30.0  # `slow` runs about four seconds
    slack.connect_app(a.events_url, SECRET)
    await slack.send_command("/sense-predict", "flux-dev a slow fox")
    job_root = (
        await slack.wait_for(
            lambda: [m for m in slack.top_level("C1") if "slow fox" in m.text], what="job root"
        )
    )[0].ts
    await slack.wait_for(lambda: slack.thread("C1", job_root), what="the progress message")
    cut_root, _ = await stalled_turn(slack, sim, "cut me off")
    a.process.send_signal(signal.SIGKILL)
    await a.exited()
    notice = await slack.wait_for(
        lambda: next(
            (m for m in slack.thread("C1", cut_root) if "restarted while answering" in m.text),
            None,
        ),
        what="B to report the dead replica's turn",
        within=4 * TTL + 5,
    )
    assert [x["action_id"].split(":")[1] for x in buttons(notice)] == ["regen"]  # Retry
    progress = await slack.wait_for(
        lambda: next(
            (m for m in slack.thread("C1", job_root)[:1] if "done in" in m.all_text), None
        ),
        what="B to finish A's job",
        within=30,
    )
    assert "✅" in progress.all_text
    outputs = await slack.wait_for(  # the output follows the final edit of the progress
        lambda: [f for f in slack.files.values() if f.thread_ts == job_root], what="output"
    )
    assert len(outputs) == 1

    # SIGTERM of B mid-turn: the thread gets the interrupted final edit, B exits cleanly
    slack.connect_app(b.events_url, SECRET)
    _, live = await stalled_turn(slack, sim, "deploy now")
    b.process.send_signal(signal.SIGTERM)
    assert await b.exited() == 0
    assert "Interrupted by a restart" in live.all_text
    assert [x["action_id"].split(":")[1] for x in buttons(live)] == ["regen"]  # no Stop left
