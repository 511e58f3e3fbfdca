"""Direct model runs and workflows through both real adapters: the discord.py `DiscordBot`
against the fake Discord and the slack-bolt `SlackBot` against the fake Slack, with the
simulator as Eachlabs. What a person sees: the thread, the progress message, the files,
a failure sentence, and the Cancel button clicked the way each platform delivers a click.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from adapters.discord.client import DiscordBot
from bot.app import Core, close_core, simulated
from bot.config import Settings
from bot.models import JobStatus
from simulator import Simulator
from simulator.jobs import MODELS, SimJob, sim_jobs
from tests.discord_bot import running_bot
from tests.fakes.discord import EPHEMERAL, FakeDiscord, FakeInteraction
from tests.fakes.slack import FakeMessage, FakeSlack
from tests.test_slack_adapter import SECRET, Rig, buttons, fast_limiter, make_rig, until

# Fast polling for runs that should just finish; the Cancel tests poll slowly instead, so
# a `slow` run stays running (the simulator ends it after a few polls) while we click.
FAST_POLLS: dict[str, Any] = {"job_poll_initial": 0.05, "job_poll_max": 0.2}
SLOW_POLLS: dict[str, Any] = {"job_poll_initial": 1.0, "job_poll_max": 1.0}


def sim_job(sim: Simulator, prefix: str) -> SimJob | None:
    """The one simulated job whose id starts with `prefix` (`pred-` or `exec-`), if any."""
    found = [j for j in sim_jobs(sim.app).jobs.values() if j.id.startswith(prefix)]
    assert len(found) <= 1, found
    return found[0] if found else None


# --- Discord ----------------------------------------------------------------------------


@dataclass
class DiscordRig:
    fake: FakeDiscord
    sim: Simulator
    core: Core
    bot: DiscordBot

    def bot_messages(self, channel_id: str) -> list[dict[str, Any]]:
        return [
            m
            for m in self.fake.channel_messages(channel_id)
            if m["author"]["id"] == self.fake.bot_id
        ]

    async def command(self, name: str, options: dict[str, str]) -> tuple[FakeInteraction, str]:
        """Run a slash command; return the interaction and the thread it opened."""
        inter = await self.fake.slash(name, options)
        original = await self.fake.wait_for(
            lambda: (
                inter.original_id
                and "Answering in" in self.fake.messages[inter.original_id]["content"]
                and inter.original_id
            ),
            what="the deferred response to point at the thread",
        )
        return inter, self.fake.messages[original]["content"].split("<#")[1].rstrip(">")

    def progress(self, thread_id: str) -> dict[str, Any]:
        """The run's progress message: the first message the bot posts in the thread."""
        return self.bot_messages(thread_id)[0]

    async def ended(self, thread_id: str, mark: str) -> dict[str, Any]:
        """The progress message once it shows its final status (`mark`)."""
        return await self.fake.wait_for(
            lambda: next(
                (m for m in self.bot_messages(thread_id)[:1] if mark in m["content"]), None
            ),
            what=f"the progress message to say {mark!r}",
        )

    def attachments(self, thread_id: str) -> list[dict[str, Any]]:
        return [a for m in self.bot_messages(thread_id) for a in m["attachments"]]

    def uploads(self, thread_id: str) -> list[Any]:
        calls = self.fake.calls_to("POST", rf"/channels/{thread_id}/messages$")
        return [f for c in calls for f in c.files]


@pytest.fixture
async def discord_rig(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[DiscordRig]:
    overrides: dict[str, Any] = {**FAST_POLLS, **getattr(request, "param", {})}
    async with FakeDiscord() as fake, Simulator(speed=1000) as sim:
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            database_url=f"sqlite:///{tmp_path}/bot.db",
            media_allow_insecure=True,
            **overrides,
        )
        async with running_bot(fake, sim, settings) as (core, bot):
            yield DiscordRig(fake, sim, core, bot)


