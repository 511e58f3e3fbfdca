"""The use case for direct model runs and workflows: `/sense-predict` and `/sense-workflow`.

A run is created on Eachlabs, recorded in storage (so a restart resumes waiting instead of
losing it), shown as one progress message in the thread, and waited for in two ways at once:
polling with backoff (the safety net) and, when `PUBLIC_URL` is set, a signed webhook that
finishes it at once. Whichever sees the end first wins `store.finish_job`, the one gate that
makes the result appear exactly once (three webhook deliveries, a poller, another replica).

Nothing here raises a `BotError` at the adapters from `run_*`: every failure becomes a
sentence in the thread. `parse_*_args` do raise `InputError` so an adapter can answer the
person privately before opening a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.arguments import PREDICT_USAGE, WORKFLOW_USAGE
from bot.arguments import parse_predict_args as parse_predict_args
from bot.arguments import parse_workflow_args as parse_workflow_args
from bot.config import Settings
from bot.delivery import deliver, may_act, say
from bot.eachlabs import JobState, PredictionsClient, WorkflowsClient, parse_job_state
from bot.errors import BotError, JobFailed, UpstreamError
from bot.i18n import N_, _, ngettext
from bot.job_render import (
    STARTING,
    JobRenderer,
    final_view,
    job_label,
    progress_view,
    refused_view,
)
from bot.media import MediaFetcher
from bot.metrics import Metrics
from bot.models import (
    JobKind,
    JobRecord,
    JobStatus,
    ThreadKey,
    View,
)
from bot.ports import Store, Surface
from bot.usage import UsageLog

log = logging.getLogger(__name__)

STORAGE_PROBLEM = N_("The run started, but I could not record it, so I can't follow it. Sorry!")
MODELS_TTL = 600.0
MAX_CHOICES = 25  # Discord's autocomplete limit
_BACKOFF = 1.5
_MODEL_PAGE = 100
_MODEL_PAGES = 10


@dataclass
class _Waiter:
    """One job this process is waiting for: its thread and the webhook's news, if any."""

    record: JobRecord
    surface: Surface
    news: asyncio.Event = field(default_factory=asyncio.Event)
    state: JobState | None = None
    task: asyncio.Task[None] | None = None
    renderer: JobRenderer = field(init=False)

    def __post_init__(self) -> None:
        self.renderer = JobRenderer(self.surface, self.record.message_id)


