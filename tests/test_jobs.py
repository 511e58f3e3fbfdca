"""Direct model runs and workflows end to end: the real `Jobs` with the real SQLite store and
media fetcher, against the simulator's each::api/workflows endpoints, with the bot's webhook
route served on 127.0.0.1 so the simulator's webhook deliveries (the job's secret in
`X-Webhook-Secret`, as Eachlabs sends them) really arrive."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from bot.config import Settings
from bot.eachlabs import PredictionsClient, WorkflowsClient
from bot.errors import InputError
from bot.jobs import Jobs, parse_predict_args, parse_workflow_args
from bot.media import MediaFetcher
from bot.models import (
    ButtonAction,
    JobKind,
    JobRecord,
    JobStatus,
    MediaFile,
    SurfaceLimits,
    ThreadKey,
    View,
)
from bot.webhooks import sign, webhook_routes
from simulator import Simulator
from simulator.jobs import SimJobs, sim_jobs
from storage.sqlite import SqliteStore

KEY = ThreadKey("slack", "T1", "C1", "1700000000.000100")
MiB = 1024 * 1024


class RecordingSurface:
    """A thread as the adapters would show it, recorded (the test double of a Surface)."""

    def __init__(self, *, max_upload_bytes: int = 10 * MiB) -> None:
        self._limits = SurfaceLimits(
            min_edit_interval=0.0, max_text=4000, max_upload_bytes=max_upload_bytes
        )
        self.posts: list[View] = []
        self.edits: list[tuple[str, View, bool]] = []
        self.uploads: list[tuple[str, bytes, str]] = []
        self.links: list[tuple[str, str, str]] = []

    @property
    def limits(self) -> SurfaceLimits:
        return self._limits

    async def post(self, view: View) -> str:
        self.posts.append(view)
        return f"m{len(self.posts)}"

    async def edit(self, message_id: str, view: View, *, final: bool = False) -> None:
        self.edits.append((message_id, view, final))

    async def upload(self, media: MediaFile) -> None:
        self.uploads.append((media.filename, media.path.read_bytes(), media.kind))

    async def post_link(self, url: str, *, kind: str, reason: str) -> None:
        self.links.append((url, kind, reason))

    @property
    def finals(self) -> list[View]:
        return [view for _, view, final in self.edits if final]

    def shown(self) -> str:
        views = self.posts + [view for _, view, _ in self.edits]
        return "\n".join(f"{v.status} | {v.text}" for v in views)


async def until(check: Callable[[], Any], within: float = 5.0) -> None:
    """Wait for a condition (polled every 10 ms), failing after `within` seconds."""
    deadline = time.monotonic() + within
    while not await _value(check()):
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def _value(result: Any) -> Any:
    return await result if isinstance(result, Awaitable) else result


@dataclass
class Env:
    sim: Simulator
    session: aiohttp.ClientSession
    store: SqliteStore
    public_url: str
    sock: socket.socket
    runners: list[web.AppRunner]
    jobs_made: list[Jobs]

    @property
    def simjobs(self) -> SimJobs:
        return sim_jobs(self.sim.app)

    async def jobs(self, *, webhooks: bool = True, **overrides: Any) -> Jobs:
        """A `Jobs` on this env's store; with `webhooks` its route is served on `public_url`."""
        values: dict[str, Any] = {
            "job_poll_initial": 0.05,
            "job_poll_max": 0.2,
            "public_url": self.public_url if webhooks else None,
            "bot_admins": ["admin"],
        }
        values.update(overrides)
        settings = Settings(_env_file=None, **values)  # type: ignore[call-arg]
        base = self.sim.url + "/eachlabs/v1"
        jobs = Jobs(
            store=self.store,
            predictions=PredictionsClient(self.session, api_key="k", base_url=base),
            workflows=WorkflowsClient(self.session, api_key="k", base_url=base),
            media=MediaFetcher(self.session, max_bytes=50 * MiB, allow_insecure=True),
            settings=settings,
        )
        self.jobs_made.append(jobs)
        if webhooks:
            app = web.Application()
            app.add_routes(webhook_routes(jobs))
            runner = web.AppRunner(app)
            await runner.setup()
            await web.SockSite(runner, self.sock).start()
            self.runners.append(runner)
        return jobs

    async def reopen_store(self, path: Path) -> None:
        await self.store.close()
        self.store = await SqliteStore.open(str(path))

    def polls(self, remote_id: str) -> int:
        return sum(1 for m, p, _ in self.simjobs.requests if m == "GET" and remote_id in p)