async def test_discord_predict_end_to_end(discord_rig: DiscordRig) -> None:
    rig, fake = discord_rig, discord_rig.fake
    sim_jobs(rig.sim.app).speed = 10  # a 0.6 s run: the first poll still sees it running
    inter, thread_id = await rig.command(
        "sense-predict", {"model": "flux-schnell", "prompt": "a lighthouse at dawn"}
    )
    assert inter.callbacks[0]["type"] == 5, "the command must be deferred (thinking)"
    root = fake.messages[thread_id]
    assert root["content"] == f"<@{fake.user_id}> ran `flux-schnell`: a lighthouse at dawn"
    assert fake.channels[thread_id]["parent_id"] == fake.channel_id

    await fake.wait_for(lambda: rig.attachments(thread_id), what="the output file")
    progress = await rig.ended(thread_id, "✅ done in")
    assert progress["content"].startswith("**Model run** `flux-schnell`")
    assert progress["components"] == [], "the Cancel button goes once the run is over"

    # while running, the progress message showed the remote status and a Cancel button
    edits = fake.calls_to("PATCH", rf"/channels/{thread_id}/messages/{progress['id']}$")
    running = [c.json for c in edits if "⏳ starting" in c.json.get("content", "")]
    assert running, [c.json.get("content") for c in edits]
    cancel = running[0]["components"][0]["components"][0]
    assert cancel["label"] == "Cancel" and cancel["custom_id"].startswith("sense:cancel:")

    # the posted file has exactly the bytes of the simulator's output
    job = sim_job(rig.sim, "pred-")
    assert job is not None and job.words == frozenset({"a", "lighthouse", "at", "dawn"})
    (upload,) = rig.uploads(thread_id)
    async with aiohttp.ClientSession() as http, http.get(job.outputs[0]) as response:
        assert response.status == 200
        assert upload.data == await response.read()
    assert job.outputs[0].endswith(upload.filename)
    assert fake.rate_limited == 0 and not fake.pings()


async def test_discord_workflow_posts_one_attachment_per_output(discord_rig: DiscordRig) -> None:
    rig, fake = discord_rig, discord_rig.fake
    _, thread_id = await rig.command(
        "sense-workflow", {"workflow_id": "wf_demo", "inputs": 'prompt="a b"'}
    )
    assert "ran workflow `wf_demo`" in fake.messages[thread_id]["content"]
    files = await fake.wait_for(
        lambda: len(rig.attachments(thread_id)) >= 2 and rig.attachments(thread_id),
        what="both workflow outputs",
    )
    await rig.ended(thread_id, "✅ done in")
    job = sim_job(rig.sim, "exec-")
    assert job is not None and job.words == frozenset({"a", "b"})
    assert sorted(a["filename"] for a in files) == sorted(u.rsplit("/", 1)[1] for u in job.outputs)
    async with aiohttp.ClientSession() as http:
        for upload in rig.uploads(thread_id):
            async with http.get(rig.sim.media_url(upload.filename)) as response:
                assert upload.data == await response.read()
    # a workflow cannot be cancelled from chat, so it never shows a Cancel button
    assert all(not (c.json or {}).get("components") for c in fake.calls if c.method == "PATCH")


async def test_discord_workflow_unquoted_value_is_refused_privately(
    discord_rig: DiscordRig,
) -> None:
    fake = discord_rig.fake
    inter = await fake.slash("sense-workflow", {"workflow_id": "wf_demo", "inputs": "prompt=a b"})
    await fake.wait_for(lambda: inter.callbacks, what="the refusal")
    reply = inter.callbacks[0]["data"]
    assert reply["flags"] & EPHEMERAL and "quote values with spaces" in reply["content"]
    assert not fake.threads() and not sim_jobs(discord_rig.sim.app).jobs


async def test_discord_failed_run_is_a_clear_sentence(discord_rig: DiscordRig) -> None:
    rig = discord_rig
    _, thread_id = await rig.command(
        "sense-predict", {"model": "flux-dev", "prompt": "this will fail"}
    )
    progress = await rig.ended(thread_id, "❌ failed")
    assert (
        "⚠️ The run failed: The model crashed: out of memory (simulated)." in (progress["content"])
    )
    await rig.core.jobs.wait_idle()  # type: ignore[union-attr]
    assert not rig.attachments(thread_id) and len(rig.bot_messages(thread_id)) == 1


