"""The each::api / each::workflows clients: tolerant parsing, the error tree, both workflow
APIs, and webhook signatures. HTTP tests run against real servers on 127.0.0.1 (the simulator
or a tiny aiohttp app scripted per test)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot.eachlabs import (
    JobState,
    PredictionsClient,
    WorkflowsClient,
    normalize_status,
    output_urls,
    parse_job_state,
    remote_id,
)
from bot.errors import (
    AuthError,
    ConnectError,
    PaymentRequired,
    RateLimited,
    RequestRejected,
    ServerError,
)
from bot.models import JobStatus
from bot.webhooks import secret_ok, sign, signature_ok
from simulator import Simulator
from simulator.jobs import sim_jobs

KEY = "sk-test-very-secret-key"

# --- tolerant parsing ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wire", "status"),
    [
        ("created", JobStatus.RUNNING),
        ("starting", JobStatus.RUNNING),
        ("processing", JobStatus.RUNNING),
        ("queued", JobStatus.RUNNING),
        ("running", JobStatus.RUNNING),
        ("success", JobStatus.SUCCEEDED),
        ("completed", JobStatus.SUCCEEDED),
        ("succeeded", JobStatus.SUCCEEDED),
        ("SUCCEEDED", JobStatus.SUCCEEDED),
        ("error", JobStatus.FAILED),
        ("failed", JobStatus.FAILED),
        ("cancelled", JobStatus.CANCELLED),
        ("canceled", JobStatus.CANCELLED),
        ("something-new", JobStatus.RUNNING),
        (None, JobStatus.RUNNING),
    ],
)
def test_every_status_spelling(wire: str | None, status: JobStatus) -> None:
    assert normalize_status(wire) is status


def test_output_shapes() -> None:
    a, b = "https://cdn.example/a.png", "http://other.example/b.mp4"
    assert output_urls(a) == (a,)
    assert output_urls([a, b, a]) == (a, b)
    assert output_urls({"images": [{"url": a}], "video": {"url": b}, "seed": 42}) == (a, b)
    assert output_urls("just some text") == ()
    assert output_urls(None) == ()
    assert output_urls("") == ()


def test_text_output_is_kept_as_text() -> None:
    state = parse_job_state({"status": "success", "output": "  A haiku about foxes.  "})
    assert state.output == ()
    assert state.text == "A haiku about foxes."
    assert parse_job_state({"status": "success", "output": "https://x.example/a.png"}).text == ""


def test_job_state_errors_and_steps() -> None:
    failed = parse_job_state({"status": "error", "error": "out of memory", "output": ""})
    assert failed == JobState(
        status=JobStatus.FAILED,
        error="out of memory",
        raw={"status": "error", "error": "out of memory", "output": ""},
    )
    assert parse_job_state({"status": "failed"}).error == "no reason given"
    assert parse_job_state({"status": "failed", "error": {"message": "boom"}}).error == "boom"
    # `message` on a successful create/poll is chatter, not an error
    assert parse_job_state({"status": "success", "message": "ok"}).error is None
    running = parse_job_state({"status": "running", "current_step": 2, "total_steps": 5})
    assert (running.step, running.steps, running.done) == (2, 5, False)
    counted = parse_job_state({"status": "running", "step_outputs": [{}, {}, {}]})
    assert (counted.step, counted.steps) == (3, None)
    with pytest.raises(ServerError):
        parse_job_state(["not", "an", "object"])


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        # the webhook payload: top-level `error` always "", the reason in output[0].error
        (
            {
                "exec_id": "p1",
                "flow_id": None,
                "status": "failed",
                "error": "",
                "output": [
                    {
                        "error": {
                            "error_code": "EXECUTION_TIMEOUT",
                            "error_message": "The run took longer than 10 minutes.",
                        }
                    }
                ],
            },
            "The run took longer than 10 minutes.",
        ),
        ({"status": "failed", "error": "", "output": [{"error": "legacy boom"}]}, "legacy boom"),
        (
            {"status": "failed", "output": [{"error": {"error_code": "INPUT_VALIDATION_ERROR"}}]},
            "INPUT_VALIDATION_ERROR",
        ),
        (
            {"status": "failed", "output": {"error": {"error_message": "as an object"}}},
            "as an object",
        ),
        # polled GETs: `error` as a string or an object, a workflow's `error_cause`, logs
        ({"status": "error", "error": {"error_code": "X", "error_message": "oom"}}, "oom"),
        ({"status": "error", "error": {"message": "boom"}}, "boom"),
        ({"status": "failed", "error": None, "error_cause": "Step 2: OOM"}, "Step 2: OOM"),
        (
            {"status": "failed", "error": "Step 2 failed", "error_cause": "OOM"},
            "Step 2 failed",
        ),
        (
            {"status": "error", "output": "", "logs": "loading\nRuntimeError: CUDA OOM\n\n"},
            "RuntimeError: CUDA OOM",
        ),
        (
            {"status": "error", "logs": ["step 1", "killed: out of memory", None]},
            "killed: out of memory",
        ),
        (
            {"status": "failed", "error": "  ", "output": [{"error": ""}], "logs": ""},
            "no reason given",
        ),
    ],
)
def test_failure_reasons_from_every_documented_shape(body: dict[str, Any], reason: str) -> None:
    state = parse_job_state(body)
    assert state.status is JobStatus.FAILED and state.error == reason


def test_failure_reason_is_capped() -> None:
    state = parse_job_state({"status": "failed", "output": [{"error": "x" * 5000}]})
    assert state.error == "x" * 500


def test_remote_id_accepts_both_spellings() -> None:
    assert remote_id({"predictionID": "p1", "id": "x"}, "predictionID", "id") == "p1"
    assert remote_id({"id": "p2"}, "predictionID", "id") == "p2"
    assert remote_id({"id": 7}, "predictionID", "id") == "7"
    with pytest.raises(ServerError):
        remote_id({"status": "success"}, "predictionID", "id")


# --- webhook signatures ----------------------------------------------------------------------


def test_secret_header_checks() -> None:
    assert secret_ok("s3cret-" * 9, "s3cret-" * 9)
    assert not secret_ok("s3cret", "s3cret ")
    assert not secret_ok("s3cret", "S3CRET")
    assert not secret_ok("s3cret", "")
    assert not secret_ok("", "")  # a job without a secret trusts nothing
    assert not secret_ok("s3cret", "s3cre")


def test_signature_checks() -> None:
    body, now = b'{"status":"succeeded"}', 1_700_000_000.0
    ts = str(int(now))
    good = sign("s3cret", timestamp=ts, body=body)
    assert good.startswith("sha256=")
    assert signature_ok("s3cret", timestamp=ts, signature=good, body=body, now=now)
    bare = good.removeprefix("sha256=")
    assert signature_ok("s3cret", timestamp=ts, signature=bare, body=body, now=now)
    assert signature_ok("s3cret", timestamp=ts, signature=good, body=body, now=now + 299)
    ms = str(int(now * 1000))
    assert signature_ok(
        "s3cret",
        timestamp=ms,
        signature=sign("s3cret", timestamp=ms, body=body),
        body=body,
        now=now,
    )
    assert not signature_ok("other", timestamp=ts, signature=good, body=body, now=now)
    assert not signature_ok("s3cret", timestamp=ts, signature=good, body=body + b" ", now=now)
    assert not signature_ok("s3cret", timestamp=ts, signature=good, body=body, now=now + 301)
    assert not signature_ok("s3cret", timestamp=ts, signature=good, body=body, now=now - 301)
    assert not signature_ok("s3cret", timestamp="soon", signature=good, body=body, now=now)
    assert not signature_ok("s3cret", timestamp=ts, signature="", body=body, now=now)


# --- HTTP against scripted servers -----------------------------------------------------------


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


Handler = Callable[[web.Request], Any]


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Any]]:
    """Start a tiny app with the given routes; returns its base URL."""
    runners: list[web.AppRunner] = []

    async def start(*routes: web.RouteDef) -> str:
        app = web.Application()
        app.add_routes(list(routes))
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        return f"http://127.0.0.1:{port}/v1"

    yield start
    for runner in runners:
        await runner.cleanup()


def _answer(status: int, body: dict[str, Any], **headers: str) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response(body, status=status, headers=headers)

    return handler


@pytest.mark.parametrize(
    ("status", "body", "error", "sentence"),
    [
        (401, {"detail": "Invalid API key."}, AuthError, "API key was rejected"),
        (402, {"detail": "Payment required"}, PaymentRequired, "out of credit"),
        (429, {"detail": "Too many"}, RateLimited, "Too many runs are in flight"),
        (500, {"detail": "boom"}, ServerError, "Eachlabs is having trouble"),
        (503, {}, ServerError, "Eachlabs is having trouble"),
        (422, {"detail": "input.prompt is required"}, RequestRejected, "input.prompt is required"),
        # each::api puts the sentence for people in `details`
        (
            402,
            {"status": 402, "error": "payment required", "details": "Balance  $1.00 is too low"},
            PaymentRequired,
            "Payment required by Eachlabs: Balance $1.00 is too low.",
        ),
        (
            402,
            {"status": 402, "error": "payment required", "details": {"current_balance": 1}},
            PaymentRequired,
            "The Eachlabs account is out of credit (balance $1.00).",
        ),
        (
            429,
            {
                "status": 429,
                "error": "too many requests",
                "details": "With a balance of $10.00 or less, 2 runs can be in flight at once.",
            },
            RateLimited,
            "Too many runs are in flight on this Eachlabs account: With a balance of $10.00 "
            "or less, 2 runs can be in flight at once.",
        ),
    ],
)
async def test_error_tree(
    serve: Any,
    session: aiohttp.ClientSession,
    status: int,
    body: dict[str, Any],
    error: type[Exception],
    sentence: str,
) -> None:
    base = await serve(web.post("/v1/prediction", _answer(status, body, **{"Retry-After": "7"})))
    client = PredictionsClient(session, api_key=KEY, base_url=base)
    with pytest.raises(error) as caught:
        await client.create("flux-pro/v1.1", {"prompt": "x"})
    err = caught.value
    assert sentence in err.user_message  # type: ignore[attr-defined]
    assert KEY not in err.user_message and KEY not in str(err)  # type: ignore[attr-defined]
    if status == 429:
        assert err.retry_after == 7.0  # type: ignore[attr-defined]


async def test_trailing_slash_retry_and_headers(serve: Any, session: aiohttp.ClientSession) -> None:
    seen: list[dict[str, str]] = []

    async def create(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        body = await request.json()
        assert body == {"model": "m", "version": "0.0.1", "input": {"prompt": "p"}}
        return web.json_response({"status": "success", "id": "only-id"})

    # Only the trailing-slash path exists: the first POST gets aiohttp's 404 (or 405).
    base = await serve(web.post("/v1/prediction/", create))
    client = PredictionsClient(session, api_key=KEY, base_url=base + "/")
    assert await client.create("m", {"prompt": "p"}) == "only-id"
    assert seen[0]["X-API-Key"] == KEY
    assert seen[0]["Authorization"] == f"Bearer {KEY}"


async def test_unreachable_is_connect_error(session: aiohttp.ClientSession) -> None:
    client = PredictionsClient(session, api_key=KEY, base_url="http://127.0.0.1:9/v1")
    with pytest.raises(ConnectError) as caught:
        await client.get("p1")
    assert "could not reach Eachlabs" in caught.value.user_message
    assert KEY not in str(caught.value)


# --- against the simulator -------------------------------------------------------------------


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(speed=1000, api_key=KEY) as s:
        yield s


async def test_prediction_lifecycle_on_simulator(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    client = PredictionsClient(session, api_key=KEY, base_url=sim.url + "/eachlabs/v1")
    pid = await client.create("flux-pro/v1.1", {"prompt": "a fox"})
    states = [await client.get(pid) for _ in range(3)]
    assert [s.status for s in states] == [JobStatus.RUNNING, JobStatus.RUNNING, JobStatus.SUCCEEDED]
    assert states[-1].output == (sim.media_url(f"{pid}.png"),)
    assert sim_jobs(sim.app).requests[0][2] == {
        "model": "flux-pro/v1.1",
        "version": "0.0.1",
        "input": {"prompt": "a fox"},
    }


async def test_simulator_checks_the_key(sim: Simulator, session: aiohttp.ClientSession) -> None:
    client = PredictionsClient(session, api_key="wrong", base_url=sim.url + "/eachlabs/v1")
    with pytest.raises(AuthError):
        await client.create("flux-pro/v1.1", {"prompt": "a fox"})


async def test_cancel_and_failure_on_simulator(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    client = PredictionsClient(session, api_key=KEY, base_url=sim.url + "/eachlabs/v1")
    pid = await client.create("flux-pro/v1.1", {"prompt": "slow"})
    await client.cancel(pid)
    assert (await client.get(pid)).status is JobStatus.CANCELLED
    bad = await client.create("flux-pro/v1.1", {"prompt": "fail please"})
    for _ in range(3):
        state = await client.get(bad)
    assert state.status is JobStatus.FAILED and "crashed" in (state.error or "")
    with pytest.raises(PaymentRequired):
        await client.create("flux-pro/v1.1", {"prompt": "fail:402"})


async def test_models_on_simulator(sim: Simulator, session: aiohttp.ClientSession) -> None:
    client = PredictionsClient(session, api_key=KEY, base_url=sim.url + "/eachlabs/v1")
    models = await client.list_models("flux", limit=2)
    assert [m.slug for m in models] == ["flux-pro/v1.1", "flux-dev"]
    assert (await client.list_models(limit=5, offset=11))[0].slug == "seedance-v1-pro"
    one = await client.get_model("veo3")
    assert one is not None and one.title == "Veo 3" and one.output_type == "video"
    assert await client.get_model("nope") is None


@pytest.mark.parametrize("api", ["current", "legacy"])
async def test_workflows_on_simulator(
    sim: Simulator, session: aiohttp.ClientSession, api: str
) -> None:
    base = sim.url + ("/eachlabs/v1" if api == "current" else "/workflows/api/v1")
    client = WorkflowsClient(session, api_key=KEY, base_url=base, api=api)  # type: ignore[arg-type]
    eid = await client.trigger("wf_abc", {"prompt": "a video of a fox"})
    first = await client.get(eid)
    assert first.status is JobStatus.RUNNING and first.steps == 3
    for _ in range(3):
        last = await client.get(eid)
    assert last.status is JobStatus.SUCCEEDED
    assert len(last.output) == 3 and last.output[2].endswith(".mp4")
    path = next(p for m, p, _ in sim_jobs(sim.app).requests if m == "POST")
    assert path.endswith(
        "/workflows/trigger/wf_abc/latest" if api == "current" else "/wf_abc/trigger"
    )
    with pytest.raises(RequestRejected) as caught:
        await client.trigger("missing_wf", {})
    assert "could not find that workflow" in caught.value.user_message


async def test_simulator_rate_limit(sim: Simulator, session: aiohttp.ClientSession) -> None:
    client = WorkflowsClient(session, api_key=KEY, base_url=sim.url + "/eachlabs/v1")
    started = time.monotonic()
    with pytest.raises(RateLimited) as caught:
        await client.trigger("wf", {"prompt": "fail:429"})
    assert caught.value.retry_after == 30.0
    assert time.monotonic() - started < 5  # no silent waiting inside the client