@pytest.fixture
def speed() -> float:
    return 10.0  # a prediction takes 0.6 s of wall time: polling (50 ms) ends it first


@pytest.fixture
async def env(speed: float, tmp_path: Path) -> AsyncIterator[Env]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    public_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    async with Simulator(speed=speed) as sim, aiohttp.ClientSession() as session:
        store = await SqliteStore.open(str(tmp_path / "bot.db"))
        env = Env(sim, session, store, public_url, sock, [], [])
        try:
            yield env
        finally:
            for jobs in env.jobs_made:
                await jobs.aclose()
            for runner in env.runners:
                await runner.cleanup()
            await env.store.close()
            sock.close()


async def _bytes(session: aiohttp.ClientSession, url: str) -> bytes:
    async with session.get(url) as resp:
        return await resp.read()


async def _only_job(store: SqliteStore) -> JobRecord:
    jobs = await store.running_jobs()
    assert len(jobs) == 1
    return jobs[0]


# --- argument parsing ------------------------------------------------------------------------


def test_parse_predict_args() -> None:
    assert parse_predict_args("  flux-pro/v1.1   a 'quoted' fox  ") == (
        "flux-pro/v1.1",
        "a 'quoted' fox",
    )
    for bad in ("", "   ", "flux-pro/v1.1", "flux-pro/v1.1    "):
        with pytest.raises(InputError, match="/sense-predict <model> <prompt>"):
            parse_predict_args(bad)


def test_parse_workflow_args() -> None:
    assert parse_workflow_args("wf_1") == ("wf_1", {})
    assert parse_workflow_args("wf_1 prompt='a red fox' n=2 empty= eq=a=b") == (
        "wf_1",
        {"prompt": "a red fox", "n": "2", "empty": "", "eq": "a=b"},
    )
    with pytest.raises(InputError, match="not a `key=value` pair"):
        parse_workflow_args("wf_1 prompt=a red")
    with pytest.raises(InputError, match="check your quotes"):
        parse_workflow_args("wf_1 prompt='unclosed")
    with pytest.raises(InputError, match="Start with the workflow id"):
        parse_workflow_args("prompt=x")
    with pytest.raises(InputError, match="Usage"):
        parse_workflow_args("  ")


# --- runs end to end -------------------------------------------------------------------------


async def test_prediction_end_to_end(env: Env) -> None:
    jobs = await env.jobs(webhooks=False)
    surface = RecordingSurface()
    await jobs.run_prediction(
        key=KEY, user_id="u1", model="flux-pro/v1.1", prompt="a red fox", surface=surface
    )
    [(_, _, body)] = [r for r in env.simjobs.requests if r[0] == "POST"]
    assert body == {"model": "flux-pro/v1.1", "version": "0.0.1", "input": {"prompt": "a red fox"}}
    remote = next(iter(env.simjobs.jobs))
    url = env.sim.media_url(f"{remote}.png")
    # the posted file is byte for byte what the simulator serves
    assert [(name, data) for name, data, _ in surface.uploads] == [
        (surface.uploads[0][0], await _bytes(env.session, url))
    ]
    assert surface.uploads[0][2] == "image" and surface.links == []
    # one progress message, edited in place, with a Cancel button while running
    assert len(surface.posts) == 1 and "flux-pro/v1.1" in surface.posts[0].text
    running = [view for _, view, final in surface.edits if not final]
    assert any("processing" in v.status for v in running)
    assert all(v.buttons[0].action is ButtonAction.CANCEL_JOB for v in running)
    assert [v.status.startswith("✅ done in") for v in surface.finals] == [True]
    assert surface.finals[0].buttons == ()
    assert await env.store.running_jobs() == []