async def test_discord_refused_run_is_a_clear_sentence(discord_rig: DiscordRig) -> None:
    rig = discord_rig
    _, thread_id = await rig.command(
        "sense-workflow", {"workflow_id": "missing_wf", "inputs": "prompt=x"}
    )
    progress = await rig.ended(thread_id, "❌ failed")
    assert "⚠️ Eachlabs could not find that workflow." in progress["content"]
    assert not sim_jobs(rig.sim.app).jobs and len(rig.bot_messages(thread_id)) == 1


@pytest.mark.parametrize("discord_rig", [SLOW_POLLS], indirect=True)
async def test_discord_cancel_button_cancels_the_run(discord_rig: DiscordRig) -> None:
    rig, fake = discord_rig, discord_rig.fake
    sim_jobs(rig.sim.app).speed = 1.0  # `slow` runs two minutes: only Cancel ends it soon
    _, thread_id = await rig.command("sense-predict", {"model": "flux-dev", "prompt": "slow fox"})
    message, custom_id = await fake.wait_for(
        lambda: next(
            (
                (m, m["components"][0]["components"][0]["custom_id"])
                for m in rig.bot_messages(thread_id)
                if m["components"]
            ),
            None,
        ),
        what="the Cancel button",
    )
    assert custom_id.startswith("sense:cancel:")

    # someone else's click is refused and changes nothing
    other = await fake.click(custom_id, message_id=message["id"], user_id=fake.admin_id)
    refusal = await fake.wait_for(lambda: other.reply, what="the refusal")
    assert "Only the person who started" in refusal["content"]

    # Eachlabs may take longer to cancel than Discord waits for an answer to the click
    fake.ack_deadline = 0.3
    sim_jobs(rig.sim.app).cancel_delay = 0.6
    click = await fake.click(custom_id, message_id=message["id"], user_id=fake.user_id)
    reply = await fake.wait_for(lambda: click.reply, what="the Cancel reply")
    assert click.callbacks[0]["data"]["flags"] & EPHEMERAL  # answered at once, privately
    assert reply["flags"] & EPHEMERAL
    assert reply["content"] == "Cancelling that run."

    progress = await rig.ended(thread_id, "🛑 cancelled after")
    assert progress["components"] == []
    job = sim_job(rig.sim, "pred-")
    assert job is not None and job.cancelled
    assert any(path.endswith(f"/prediction/{job.id}/cancel") for _, path, _ in sim_requests(rig))
    assert rig.core.jobs is not None
    await rig.core.jobs.wait_idle()
    record = await rig.core.store.get_job(custom_id.split(":", 2)[2])
    assert record is not None and record.status is JobStatus.CANCELLED
    assert not rig.attachments(thread_id) and len(rig.bot_messages(thread_id)) == 1

    # a second click after the end says so instead of cancelling again
    again = await fake.click(custom_id, message_id=message["id"], user_id=fake.user_id)
    second = await fake.wait_for(lambda: again.reply, what="the second reply")
    assert "already finished" in second["content"]


async def test_discord_model_autocomplete_offers_the_simulator_models(
    discord_rig: DiscordRig,
) -> None:
    fake = discord_rig.fake
    inter = await fake.autocomplete(
        "sense-predict", {"model": "flux", "prompt": ""}, focused="model"
    )
    await fake.wait_for(lambda: inter.callbacks, what="autocomplete choices")
    assert inter.callbacks[0]["type"] == 8
    choices = inter.callbacks[0]["data"]["choices"]
    expected = [{"name": title, "value": slug} for slug, title, _ in MODELS if "flux" in slug]
    assert choices == expected

    everything = await fake.autocomplete(
        "sense-predict", {"model": "", "prompt": ""}, focused="model"
    )
    await fake.wait_for(lambda: everything.callbacks, what="all choices")
    values = [c["value"] for c in everything.callbacks[0]["data"]["choices"]]
    assert values == [slug for slug, _, _ in MODELS]


def sim_requests(rig: DiscordRig | SlackRig) -> list[tuple[str, str, Any]]:
    return sim_jobs(rig.sim.app).requests


# --- Slack ------------------------------------------------------------------------------


