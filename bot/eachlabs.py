"""Clients for Eachlabs' two job APIs: each::api predictions (run one model) and
each::workflows (run a saved pipeline).

Both are slow jobs: created, then polled (or reported by webhook) until done. Eachlabs' public
docs disagree with themselves about field names, paths and status spellings, so every parser
here accepts each documented form (see the comments) and ignores what it does not know.

Errors follow the same tree as the each::sense client (`bot.errors`): 401 `AuthError`,
402 `PaymentRequired`, 429 `RateLimited` (here: too many runs in flight, a concurrency cap),
5xx `ServerError`, no connection `ConnectError`, other 4xx `RequestRejected`. The API key is
sent in headers only and never appears in a log line or an error.

Every id that goes into a path is checked (`bot.arguments.is_id`: letters, digits, `-`, `_`)
and quoted as one segment, whoever chose it: a person typing a workflow id, or Eachlabs
answering with a run id. A typed id that fails is an `InputError`; a remote one a
`ServerError`. Either way nothing is sent, so no id can steer the key to another endpoint.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

import aiohttp

from bot.arguments import check_id, check_model, is_id
from bot.errors import (
    AuthError,
    ConnectError,
    PaymentRequired,
    RateLimited,
    RequestRejected,
    ServerError,
    UpstreamError,
    balance_message,
    sentence,
)
from bot.i18n import N_, _
from bot.models import JobStatus

log = logging.getLogger(__name__)

WorkflowsApi = Literal["current", "legacy"]

# Every status spelling the docs use (and a few obvious relatives). Anything unknown counts
# as still running: the poller's total time limit ends a job that never reaches a known end.
_STATUS: dict[str, JobStatus] = {
    **dict.fromkeys(
        ("created", "starting", "processing", "queued", "running", "pending", "in_progress"),
        JobStatus.RUNNING,
    ),
    **dict.fromkeys(("success", "completed", "succeeded", "done"), JobStatus.SUCCEEDED),
    **dict.fromkeys(("error", "failed", "failure"), JobStatus.FAILED),
    **dict.fromkeys(("cancelled", "canceled"), JobStatus.CANCELLED),
}

_MAX_ERROR_CHARS = 500
# A 404's sentence, by the first word of what was asked for ("model run": a model).
_NOT_FOUND = {
    "model": N_("Eachlabs could not find that model. Check the name and try again."),
    "run": N_("Eachlabs could not find that run. Check the name and try again."),
    "workflow": N_("Eachlabs could not find that workflow. Check the name and try again."),
    "": N_("Eachlabs could not find that. Check the name and try again."),
}


@dataclass(frozen=True, slots=True)
class JobState:
    """One look at a prediction or workflow execution, normalised.

    `output` holds every http(s) URL found in the wire `output`; `text` holds a plain-text
    output (a language model's answer) when the output is a string that is not a URL.
    `step`/`steps` are a workflow's progress when the service reports it.
    """

    status: JobStatus
    output: tuple[str, ...] = ()
    error: str | None = None
    step: int | None = None
    steps: int | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)
    text: str = ""

    @property
    def done(self) -> bool:
        return self.status is not JobStatus.RUNNING


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """One entry of each::api's model list (used for slash-command autocomplete)."""

    slug: str
    title: str
    output_type: str = ""
    request_schema: Mapping[str, Any] = field(default_factory=dict)


# --- tolerant parsing -------------------------------------------------------------------


def normalize_status(value: object) -> JobStatus:
    """Map any documented status spelling to a `JobStatus` (unknown → RUNNING)."""
    text = str(value or "").strip().lower()
    status = _STATUS.get(text)
    if status is None:
        log.debug("unknown job status %r; treating it as running", value)
        return JobStatus.RUNNING
    return status


def _walk_urls(value: object) -> Iterator[str]:
    if isinstance(value, str):
        if value.startswith(("http://", "https://")):
            yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _walk_urls(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _walk_urls(item)


def output_urls(output: object) -> tuple[str, ...]:
    """Every http(s) URL in `output`, in order, without duplicates.

    `output` is documented as a string, a list or an object (and a workflow's may nest
    step results), so walk whatever arrives.
    """
    return tuple(dict.fromkeys(_walk_urls(output)))


def _as_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _steps(body: Mapping[str, Any]) -> tuple[int | None, int | None]:
    """Workflow progress, when reported: (`current_step` | `step`, `total_steps` | `steps`).
    A list of `step_outputs` counts as the number of steps done so far."""
    step = _as_int(body.get("current_step", body.get("step")))
    steps = _as_int(body.get("total_steps", body.get("steps")))
    done = body.get("step_outputs")
    if step is None and isinstance(done, list | Mapping) and done:
        step = len(done)
    return step, steps


def _reason(value: object) -> str | None:
    """A failure reason from one documented shape: a string, or an object such as the
    webhook's `{error_code, error_message}` (the message is for people; the code stands in
    when there is no message)."""
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, Mapping):
        for key in ("error_message", "message", "detail", "error"):
            found = _reason(value.get(key))
            if found:
                return found
        code = value.get("error_code") or value.get("code")
        return str(code) if code else None
    return None


def _output_reason(output: object) -> str | None:
    """The webhook's failure shape: `output` is a list whose `[0].error` is an object or,
    for legacy failures, a string (also tolerated: `output` being that object itself)."""
    first = output[0] if isinstance(output, list) and output else output
    return _reason(first.get("error")) if isinstance(first, Mapping) else None


def _logs_reason(logs: object) -> str | None:
    """The last non-empty line of a run's `logs` (where a crash usually says what broke)."""
    if isinstance(logs, list):
        logs = "\n".join(str(line) for line in logs if line is not None)
    if not isinstance(logs, str):
        return None
    lines = [line.strip() for line in logs.splitlines() if line.strip()]
    return lines[-1] if lines else None


def _error_text(body: Mapping[str, Any]) -> str | None:
    """Why a run failed, from wherever the docs put it: the top-level `error` (a string or an
    object), `output[0].error` (webhooks; their top-level `error` is always ""), a workflow's
    `error_cause`, the last line of `logs`, and last a `message`."""
    error = (
        _reason(body.get("error"))
        or _output_reason(body.get("output"))
        or _reason(body.get("error_cause"))
        or _logs_reason(body.get("logs"))
        or _reason(body.get("message"))
    )
    return error[:_MAX_ERROR_CHARS] if error else None


def parse_job_state(body: object) -> JobState:
    """Read a prediction, an execution or a webhook payload into a `JobState`."""
    if not isinstance(body, Mapping):
        raise ServerError(
            _("Eachlabs sent an answer I could not read. Please try again shortly."),
            detail=f"job body is not an object: {type(body).__name__}",
        )
    status = normalize_status(body.get("status"))
    output = body.get("output")
    text = output if isinstance(output, str) and not output_urls(output) else ""
    # `message` on a running or successful job is chatter ("Prediction created"), not an error.
    error = _error_text(body) if status in (JobStatus.FAILED, JobStatus.CANCELLED) else None
    if status is JobStatus.FAILED and error is None:
        error = _("no reason given")
    step, steps = _steps(body)
    return JobState(
        status=status,
        output=output_urls(output),
        error=error,
        step=step,
        steps=steps,
        raw=dict(body),
        text=text.strip(),
    )


def remote_id(body: object, *keys: str) -> str:
    """The job id from a create/trigger answer, trying each documented key in turn.
    An id that could not be used safely as a path segment is refused."""
    if isinstance(body, Mapping):
        for key in keys:
            value = body.get(key)
            if isinstance(value, str | int) and str(value):
                return _remote_checked(str(value))
    raise ServerError(
        _("Eachlabs accepted the run but did not say which one it was. Please try again."),
        detail=f"no id among {keys} in {str(body)[:200]}",
    )


def _remote_checked(value: str) -> str:
    if not is_id(value):
        raise ServerError(
            _("Eachlabs answered with a run id I cannot use. Please try again."),
            detail=f"malformed remote id {value[:100]!r}",
        )
    return value


def _segment(value: str) -> str:
    """One path segment: `/`, `?`, `#`, `%` and the rest percent-encoded."""
    return quote(value, safe="")


def _remote_segment(value: str) -> str:
    """A run id (prediction or execution) from Eachlabs or from storage, as a path segment."""
    return _segment(_remote_checked(value))


def _typed_segment(value: str, *, what: str) -> str:
    """An id a person typed (workflow, version), as a path segment; `InputError` if bad."""
    return _segment(check_id(value, what=what))


def parse_model(body: Mapping[str, Any]) -> ModelInfo | None:
    slug = body.get("slug") or body.get("name")
    if not isinstance(slug, str) or not slug:
        return None
    schema = body.get("request_schema")
    return ModelInfo(
        slug=slug,
        title=str(body.get("title") or slug),
        output_type=str(body.get("output_type") or ""),
        request_schema=schema if isinstance(schema, Mapping) else {},
    )


# --- HTTP -------------------------------------------------------------------------------


def _detail(body: object, text: str) -> str:
    if isinstance(body, Mapping):
        for key in ("details", "detail", "message", "error"):
            value = body.get(key)
            if value:
                return str(value)[:_MAX_ERROR_CHARS]
    return text[:_MAX_ERROR_CHARS]


def _retry_after(resp: aiohttp.ClientResponse, body: object) -> float | None:
    raw = resp.headers.get("Retry-After")
    if raw is None and isinstance(body, Mapping):
        raw = body.get("retry_after")
    try:
        return float(raw) if raw is not None else None
    except (TypeError, ValueError):
        return None


def error_for(
    status: int, body: object, text: str, *, what: str, retry_after: float | None = None
) -> UpstreamError:
    """The error (and its sentence for a person) for an HTTP failure from each::api."""
    detail = f"{what}: HTTP {status}: {_detail(body, text)}"
    # each::api's 402 and 429 put the sentence for people in `details`:
    # {"status": 429, "error": "too many requests", "details": "...10 concurrent..."}
    details = body.get("details") if isinstance(body, Mapping) else None
    if status in (401, 403):
        return AuthError(detail=detail, status=status)
    if status == 402:
        return PaymentRequired(balance_message(details), detail=detail, status=status)
    if status == 429:
        said = sentence(details)
        return RateLimited(
            _("Too many runs are in flight on this Eachlabs account: {reason}").format(reason=said)
            if said
            else _(
                "Too many runs are in flight on this Eachlabs account. "
                "Wait for one to finish, then try again."
            ),
            detail=detail,
            retry_after=retry_after,
        )
    if status >= 500:
        return ServerError(
            _("Eachlabs is having trouble right now. Please try again shortly."),
            detail=detail,
            status=status,
        )
    if status == 404:
        return RequestRejected(
            _(_NOT_FOUND.get(what.split()[0], _NOT_FOUND[""])),
            detail=detail,
            status=status,
        )
    return RequestRejected(
        _("Eachlabs rejected that request: {reason}").format(reason=_detail(body, text)),
        detail=detail,
        status=status,
    )


class _Http:
    """The little shared by both clients: headers, one request, the error mapping."""

    def __init__(
        self, session: aiohttp.ClientSession, *, api_key: str | None, base_url: str, timeout: float
    ) -> None:
        self._session = session
        self._api_key = api_key
        self.base_url = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self._api_key:
            # X-API-Key is what each::api documents; Bearer is what each::sense documents.
            # Sending both is harmless and survives either becoming the only one accepted.
            headers["X-API-Key"] = self._api_key
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    async def request(
        self,
        method: str,
        path: str,
        *,
        what: str,
        json_body: object = None,
        params: Mapping[str, str] | None = None,
    ) -> object:
        url = f"{self.base_url}{path}"
        try:
            async with self._session.request(
                method,
                url,
                json=json_body,
                params=params,
                headers=self._headers(),
                timeout=self._timeout,
            ) as resp:
                text = await resp.text()
                body = _loads(text)
                if resp.status >= 400:
                    raise error_for(
                        resp.status,
                        body,
                        text,
                        what=what,
                        retry_after=_retry_after(resp, body),
                    )
                return body
        except (TimeoutError, aiohttp.ClientConnectionError) as exc:
            raise ConnectError(
                _("I could not reach Eachlabs. Please try again shortly."),
                detail=f"{what}: {method} {url}: {type(exc).__name__}: {exc}",
            ) from exc


def _loads(text: str) -> object:
    try:
        return json.loads(text) if text.strip() else None
    except ValueError:
        return None


# --- the clients ------------------------------------------------------------------------


class PredictionsClient:
    """each::api: run one model directly (`POST /prediction`, then `GET /prediction/{id}`)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        api_key: str | None,
        base_url: str,
        timeout: float = 30.0,
    ) -> None:
        self._http = _Http(session, api_key=api_key, base_url=base_url, timeout=timeout)

    async def create(
        self,
        model: str,
        input: Mapping[str, Any],
        *,
        version: str = "0.0.1",
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
    ) -> str:
        """Start a prediction and return its id."""
        check_model(model)  # it goes in the body, but a malformed slug is refused before
        body: dict[str, Any] = {"model": model, "version": version, "input": dict(input)}
        if webhook_url:
            body["webhook_url"] = webhook_url
            if webhook_secret:
                body["webhook_secret"] = webhook_secret
        try:
            answer = await self._http.request(
                "POST", "/prediction", what="model run", json_body=body
            )
        except RequestRejected as err:
            # Eachlabs' docs note that some clients need the trailing slash: retry once.
            if err.status not in (404, 405):
                raise
            answer = await self._http.request(
                "POST", "/prediction/", what="model run", json_body=body
            )
        # The API answers `predictionID`; the seed's example reads `id`: accept both.
        return remote_id(answer, "predictionID", "prediction_id", "id")

    async def get(self, prediction_id: str) -> JobState:
        path = f"/prediction/{_remote_segment(prediction_id)}"
        body = await self._http.request("GET", path, what="run")
        return parse_job_state(body)

    async def cancel(self, prediction_id: str) -> None:
        """Ask each::api to stop a prediction (best effort: it may finish anyway)."""
        path = f"/prediction/{_remote_segment(prediction_id)}/cancel"
        await self._http.request("POST", path, what="run")

    async def list_models(
        self, name: str = "", *, limit: int = 50, offset: int = 0
    ) -> list[ModelInfo]:
        params = {"limit": str(limit), "offset": str(offset)}
        if name:
            params["name"] = name
        body = await self._http.request("GET", "/models", what="model list", params=params)
        if isinstance(body, Mapping):  # tolerate a wrapped list: {"models": [...]}
            body = body.get("models") or body.get("data") or body.get("items") or []
        if not isinstance(body, list):
            return []
        return [m for item in body if isinstance(item, Mapping) and (m := parse_model(item))]

    async def get_model(self, slug: str) -> ModelInfo | None:
        try:
            body = await self._http.request("GET", "/model", what="model", params={"slug": slug})
        except RequestRejected as err:
            if err.status == 404:
                return None
            raise
        return parse_model(body) if isinstance(body, Mapping) else None


class WorkflowsClient:
    """each::workflows: trigger a saved pipeline and read its execution.

    `api="current"` speaks `api.eachlabs.ai/v1/workflows/...`; `api="legacy"` speaks the
    seed's `workflows.eachlabs.run/api/v1` paths. Both are documented and both are in use.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        api_key: str | None,
        base_url: str,
        api: WorkflowsApi = "current",
        timeout: float = 30.0,
    ) -> None:
        self._http = _Http(session, api_key=api_key, base_url=base_url, timeout=timeout)
        self.api: WorkflowsApi = api

    async def trigger(
        self,
        workflow_id: str,
        inputs: Mapping[str, Any],
        *,
        version_id: str | None = None,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
    ) -> str:
        """Start a workflow and return its execution id."""
        workflow = _typed_segment(workflow_id, what=_("workflow id"))
        version = _typed_segment(version_id, what=_("version id")) if version_id else "latest"
        body: dict[str, Any] = {"inputs": dict(inputs)}
        if webhook_url:
            body["webhook_url"] = webhook_url
            if webhook_secret:
                body["webhook_secret"] = webhook_secret
        if self.api == "legacy":
            # The seed's example sends `input`; the legacy reference says `inputs`. Send both.
            body["input"] = dict(inputs)
            if version_id:
                body["version_id"] = version_id
            path = f"/{workflow}/trigger"
        else:
            # Assumption: the current API names the version in the path and "latest" picks
            # the newest one; the docs show only concrete version ids.
            path = f"/workflows/trigger/{workflow}/{version}"
        answer = await self._http.request("POST", path, what="workflow", json_body=body)
        return remote_id(answer, "execution_id", "executionID", "id")

    async def get(self, execution_id: str) -> JobState:
        execution = _remote_segment(execution_id)
        path = (
            f"/executions/{execution}"
            if self.api == "legacy"
            else f"/workflows/executions/{execution}"
        )
        body = await self._http.request("GET", path, what="workflow run")
        return parse_job_state(body)