async def test_workflow_with_several_outputs(env: Env) -> None:
    jobs = await env.jobs(webhooks=False)
    surface = RecordingSurface()
    await jobs.run_workflow(
        key=KEY, user_id="u1", workflow_id="wf_abc", inputs={"prompt": "a video"}, surface=surface
    )
    remote = next(iter(env.simjobs.jobs))
    names = [f"{remote}-1.png", f"{remote}-2.png", f"{remote}-3.mp4"]
    expected = [await _bytes(env.session, env.sim.media_url(n)) for n in names]
    assert [data for _, data, _ in surface.uploads] == expected
    assert [kind for _, _, kind in surface.uploads] == ["image", "image", "video"]
    assert "step 1 of 3" in surface.shown()
    assert surface.finals[0].status.startswith("✅")
    assert all(view.buttons == () for _, view, _ in surface.edits)  # no Cancel for workflows


async def test_too_big_output_is_posted_as_link(env: Env) -> None:
    jobs = await env.jobs(webhooks=False)
    surface = RecordingSurface(max_upload_bytes=10)
    await jobs.run_prediction(
        key=KEY, user_id="u1", model="flux-pro/v1.1", prompt="a fox", surface=surface
    )
    [(url, kind, reason)] = surface.links
    assert url.endswith(".png") and kind == "image" and reason
    assert surface.uploads == []


async def test_failed_job_is_shown_clearly(env: Env) -> None:
    jobs = await env.jobs(webhooks=False)
    surface = RecordingSurface()
    await jobs.run_prediction(
        key=KEY, user_id="u1", model="flux-pro/v1.1", prompt="fail now", surface=surface
    )
    [final] = surface.finals
    assert final.status == "❌ failed"
    assert "The run failed: The model crashed: out of memory (simulated)." in final.text
    assert surface.uploads == [] and surface.links == []
    record = await env.store.get_job(surface.edits[0][1].buttons[0].value)
    assert record is not None and record.status is JobStatus.FAILED
    assert record.error and "crashed" in record.error


@pytest.mark.parametrize(
    ("word", "sentence"),
    [
        # each::api's 402/429 carry the sentence for people in `details`: it is shown
        ("fail:402", "Payment required by Eachlabs: Your balance is $0.00; add credit"),
        ("fail:429", "Too many runs are in flight on this Eachlabs account: Accounts with"),
        ("fail:401", "API key was rejected"),
        ("fail:500", "Eachlabs is having trouble"),
    ],
)
async def test_refused_runs_say_why(env: Env, word: str, sentence: str) -> None:
    jobs = await env.jobs(webhooks=False)
    surface = RecordingSurface()
    await jobs.run_workflow(
        key=KEY, user_id="u1", workflow_id="wf", inputs={"prompt": word}, surface=surface
    )
    [(_, view, final)] = surface.edits
    assert sentence in view.text and view.status == "❌ failed" and final
    assert await env.store.running_jobs() == []


async def test_timeout_stops_waiting(env: Env) -> None:
    jobs = await env.jobs(webhooks=False, job_timeout=0.3)
    surface = RecordingSurface()
    await jobs.run_prediction(
        key=KEY, user_id="u1", model="m", prompt="slow nowebhook", surface=surface
    )
    assert "stopped waiting" in surface.finals[0].text


# --- webhooks --------------------------------------------------------------------------------


