"""each::api predictions and each::workflows endpoints for the offline simulator.

`simulator.Simulator` calls `add_routes` while it builds its application. Paths:
- each::api under `/eachlabs/v1` (so `EACHLABS_API_URL = <sim>/eachlabs/v1`): `POST /prediction`
  (and `/prediction/`), `GET /prediction/{id}`, `POST /prediction/{id}/cancel`, `GET /models`,
  `GET /model?slug=`, and the current workflows API under `/eachlabs/v1/workflows/...`;
- legacy workflows under `/workflows/api/v1` (`EACHLABS_WORKFLOWS_URL`).

A run is "running" for a couple of polls (or a while in simulated time, scaled by the
simulator's `speed`) and then ends; when it was created with `webhook_url` + `webhook_secret`
the result is POSTed there the way Eachlabs documents it: body `{exec_id, flow_id,
status: "succeeded"|"failed", output, error: ""}` (a failure's reason in `output[0].error`,
an object `{error_code, error_message}`), the job's `webhook_secret` verbatim in
`X-Webhook-Secret`, up to three attempts about 10 s apart (simulated time) until one is
answered 2xx, and no delivery for a cancelled run. `SimJobs.repeat_deliveries` makes all
three attempts go out even after a 2xx (an acknowledgement lost on the way). Words in the prompt
(or in a workflow's input values) script what happens:
`fail` (the run fails), `fail:401|402|429|500` (creating it is refused), `nowebhook` (no
delivery: polling must finish it), `slow` (several more polls), `video` (an .mp4 output),
`shape:list|object` (the output's wire shape). A workflow id starting `missing` is a 404.

The records are bounded like the chat side's: the newest `max_records` requests and
deliveries, and at most `max_records` jobs (the oldest finished ones are forgotten first).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from simulator import Recent

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Seconds of simulated time (divided by the simulator's speed).
_DURATION = {"prediction": 6.0, "workflow": 12.0, "video": 60.0, "slow": 120.0}
_DELIVERY_GAP = 10.0  # Eachlabs retries webhooks about 10 s apart
MAX_RECORDS = 1000
_POLLS = 2
_SLOW_POLLS = 6
_STEPS = 3
_FAIL_STATUSES = {"fail:401": 401, "fail:402": 402, "fail:429": 429, "fail:500": 500}
_FAILURE = {
    "error_code": "EXECUTION_ERROR",
    "error_message": "The model crashed: out of memory (simulated).",
}
_FAIL_DETAIL = {
    401: "Invalid API key.",
    402: "Your balance is $0.00; add credit to run this model (simulated).",
    429: (
        "Accounts with a balance of $10.00 or less can run 2 predictions at once; "
        "wait for one to finish (simulated)."
    ),
    500: "Internal server error.",
}
MODELS: tuple[tuple[str, str, str], ...] = (
    ("flux-pro/v1.1", "FLUX 1.1 [pro]", "image"),
    ("flux-dev", "FLUX.1 [dev]", "image"),
    ("flux-schnell", "FLUX.1 [schnell]", "image"),
    ("nano-banana", "Nano Banana", "image"),
    ("seedream-v4", "Seedream 4.0", "image"),
    ("ideogram-v3", "Ideogram 3.0", "image"),
    ("recraft-v3", "Recraft V3", "image"),
    ("kling-v2-1-master-text-to-video", "Kling 2.1 Master", "video"),
    ("veo3", "Veo 3", "video"),
    ("minimax-hailuo-02", "Hailuo 02", "video"),
    ("wan-2-2-text-to-video", "Wan 2.2", "video"),
    ("seedance-v1-pro", "Seedance 1.0 Pro", "video"),
)


@dataclass
class SimJob:
    id: str
    kind: str  # "prediction" | "workflow"
    words: frozenset[str]
    flow_id: str | None
    created: float
    duration: float
    polls_needed: int
    webhook_url: str | None = None
    webhook_secret: str | None = None
    polls: int = 0
    ended: bool = False
    cancelled: bool = False
    outputs: list[str] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class SimJobs:
    """Everything the simulated job APIs know; one per simulator app (tests read it)."""

    speed: float
    cancel_delay: float = 0.0  # seconds a cancel takes to answer (tests of slow cancels)
    repeat_deliveries: bool = False  # send all three webhook attempts even after a 2xx
    max_records: int = MAX_RECORDS
    jobs: dict[str, SimJob] = field(default_factory=dict)
    requests: Recent[tuple[str, str, dict[str, Any] | None]] = field(init=False)
    deliveries: Recent[tuple[str, int]] = field(init=False)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        self.requests = Recent(self.max_records)
        self.deliveries = Recent(self.max_records)

    def add(self, job: SimJob) -> None:
        """Keep `job`; past `max_records` jobs, forget the oldest finished ones."""
        self.jobs[job.id] = job
        excess = len(self.jobs) - self.max_records
        if excess > 0:
            ended = [key for key, known in self.jobs.items() if known.ended][:excess]
            for key in ended:
                del self.jobs[key]


JOBS_KEY = web.AppKey("jobs_sim", SimJobs)


def add_routes(app: web.Application, sim: Any) -> None:
    """Mount prediction/workflow routes on the simulator app. `sim` is the `Simulator`."""
    state = SimJobs(
        speed=float(getattr(sim, "speed", 1.0) or 1.0),
        max_records=int(getattr(sim, "max_requests", MAX_RECORDS)),
    )
    app[JOBS_KEY] = state
    h = _Handlers(state, sim)
    api, legacy = "/eachlabs/v1", "/workflows/api/v1"
    routes = [
        ("POST", f"{api}/prediction", h.create_prediction),
        ("POST", f"{api}/prediction/", h.create_prediction),
        ("GET", f"{api}/prediction/{{id}}", h.get_prediction),
        ("POST", f"{api}/prediction/{{id}}/cancel", h.cancel_prediction),
        ("GET", f"{api}/models", h.list_models),
        ("GET", f"{api}/model", h.get_model),
        ("POST", f"{api}/workflows/trigger/{{wf}}/{{version}}", h.trigger),
        ("GET", f"{api}/workflows/executions/{{id}}", h.get_execution),
        ("POST", f"{legacy}/{{wf}}/trigger", h.trigger),
        ("GET", f"{legacy}/executions/{{id}}", h.get_execution),
    ]
    for method, path, handler in routes:
        app.router.add_route(method, path, _keyed(handler, state, getattr(sim, "api_key", None)))

    async def _stop_deliveries(_app: web.Application) -> None:
        for task in list(state.tasks):
            task.cancel()
        await asyncio.gather(*state.tasks, return_exceptions=True)

    app.on_cleanup.append(_stop_deliveries)


def _keyed(handler: Handler, state: SimJobs, api_key: str | None) -> Handler:
    """Record every request; with a simulator key set, refuse (401) one without it."""

    async def checked(request: web.Request) -> web.StreamResponse:
        state.requests.append((request.method, request.path_qs, await _json(request)))
        if api_key:
            bearer = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            if api_key not in (request.headers.get("X-API-Key"), bearer):
                return _error(401, _FAIL_DETAIL[401])
        return await handler(request)

    return checked


def sim_jobs(app: web.Application) -> SimJobs:
    """The job state of a simulator app (for tests and the simulator's own use)."""
    return app[JOBS_KEY]


class _Handlers:
    def __init__(self, state: SimJobs, sim: Any) -> None:
        self.state = state
        self.sim = sim

    # --- predictions --------------------------------------------------------------------

    async def create_prediction(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        inputs = body.get("input")
        inputs = inputs if isinstance(inputs, dict) else {}
        if not body.get("model"):
            return _error(422, "model is required")
        words = _words(inputs.values())
        refused = self._refusal(words)
        if refused is not None:
            return refused
        job = self._new("prediction", words, body, prefix="pred", flow_id=None)
        ext = "mp4" if "video" in words else "png"
        job.outputs = [self.sim.media_url(f"{job.id}.{ext}")]
        return web.json_response(
            {"status": "success", "message": "Prediction created", "predictionID": job.id}
        )

    async def get_prediction(self, request: web.Request) -> web.Response:
        job = self._job(request, "prediction")
        if job is None:
            return _error(404, "Prediction not found")
        status = self._observe(job)
        wire = {"done": "success", "failed": "error", "cancelled": "cancelled"}.get(
            status, "starting" if job.polls <= 1 else "processing"
        )
        body: dict[str, Any] = {
            "id": job.id,
            "status": wire,
            "output": _shape(job) if status == "done" else "",
            "logs": None,
            "metrics": {"predict_time": round(time.monotonic() - job.created, 3), "cost": 0.03},
        }
        if status == "failed":
            body["error"] = "The model crashed: out of memory (simulated)."
        return web.json_response(body)

    async def cancel_prediction(self, request: web.Request) -> web.Response:
        job = self._job(request, "prediction")
        if job is None:
            return _error(404, "Prediction not found")
        if self.state.cancel_delay:
            await asyncio.sleep(self.state.cancel_delay)
        if not job.ended:
            job.cancelled = True
            self._end(job)
        return web.json_response({"status": "success", "message": "Prediction cancelled"})

    async def list_models(self, request: web.Request) -> web.Response:
        name = request.query.get("name", "").lower()
        limit = _int(request.query.get("limit"), 50)
        offset = _int(request.query.get("offset"), 0)
        found = [m for m in MODELS if name in m[0].lower() or name in m[1].lower()]
        return web.json_response([_model(m) for m in found[offset : offset + limit]])

    async def get_model(self, request: web.Request) -> web.Response:
        slug = request.query.get("slug", "")
        for model in MODELS:
            if model[0] == slug:
                return web.json_response(_model(model))
        return _error(404, "Model not found")

    # --- workflows ----------------------------------------------------------------------

    async def trigger(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if request.match_info["wf"].startswith("missing"):
            return _error(404, "Workflow not found")
        inputs = body.get("inputs") or body.get("input") or {}
        words = _words(inputs.values() if isinstance(inputs, dict) else [inputs])
        refused = self._refusal(words)
        if refused is not None:
            return refused
        job = self._new("workflow", words, body, prefix="exec", flow_id=request.match_info["wf"])
        names = [f"{job.id}-1.png", f"{job.id}-2.png"]
        if "video" in words:
            names.append(f"{job.id}-3.mp4")
        job.outputs = [self.sim.media_url(name) for name in names]
        return web.json_response({"execution_id": job.id, "status": "queued"}, status=202)

    async def get_execution(self, request: web.Request) -> web.Response:
        job = self._job(request, "workflow")
        if job is None:
            return _error(404, "Execution not found")
        status = self._observe(job)
        wire = {"done": "completed", "failed": "failed", "cancelled": "cancelled"}.get(
            status, "queued" if job.polls <= 1 else "running"
        )
        step = _STEPS if job.ended else min(_STEPS, max(1, job.polls - 1))
        body: dict[str, Any] = {
            "execution_id": job.id,
            "status": wire,
            "output": list(job.outputs) if status == "done" else None,
            "current_step": step,
            "total_steps": _STEPS,
            "step_outputs": [{"step": n} for n in range(1, step)],
            "error": None,
            "total_cost": 0.12,
        }
        if status == "failed":
            body["error"] = "Step 2 failed: the model crashed (simulated)."
            body["error_cause"] = "OOM"
        return web.json_response(body)

    # --- the life of a job --------------------------------------------------------------

    async def _body(self, request: web.Request) -> dict[str, Any]:
        return await _json(request) or {}

    def _refusal(self, words: frozenset[str]) -> web.Response | None:
        for word, status in _FAIL_STATUSES.items():
            if word in words:
                response = _error(status, _FAIL_DETAIL[status])
                if status == 429:
                    response.headers["Retry-After"] = "30"
                return response
        return None

    def _new(
        self,
        kind: str,
        words: frozenset[str],
        body: dict[str, Any],
        *,
        prefix: str,
        flow_id: str | None,
    ) -> SimJob:
        seconds = _DURATION[kind]
        if "video" in words:
            seconds = max(seconds, _DURATION["video"])
        if "slow" in words:
            seconds = _DURATION["slow"]
        job = SimJob(
            id=f"{prefix}-{next(self.state.counter)}",
            kind=kind,
            words=words,
            flow_id=flow_id,
            created=time.monotonic(),
            duration=seconds / self.state.speed,
            polls_needed=_SLOW_POLLS if "slow" in words else _POLLS,
        )
        url, secret = body.get("webhook_url"), body.get("webhook_secret")
        if isinstance(url, str) and url and "nowebhook" not in words:
            job.webhook_url, job.webhook_secret = url, str(secret or "")
        self.state.add(job)
        self._spawn(self._run(job))
        return job

    def _job(self, request: web.Request, kind: str) -> SimJob | None:
        job = self.state.jobs.get(request.match_info["id"])
        return job if job is not None and job.kind == kind else None

    def _observe(self, job: SimJob) -> str:
        """Count a poll and return "running" | "done" | "failed" | "cancelled"."""
        job.polls += 1
        if not job.ended and job.polls > job.polls_needed:
            self._end(job)
        return _outcome(job)

    def _end(self, job: SimJob) -> None:
        job.ended = True
        job.done.set()

    async def _run(self, job: SimJob) -> None:
        """End the job after its simulated duration, then deliver its webhook three times
        (Eachlabs sends none for a cancellation)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(job.done.wait(), job.duration)
        if not job.ended:
            self._end(job)
        if job.webhook_url and not job.cancelled:
            await self._deliver(job)

    async def _deliver(self, job: SimJob) -> None:
        assert job.webhook_url is not None
        failed = _outcome(job) == "failed"
        payload = {
            "exec_id": job.id,
            "flow_id": job.flow_id,
            "status": "failed" if failed else "succeeded",
            "output": [{"error": dict(_FAILURE)}] if failed else _shape(job),
            "error": "",  # always empty: a failure's reason is in output[0].error
        }
        raw = json.dumps(payload).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Webhook-Secret": job.webhook_secret or "",
        }
        async with aiohttp.ClientSession() as session:
            for attempt in range(3):
                if attempt:
                    await asyncio.sleep(_DELIVERY_GAP / self.state.speed)
                try:
                    async with session.post(job.webhook_url, data=raw, headers=headers) as resp:
                        self.state.deliveries.append((job.id, resp.status))
                        accepted = 200 <= resp.status < 300
                except aiohttp.ClientError as exc:
                    log.info("webhook delivery for %s failed: %s", job.id, exc)
                    self.state.deliveries.append((job.id, 0))
                    accepted = False
                if accepted and not self.state.repeat_deliveries:
                    return

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self.state.tasks.add(task)
        task.add_done_callback(self.state.tasks.discard)


async def _json(request: web.Request) -> dict[str, Any] | None:
    if request.method != "POST":
        return None
    try:
        body = await request.json()  # aiohttp caches the body: handlers can read it again
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _outcome(job: SimJob) -> str:
    if job.cancelled:
        return "cancelled"
    if not job.ended:
        return "running"
    return "failed" if "fail" in job.words else "done"


def _shape(job: SimJob) -> Any:
    """The output in the wire shape the prompt asked for (the docs show all three)."""
    if job.kind == "workflow" or "shape:list" in job.words:
        return list(job.outputs)
    if "shape:object" in job.words:
        return {"images": [{"url": url} for url in job.outputs]}
    return job.outputs[0]


def _words(values: Any) -> frozenset[str]:
    return frozenset(word.lower() for value in values for word in str(value).split())


def _model(model: tuple[str, str, str]) -> dict[str, Any]:
    slug, title, output_type = model
    return {
        "title": title,
        "slug": slug,
        "output_type": output_type,
        "request_schema": {"type": "object", "properties": {"prompt": {"type": "string"}}},
    }


def _int(raw: str | None, default: int) -> int:
    try:
        return max(0, int(raw)) if raw is not None else default
    except ValueError:
        return default


def _error(status: int, detail: str) -> web.Response:
    if status in (402, 429):
        # each::api's own shape for these two: the sentence for people is in `details`
        reason = {402: "payment required", 429: "too many requests"}[status]
        body = {"status": status, "error": reason, "details": detail}
        return web.json_response(body, status=status)
    return web.json_response({"detail": detail}, status=status)