@dataclass
class SlackRig:
    rig: Rig
    core: Core

    @property
    def sim(self) -> Simulator:
        return self.rig.sim

    @property
    def slack(self) -> FakeSlack:
        return self.rig.slack

    async def thread(self, command: str, text: str) -> str:
        status, _ = await self.rig.command(command, text)
        assert status == 200
        return (await until(lambda: self.slack.top_level("C1"), what="the root message"))[0].ts

    async def progress(self, root: str, mark: str) -> FakeMessage:
        return await until(
            lambda: next(
                (m for m in self.slack.thread("C1", root)[:1] if mark in m.all_text), None
            ),
            what=f"the progress message to say {mark!r}",
        )


@pytest.fixture
async def slack_rig(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SlackRig]:
    overrides: dict[str, Any] = {**FAST_POLLS, **getattr(request, "param", {})}
    async with Simulator(speed=1000) as sim, FakeSlack() as slack:
        settings = simulated(
            Settings(
                _env_file=None,  # type: ignore[call-arg]
                slack_bot_token=SecretStr(slack.bot_token),
                slack_signing_secret=SecretStr(SECRET),
                slack_api_url=slack.api_url,
                database_url=f"sqlite:///{tmp_path / 'bot.db'}",
                http_host="127.0.0.1",
                http_port=0,
                **overrides,
            ),
            sim,
        )
        core, http, bot = await make_rig(settings, slack, sim, fast_limiter())
        try:
            yield SlackRig(Rig(slack, sim, bot, http, core.session), core)
        finally:
            await bot.stop()
            await http.stop()
            await close_core(core)


async def test_slack_failed_run_is_a_clear_sentence(slack_rig: SlackRig) -> None:
    root = await slack_rig.thread("/sense-predict", "flux-dev make it fail")
    progress = await slack_rig.progress(root, "failed")
    assert "The run failed: The model crashed: out of memory (simulated)." in progress.all_text
    assert "Model run" in progress.all_text and not buttons(progress)
    await slack_rig.core.jobs.wait_idle()  # type: ignore[union-attr]
    assert not slack_rig.slack.files and len(slack_rig.slack.thread("C1", root)) == 1


async def test_slack_refused_run_is_a_clear_sentence(slack_rig: SlackRig) -> None:
    root = await slack_rig.thread("/sense-predict", "flux-dev fail:402 please")
    progress = await slack_rig.progress(root, "failed")
    assert "Payment required by Eachlabs: Your balance is $0.00" in progress.all_text
    assert not sim_jobs(slack_rig.sim.app).jobs


@pytest.mark.parametrize("slack_rig", [SLOW_POLLS], indirect=True)
async def test_slack_cancel_button_cancels_the_run(slack_rig: SlackRig) -> None:
    rig, slack = slack_rig, slack_rig.slack
    sim_jobs(rig.sim.app).speed = 1.0
    root = await rig.thread("/sense-predict", "flux-dev a slow fox")
    live = await until(
        lambda: next((m for m in slack.thread("C1", root) if buttons(m)), None),
        what="the Cancel button",
    )
    (cancel,) = buttons(live)
    assert cancel["action_id"].startswith("sense:cancel:") and cancel["style"] == "danger"

    status, _ = await rig.rig.click(cancel, live, user="U2")
    assert status == 200
    await until(lambda: slack.responses, what="the refusal")
    assert "Only the person who started" in slack.responses[0]["text"]

    status, _ = await rig.rig.click(cancel, live, user="U1")
    assert status == 200
    await until(lambda: len(slack.responses) == 2, what="the Cancel reply")
    assert slack.responses[1]["text"] == "Cancelling that run."
    assert slack.responses[1]["response_type"] == "ephemeral"

    progress = await rig.progress(root, "cancelled after")
    assert not buttons(progress)
    job = sim_job(rig.sim, "pred-")
    assert job is not None and job.cancelled
    assert any(path.endswith(f"/prediction/{job.id}/cancel") for _, path, _ in sim_requests(rig))
    assert rig.core.jobs is not None
    await rig.core.jobs.wait_idle()
    record = await rig.core.store.get_job(cancel["value"])
    assert record is not None and record.status is JobStatus.CANCELLED
    assert not slack.files and len(slack.thread("C1", root)) == 1