@pytest.mark.parametrize("speed", [100.0])
async def test_webhook_finishes_at_once_and_three_deliveries_post_once(env: Env) -> None:
    # Polls 30 s apart: only the webhook (60 ms in) can finish this run quickly.
    env.simjobs.repeat_deliveries = True  # every attempt goes out, as if the 200s were lost
    jobs = await env.jobs(job_poll_initial=30.0, job_poll_max=30.0)
    surface = RecordingSurface()
    started = time.monotonic()
    await asyncio.wait_for(
        jobs.run_prediction(key=KEY, user_id="u1", model="m", prompt="a fox", surface=surface),
        timeout=10,
    )
    assert time.monotonic() - started < 5
    [(_, _, body)] = [r for r in env.simjobs.requests if r[0] == "POST"]
    assert body is not None
    job_id = body["webhook_url"].rsplit("/", 1)[1]
    assert body["webhook_url"] == f"{env.public_url}/webhooks/eachlabs/{job_id}"
    assert len(body["webhook_secret"]) == 64
    remote = next(iter(env.simjobs.jobs))
    assert env.polls(remote) == 1  # the first look only: the webhook did the rest
    # all three deliveries are acknowledged, and the result shows once
    await until(lambda: len(env.simjobs.deliveries) == 3)
    assert env.simjobs.deliveries == [(remote, 200)] * 3
    assert len(surface.uploads) == 1 and len(surface.finals) == 1


@pytest.mark.parametrize("speed", [100.0])
async def test_one_accepted_delivery_is_enough(env: Env) -> None:
    jobs = await env.jobs(job_poll_initial=30.0, job_poll_max=30.0)
    surface = RecordingSurface()
    await asyncio.wait_for(
        jobs.run_prediction(key=KEY, user_id="u1", model="m", prompt="a fox", surface=surface),
        timeout=10,
    )
    remote = next(iter(env.simjobs.jobs))
    assert env.simjobs.deliveries == [(remote, 200)]  # a 2xx ends Eachlabs' retries
    assert len(surface.uploads) == 1 and surface.finals[0].status.startswith("✅")


@pytest.mark.parametrize("speed", [100.0])
async def test_webhook_failure_shows_its_reason(env: Env) -> None:
    # Only the webhook can end this run in time: its reason is in `output[0].error`, an
    # object, while its top-level `error` is "" (the documented payload).
    jobs = await env.jobs(job_poll_initial=30.0, job_poll_max=30.0)
    surface = RecordingSurface()
    await asyncio.wait_for(
        jobs.run_prediction(key=KEY, user_id="u1", model="m", prompt="fail now", surface=surface),
        timeout=10,
    )
    remote = next(iter(env.simjobs.jobs))
    assert env.polls(remote) == 1 and env.simjobs.deliveries == [(remote, 200)]
    [final] = surface.finals
    assert final.status == "❌ failed"
    assert "The run failed: The model crashed: out of memory (simulated)." in final.text
    assert "no reason given" not in final.text


async def test_no_webhook_polling_finishes_it(env: Env) -> None:
    jobs = await env.jobs()
    surface = RecordingSurface()
    await jobs.run_prediction(
        key=KEY, user_id="u1", model="m", prompt="a fox nowebhook", surface=surface
    )
    assert len(surface.uploads) == 1
    assert env.simjobs.deliveries == []
    [(_, _, body)] = [r for r in env.simjobs.requests if r[0] == "POST"]
    assert body and body["webhook_url"].startswith(env.public_url)


async def _post(env: Env, job_id: str, body: bytes, headers: dict[str, str]) -> int:
    url = f"{env.public_url}/webhooks/eachlabs/{job_id}"
    async with env.session.post(url, data=body, headers=headers) as resp:
        return resp.status


def _signed(secret: str, body: bytes, *, at: float | None = None) -> dict[str, str]:
    """The HMAC form older docs describe (still accepted)."""
    ts = str(int(time.time() if at is None else at))
    return {"X-Webhook-Timestamp": ts, "X-Webhook-Signature": sign(secret, timestamp=ts, body=body)}