class Jobs:
    def __init__(
        self,
        *,
        store: Store,
        predictions: PredictionsClient,
        workflows: WorkflowsClient,
        media: MediaFetcher,
        settings: Settings,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
        usage: UsageLog | None = None,
    ) -> None:
        self.store = store
        self.usage = usage  # records every finished run and its cost (`bot.usage`)
        self.metrics = metrics or Metrics()
        self.predictions = predictions
        self.workflows = workflows
        self.media = media
        self.settings = settings
        self.clock = clock
        self._waiters: dict[str, _Waiter] = {}
        self._surface_for: Callable[[ThreadKey], Awaitable[Surface | None]] | None = None
        self.owner: str | None = None  # this replica's id, recorded with every job
        self._models: list[tuple[str, str]] = []
        self._models_at = float("-inf")
        self._models_lock = asyncio.Lock()

    # --- starting runs ------------------------------------------------------------------

    async def run_prediction(
        self, *, key: ThreadKey, user_id: str, model: str, prompt: str, surface: Surface
    ) -> None:
        """Run `model` on `prompt` and post its outputs in the thread; returns when done."""
        model, prompt = model.strip(), prompt.strip()
        if not model or not prompt:
            await say(surface, f"⚠️ {_(PREDICT_USAGE)}")
            return
        if len(prompt) > self.settings.max_prompt_chars:
            await say(
                surface,
                _("⚠️ That prompt is too long ({length} characters; the limit is {limit}).").format(
                    length=f"{len(prompt):,}", limit=f"{self.settings.max_prompt_chars:,}"
                ),
            )
            return

        async def create(webhook_url: str | None, secret: str | None) -> str:
            return await self.predictions.create(
                model, {"prompt": prompt}, webhook_url=webhook_url, webhook_secret=secret
            )

        await self._start(
            JobKind.PREDICTION,
            key=key,
            user_id=user_id,
            title=model,
            create=create,
            surface=surface,
        )

    async def run_workflow(
        self,
        *,
        key: ThreadKey,
        user_id: str,
        workflow_id: str,
        inputs: dict[str, str],
        surface: Surface,
    ) -> None:
        """Trigger a saved workflow and post its outputs in the thread; returns when done."""
        workflow_id = workflow_id.strip()
        if not workflow_id:
            await say(surface, f"⚠️ {_(WORKFLOW_USAGE)}")
            return

        async def create(webhook_url: str | None, secret: str | None) -> str:
            return await self.workflows.trigger(
                workflow_id, inputs, webhook_url=webhook_url, webhook_secret=secret
            )

        await self._start(
            JobKind.WORKFLOW,
            key=key,
            user_id=user_id,
            title=workflow_id,
            create=create,
            surface=surface,
        )

    async def _start(
        self,
        kind: JobKind,
        *,
        key: ThreadKey,
        user_id: str,
        title: str,
        create: Callable[[str | None, str | None], Awaitable[str]],
        surface: Surface,
    ) -> None:
        job_id = f"j{secrets.token_hex(8)}"
        secret, webhook_url = "", None
        if self.settings.public_url:
            secret = secrets.token_hex(32)
            webhook_url = f"{self.settings.public_url.rstrip('/')}/webhooks/eachlabs/{job_id}"
        try:
            message_id = await surface.post(View(text=job_label(kind, title), status=_(STARTING)))
        except Exception:
            log.exception("could not post the progress message for job %s", job_id)
            return
        try:
            remote = await create(webhook_url, secret or None)
        except BotError as err:
            log.warning("job %s (%s %r) was not created: %s", job_id, kind, title, err.detail)
            view = refused_view(kind, title, err.user_message)
            await JobRenderer(surface, message_id).final(view)
            return
        record = JobRecord(
            id=job_id,
            kind=kind,
            remote_id=remote,
            key=key,
            user_id=user_id,
            webhook_secret=secret,
            status=JobStatus.RUNNING,
            created_at=self.clock(),
            title=title,
            message_id=message_id,
            owner=self.owner,
        )
        try:
            await self.store.save_job(record)
        except Exception:
            # Without a record nothing can win `finish_job`, so the result could never show.
            log.exception("could not save job %s (remote %r)", job_id, remote)
            await JobRenderer(surface, message_id).final(refused_view(kind, title, STORAGE_PROBLEM))
            return
        log.info("job %s started: %s %s (remote %s)", job_id, kind, title, remote)
        await self._follow(record, surface)

    # --- waiting ------------------------------------------------------------------------

    async def _follow(self, record: JobRecord, surface: Surface) -> None:
        """Wait for a job in a task of its own so `cancel`/`aclose` can stop just the wait."""
        waiter = _Waiter(record=record, surface=surface)
        waiter.task = asyncio.create_task(self._wait(waiter), name=f"job-{record.id}")
        self._waiters[record.id] = waiter
        # Shielded: the command's task ending early must not stop the wait (only
        # `aclose` does), or a result would be lost until the next restart.
        await asyncio.shield(waiter.task)

    async def _wait(self, waiter: _Waiter) -> None:
        record = waiter.record
        delay = self.settings.job_poll_initial
        deadline = record.created_at + self.settings.job_timeout
        try:
            while True:
                waiter.news.clear()  # before polling, so news arriving meanwhile is not lost
                state = await self._look(waiter)
                if state is not None and state.done:
                    await self._finish(waiter, state)
                    return
                if self.clock() >= deadline:
                    await self._finish(waiter, self._timed_out())
                    return
                if state is not None:
                    await self._show_progress(waiter, state)
                timeout = min(delay, max(0.0, deadline - self.clock()))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(waiter.news.wait(), timeout)
                delay = min(delay * _BACKOFF, self.settings.job_poll_max)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("waiting for job %s failed", record.id)
        finally:
            self._waiters.pop(record.id, None)

    async def _look(self, waiter: _Waiter) -> JobState | None:
        """The webhook's news if any, else a poll. A webhook that reports success without
        outputs (its shape is less documented than the poll's) is checked against a poll."""
        news = waiter.state
        if news is None:
            return await self._poll(waiter.record)
        if news.status is JobStatus.SUCCEEDED and not (news.output or news.text):
            polled = await self._poll(waiter.record)
            if polled is not None and polled.done:
                return polled
        return news

    async def _poll(self, record: JobRecord) -> JobState | None:
        """One look at the remote job; a transient failure is logged and waited out."""
        client = self.predictions if record.kind is JobKind.PREDICTION else self.workflows
        try:
            return await client.get(record.remote_id)
        except UpstreamError as err:
            log.warning("polling job %s failed (will retry): %s", record.id, err.detail)
            return None

    def _timed_out(self) -> JobState:
        minutes = max(1, round(self.settings.job_timeout / 60))
        return JobState(
            status=JobStatus.FAILED,
            error=ngettext(
                "it did not finish within {minutes} minute, so I stopped waiting",
                "it did not finish within {minutes} minutes, so I stopped waiting",
                minutes,
            ).format(minutes=minutes),
        )

    async def _show_progress(self, waiter: _Waiter, state: JobState) -> None:
        elapsed = self.clock() - waiter.record.created_at
        await waiter.renderer.progress(progress_view(waiter.record, state, elapsed=elapsed))

    async def _finish(self, waiter: _Waiter, state: JobState) -> None:
        """Post the result, once: only the caller that wins `finish_job` shows anything."""
        record = waiter.record
        error = state.error if state.status is not JobStatus.SUCCEEDED else None
        won = await self.store.finish_job(
            record.id, status=state.status, output=state.output, error=error, at=self.clock()
        )
        if not won:
            log.debug("job %s was already finished elsewhere", record.id)
            return
        log.info("job %s finished: %s (%d outputs)", record.id, state.status, len(state.output))
        self.metrics.jobs.labels(record.kind.value, state.status.value).inc()
        failure = JobFailed(
            _("The run failed: {reason}").format(reason=error), detail=f"job {record.id}: {error}"
        )
        elapsed = self.clock() - record.created_at
        await waiter.renderer.final(final_view(record, state, elapsed=elapsed, failure=failure))
        if state.status is JobStatus.SUCCEEDED:
            await self._post_outputs(state, waiter.surface)
        if self.usage is not None:  # after the result: finding the cost may take a poll
            await self.usage.run_finished(record, state, look=lambda: self._poll(record))

    async def _post_outputs(self, state: JobState, surface: Surface) -> None:
        if state.text:
            await say(surface, state.text[: surface.limits.max_text])
        if not state.output and not state.text:
            await say(surface, _("The run finished but returned no files."))
        for url in state.output:
            await deliver(self.media, url, surface)

    # --- webhooks, buttons, restarts ----------------------------------------------------

    async def webhook_secret(self, job_id: str) -> str | None:
        """The secret a webhook for `job_id` must be signed with (None: unknown job)."""
        record = await self.store.get_job(job_id)
        if record is None or not record.webhook_secret:
            return None
        return record.webhook_secret

    async def on_webhook(self, job_id: str, payload: Mapping[str, Any]) -> None:
        """A verified webhook arrived: hand its news to the waiter, which posts the result.

        With no waiter here (another replica owns the job, or it is finished) there is
        nothing to do: the owner's poller sees the same end.
        """
        try:
            # The webhook body (`{exec_id, status, output, error}`) reads like a poll answer.
            state = parse_job_state(payload)
        except BotError as err:
            log.warning("unreadable webhook for job %s: %s", job_id, err.detail)
            return
        waiter = self._waiters.get(job_id)
        if waiter is None:
            await self._finish_here(job_id, state)
            return
        if state.done:
            waiter.state = state
        waiter.news.set()

    async def _finish_here(self, job_id: str, state: JobState) -> None:
        """A webhook on a replica that does not follow the job (behind a load balancer any
        replica gets it): finish it here; `finish_job` still lets only one post it."""
        record = await self.store.get_job(job_id)
        if not state.done or record is None or record.status is not JobStatus.RUNNING:
            return
        surface = await self._surface(record)
        if surface is not None:
            await self._finish(_Waiter(record=record, surface=surface), state)

    async def cancel(self, job_id: str, *, user_id: str, admin: bool = False) -> str:
        """The Cancel button: stop a running prediction; returns the sentence to show."""
        record = await self.store.get_job(job_id)
        if record is None:
            return _("I can't find that run any more.")
        if record.status is not JobStatus.RUNNING:
            return _("That run has already finished.")
        if not may_act(user_id, record.user_id, admin=admin, settings=self.settings):
            return _("Only the person who started this run can cancel it.")
        if record.kind is not JobKind.PREDICTION:
            return _("Workflow runs can't be cancelled from chat; it will finish on its own.")
        try:
            await self.predictions.cancel(record.remote_id)
        except BotError as err:
            log.warning("cancelling job %s failed: %s", job_id, err.detail)
            return _("I could not cancel that run: {reason}").format(reason=err.user_message)
        state = JobState(status=JobStatus.CANCELLED, error=_("cancelled from chat"))
        waiter = self._waiters.get(job_id)
        if waiter is not None:
            waiter.state = state
            waiter.news.set()
        # else its waiter lives on another replica: its next poll sees the run cancelled and
        # posts that once, in the run's own progress message
        return _("Cancelling that run.")

    async def resume(
        self,
        surface_for: Callable[[ThreadKey], Awaitable[Surface | None]],
        records: list[JobRecord] | None = None,
    ) -> None:
        """Keep waiting (by polling) for jobs this replica now owns: at start-up every
        running job (`records` None), later those taken over from a dead replica."""
        self._surface_for = surface_for
        for record in records if records is not None else await self.store.running_jobs():
            if record.id in self._waiters:
                continue
            surface = await self._surface(record)
            if surface is None:
                continue
            log.info("following job %s (%s %s)", record.id, record.kind, record.title)
            waiter = _Waiter(record=record, surface=surface)
            waiter.task = asyncio.create_task(self._wait(waiter), name=f"job-{record.id}")
            self._waiters[record.id] = waiter

    async def _surface(self, record: JobRecord) -> Surface | None:
        if self._surface_for is None:
            return None
        try:
            surface = await self._surface_for(record.key)
        except Exception:
            log.exception("job %s: no surface for its thread", record.id)
            return None
        if surface is None:
            log.info("job %s: no surface for %s here", record.id, record.key.platform)
        return surface

    async def wait_idle(self) -> None:
        """Wait until every job this process follows has finished (tests, shutdown drains)."""
        while tasks := [w.task for w in self._waiters.values() if w.task is not None]:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def aclose(self) -> None:
        """Stop waiting (process shutdown); the jobs stay `running` in storage for `resume`."""
        tasks = [w.task for w in self._waiters.values() if w.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._waiters.clear()

    # --- autocomplete -------------------------------------------------------------------

    async def models(self, query: str) -> list[tuple[str, str]]:
        """(slug, title) pairs matching `query`, from a list cached for ten minutes."""
        async with self._models_lock:
            if time.monotonic() - self._models_at > MODELS_TTL:
                try:
                    self._models = await self._fetch_models()
                    self._models_at = time.monotonic()
                except BotError as err:
                    log.warning("could not list models: %s", err.detail)
                    # Try again in a minute, not on every keystroke of the autocomplete.
                    self._models_at = time.monotonic() - MODELS_TTL + 60
        needle = query.strip().lower()
        found = [m for m in self._models if needle in m[0].lower() or needle in m[1].lower()]
        return found[:MAX_CHOICES]

    async def _fetch_models(self) -> list[tuple[str, str]]:
        models: list[tuple[str, str]] = []
        for page in range(_MODEL_PAGES):
            batch = await self.predictions.list_models(limit=_MODEL_PAGE, offset=page * _MODEL_PAGE)
            models += [(m.slug, m.title) for m in batch]
            if len(batch) < _MODEL_PAGE:
                break
        return models
