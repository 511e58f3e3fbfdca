"""What a direct run's progress message shows, and when it is edited.

The counterpart of `bot.render.ReplyRenderer` for predictions and workflows: a run has no
stream of events, only polls and webhooks, so it needs no flusher task; but it follows the
same rules: an identical view is never sent again, live edits respect the surface's
`min_edit_interval`, the final edit always goes out (and is marked final, so budgets serve it
first), and time reads the same way as a turn's (`bot.delivery.clock_text`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from bot.delivery import clock_text
from bot.eachlabs import JobState
from bot.errors import BotError
from bot.i18n import N_, _
from bot.models import Button, ButtonAction, JobKind, JobRecord, JobStatus, View
from bot.ports import Surface

log = logging.getLogger(__name__)

STARTING = N_("⏳ starting…")
FAILED = N_("❌ failed")


def job_label(kind: JobKind, title: str) -> str:
    what = _("Model run") if kind is JobKind.PREDICTION else _("Workflow")
    return f"**{what}** `{title[:100].replace('`', 'ˋ')}`"


def job_buttons(record: JobRecord) -> tuple[Button, ...]:
    """Cancel, for predictions (workflows cannot be cancelled from chat)."""
    if record.kind is not JobKind.PREDICTION:
        return ()
    return (Button(_("Cancel"), ButtonAction.CANCEL_JOB, record.id, "danger"),)


def refused_view(kind: JobKind, title: str, sentence: str) -> View:
    return View(text=f"{job_label(kind, title)}\n⚠️ {sentence}", status=_(FAILED))


def progress_view(record: JobRecord, state: JobState, *, elapsed: float) -> View:
    remote = state.raw.get("status") or _("running")
    status = f"⏳ {remote} · {clock_text(elapsed)}"
    if state.step is not None:
        status += " · " + (
            _("step {step} of {steps}").format(step=state.step, steps=state.steps)
            if state.steps
            else _("step {step}").format(step=state.step)
        )
    return View(
        text=job_label(record.kind, record.title), status=status, buttons=job_buttons(record)
    )


def final_view(record: JobRecord, state: JobState, *, elapsed: float, failure: BotError) -> View:
    label, took = job_label(record.kind, record.title), clock_text(elapsed)
    if state.status is JobStatus.SUCCEEDED:
        return View(text=label, status=_("✅ done in {duration}").format(duration=took))
    if state.status is JobStatus.CANCELLED:
        return View(text=label, status=_("🛑 cancelled after {duration}").format(duration=took))
    return View(text=f"{label}\n⚠️ {failure.user_message}", status=_(FAILED))


class JobRenderer:
    """One run's progress message in its thread."""

    def __init__(
        self,
        surface: Surface,
        message_id: str | None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.surface = surface
        self.message_id = message_id
        self._clock = clock
        self._last: View | None = None
        self._last_at = float("-inf")

    async def progress(self, view: View) -> None:
        """A live edit, unless nothing changed or the last one was too recent."""
        now = self._clock()
        interval = self.surface.limits.min_edit_interval
        if view == self._last or now - self._last_at < interval:
            return
        self._last, self._last_at = view, now
        await self._edit(view, final=False)

    async def final(self, view: View) -> None:
        """The last edit, always sent; a run with no progress message gets a new one."""
        self._last = view
        if self.message_id:
            await self._edit(view, final=True)
            return
        try:
            await self.surface.post(View(text=f"{view.text}\n{view.status}"))
        except Exception:
            log.exception("could not post a run's result")

    async def _edit(self, view: View, *, final: bool) -> None:
        if self.message_id is None:
            return
        try:
            await self.surface.edit(self.message_id, view, final=final)
        except Exception:
            log.exception("could not edit a run's progress message")