def _secret(secret: str, body: bytes, *, at: float | None = None) -> dict[str, str]:
    """The form Eachlabs sends today: the job's secret itself."""
    return {"X-Webhook-Secret": secret, "Content-Type": "application/json"}


AUTH = {"secret": _secret, "hmac": _signed}


async def test_forged_stale_and_replayed_webhooks_are_refused(env: Env) -> None:
    jobs = await env.jobs(job_poll_initial=30.0, job_poll_max=30.0)
    surface = RecordingSurface()
    task = asyncio.create_task(
        jobs.run_prediction(
            key=KEY, user_id="u1", model="m", prompt="slow nowebhook", surface=surface
        )
    )
    await until(lambda: env.store.running_jobs())
    record = await _only_job(env.store)
    secret = record.webhook_secret
    done = json.dumps(
        {"exec_id": record.remote_id, "status": "succeeded", "output": "https://x.example/a.png"}
    ).encode()
    assert await _post(env, record.id, done, _signed("not-the-secret", done)) == 401  # forged
    assert await _post(env, record.id, done, _signed(secret, done, at=time.time() - 301)) == 401
    assert await _post(env, record.id, done, {}) == 401  # unsigned
    assert await _post(env, "jnosuchjob", done, _signed(secret, done)) == 401
    assert await _post(env, record.id, done, _secret("not-the-secret", done)) == 401
    assert await _post(env, record.id, done, _secret(secret[:-1], done)) == 401
    assert await _post(env, record.id, done, {"X-Webhook-Secret": ""}) == 401
    assert await _post(env, "jnosuchjob", done, _secret(secret, done)) == 401
    tampered = done.replace(b"x.example", b"evil.example")
    headers = _signed(secret, done)
    assert await _post(env, record.id, tampered, headers) == 401
    await asyncio.sleep(0.05)
    assert not task.done() and surface.finals == []  # nothing above moved the job
    assert env.polls(record.remote_id) == 1
    # A valid "still running" delivery wakes the waiter (one more poll at once); an exact
    # replay of it is acknowledged but not acted on (no further poll).
    running = json.dumps({"exec_id": record.remote_id, "status": "processing"}).encode()
    valid = _signed(secret, running)
    assert await _post(env, record.id, running, valid) == 200
    await until(lambda: env.polls(record.remote_id) == 2)
    assert await _post(env, record.id, running, valid) == 200
    await asyncio.sleep(0.1)
    assert env.polls(record.remote_id) == 2
    # the same with the header form: a retry of an accepted delivery is acknowledged only
    queued = json.dumps({"exec_id": record.remote_id, "status": "queued"}).encode()
    assert await _post(env, record.id, queued, _secret(secret, queued)) == 200
    await until(lambda: env.polls(record.remote_id) == 3)
    assert await _post(env, record.id, queued, _secret(secret, queued)) == 200
    await asyncio.sleep(0.1)
    assert env.polls(record.remote_id) == 3
    task.cancel()


async def test_webhooks_for_unknown_jobs_log_no_caller_text_verbatim(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    await env.jobs()
    caplog.set_level(logging.DEBUG, logger="bot.webhooks")
    forged = "j1\nCRITICAL root: forged entry \x1b[31m" + "x" * 500
    probes = [forged, "../../etc", "jdeadbeef00000000", "y" * 300]
    body = b'{"status": "succeeded"}'
    for job_id in probes:
        url = URL(f"{env.public_url}/webhooks/eachlabs/{quote(job_id, safe='')}", encoded=True)
        async with env.session.post(url, data=body, headers=_secret("s", body)) as resp:
            assert resp.status == 401
    lines = [r.getMessage() for r in caplog.records if r.name == "bot.webhooks"]
    assert len(lines) == len(probes)
    for line in lines:
        assert "\n" not in line and "\x1b" not in line  # the repr shows them escaped
        assert "x" * 41 not in line and "y" * 41 not in line  # shortened
    assert "malformed job id 'j1\\nCRITICAL" in lines[0]
    assert "'jdeadbeef00000000'" in lines[2]


@pytest.mark.parametrize("auth", sorted(AUTH))
async def test_three_identical_deliveries_post_once(env: Env, auth: str) -> None:
    authorize = AUTH[auth]
    jobs = await env.jobs(job_poll_initial=30.0, job_poll_max=30.0)
    surface = RecordingSurface()
    task = asyncio.create_task(
        jobs.run_prediction(
            key=KEY, user_id="u1", model="m", prompt="slow nowebhook", surface=surface
        )
    )
    await until(lambda: env.store.running_jobs())
    record = await _only_job(env.store)
    url = env.sim.media_url("hook-1.png")
    body = json.dumps({"exec_id": record.remote_id, "status": "succeeded", "output": [url]})
    statuses = await asyncio.gather(
        *(
            _post(
                env,
                record.id,
                body.encode(),
                authorize(record.webhook_secret, body.encode(), at=time.time() - n),
            )
            for n in range(3)
        )
    )
    assert statuses == [200, 200, 200]
    await asyncio.wait_for(task, timeout=5)
    assert [data for _, data, _ in surface.uploads] == [await _bytes(env.session, url)]
    assert len(surface.finals) == 1
    # a late fourth delivery for the finished job is acknowledged and does nothing
    late = authorize(record.webhook_secret, body.encode())
    assert await _post(env, record.id, body.encode(), late) == 200
    other = json.dumps({"exec_id": record.remote_id, "status": "failed", "output": None})
    late = authorize(record.webhook_secret, other.encode())
    assert await _post(env, record.id, other.encode(), late) == 200  # finished: acknowledged
    assert await _post(env, record.id, other.encode(), _secret("forged", b"")) == 401
    await asyncio.sleep(0.05)
    assert len(surface.uploads) == 1 and len(surface.finals) == 1
    done = await env.store.get_job(record.id)
    assert done is not None and done.status is JobStatus.SUCCEEDED


# --- restart, cancel, models -----------------------------------------------------------------


async def test_restart_mid_job_still_posts_once(env: Env, tmp_path: Path) -> None:
    first = await env.jobs(webhooks=False)
    before = RecordingSurface()
    task = asyncio.create_task(
        first.run_prediction(key=KEY, user_id="u1", model="m", prompt="slow", surface=before)
    )
    await until(lambda: env.store.running_jobs())
    record = await _only_job(env.store)
    await until(lambda: env.polls(record.remote_id) >= 1)
    await first.aclose()  # the process goes away mid-job
    await asyncio.gather(task, return_exceptions=True)
    await env.reopen_store(tmp_path / "bot.db")

    second = await env.jobs(webhooks=False)
    after = RecordingSurface()
    asked: list[ThreadKey] = []

    async def surface_for(key: ThreadKey) -> RecordingSurface:
        asked.append(key)
        return after

    await second.resume(surface_for)
    await second.resume(surface_for)  # a second call does not start a second waiter
    await asyncio.wait_for(second.wait_idle(), timeout=10)
    assert asked == [KEY]
    assert before.uploads == [] and len(after.uploads) == 1
    [(message_id, final, _)] = [e for e in after.edits if e[2]]
    assert message_id == record.message_id and final.status.startswith("✅")
    done = await env.store.get_job(record.id)
    assert done is not None and done.status is JobStatus.SUCCEEDED
    assert done.output == (env.sim.media_url(f"{record.remote_id}.png"),)


async def test_cancel(env: Env) -> None:
    jobs = await env.jobs(webhooks=False)
    surface = RecordingSurface()
    task = asyncio.create_task(
        jobs.run_prediction(key=KEY, user_id="u1", model="m", prompt="slow", surface=surface)
    )
    await until(lambda: any(view.buttons for _, view, _ in surface.edits))
    button = next(view.buttons[0] for _, view, _ in surface.edits if view.buttons)
    assert (button.label, button.style) == ("Cancel", "danger")
    assert "Only the person" in await jobs.cancel(button.value, user_id="someone-else")
    assert await jobs.cancel(button.value, user_id="u1") == "Cancelling that run."
    await asyncio.wait_for(task, timeout=5)
    assert surface.finals[0].status.startswith("🛑 cancelled")
    assert surface.uploads == []
    record = await env.store.get_job(button.value)
    assert record is not None and record.status is JobStatus.CANCELLED
    assert next(iter(env.simjobs.jobs.values())).cancelled
    assert await jobs.cancel(button.value, user_id="u1") == "That run has already finished."
    assert "can't find" in await jobs.cancel("jnope", user_id="u1")


async def test_admin_may_cancel_but_not_workflows(env: Env) -> None:
    jobs = await env.jobs(webhooks=False)
    await env.store.save_job(
        JobRecord("jwf", JobKind.WORKFLOW, "exec-9", KEY, "u1", "", JobStatus.RUNNING, 0.0)
    )
    assert "can't be cancelled" in await jobs.cancel("jwf", user_id="admin")


async def test_models_are_filtered_and_cached(env: Env) -> None:
    jobs = await env.jobs(webhooks=False)
    assert await jobs.models("FLUX") == [
        ("flux-pro/v1.1", "FLUX 1.1 [pro]"),
        ("flux-dev", "FLUX.1 [dev]"),
        ("flux-schnell", "FLUX.1 [schnell]"),
    ]
    assert ("veo3", "Veo 3") in await jobs.models("")
    assert len(await jobs.models("")) <= 25
    listed = [p for m, p, _ in env.simjobs.requests if p.startswith("/eachlabs/v1/models")]
    assert len(listed) == 1  # three lookups, one request


async def test_a_run_whose_record_cannot_be_saved_says_so(env: Env, tmp_path: Path) -> None:
    """Without a record nothing can finish the job: the person is told at once, plainly."""
    from bot.jobs import STORAGE_PROBLEM

    jobs = await env.jobs(webhooks=False)
    await env.store.close()  # the database went away between the post and the save
    surface = RecordingSurface()
    try:
        await jobs.run_prediction(
            key=KEY, user_id="U1", model="flux-schnell", prompt="a fox", surface=surface
        )
        [final] = surface.finals
        assert STORAGE_PROBLEM in final.text and final.status == "❌ failed"
    finally:
        env.store = await SqliteStore.open(str(tmp_path / "bot.db"))


async def test_a_run_ended_by_webhook_is_recorded_once_with_a_last_look_for_its_cost(
    env: Env,
) -> None:
    """The webhook body carries no cost (each::api's documented payload): the one winner of
    `finish_job` polls once more for `metrics.cost`; three deliveries record one run."""
    from bot.operator_records import UsageKind
    from bot.usage import UsageLog

    env.simjobs.repeat_deliveries = True
    jobs = await env.jobs(job_poll_initial=30.0, job_poll_max=30.0)
    jobs.usage = UsageLog(env.store)
    await asyncio.wait_for(
        jobs.run_prediction(
            key=KEY, user_id="u1", model="m", prompt="a fox", surface=RecordingSurface()
        ),
        timeout=10,
    )
    remote = next(iter(env.simjobs.jobs))
    await until(lambda: len(env.simjobs.deliveries) == 3)
    assert env.polls(remote) == 2  # the first look, then one for the cost after the webhook
    (total,) = await env.store.usage_totals("slack", "T1", since=0.0, user_id="u1")
    assert (total.kind, total.detail, total.count, total.priced) == (
        UsageKind.RUN,
        "prediction",
        1,
        1,
    )
    assert round(total.cost, 2) == 0.03
