"""A direct run's progress message follows the renderer's rules: identical views are not
sent again, live edits keep the surface's interval, the final edit always goes out."""

from __future__ import annotations

from bot.eachlabs import JobState
from bot.errors import JobFailed
from bot.job_render import JobRenderer, final_view, progress_view
from bot.models import JobKind, JobRecord, JobStatus, SurfaceLimits, ThreadKey
from tests.util import RecordingSurface

KEY = ThreadKey("shell", "local", "console", "1")
RECORD = JobRecord("j1", JobKind.PREDICTION, "p1", KEY, "U1", "", JobStatus.RUNNING, 0.0, "m")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_progress_is_paced_and_never_repeated_and_the_final_always_lands() -> None:
    surface = RecordingSurface(
        limits=SurfaceLimits(min_edit_interval=1.0, max_text=2000, max_upload_bytes=0)
    )
    message_id = await surface.post(progress_view(RECORD, JobState(JobStatus.RUNNING), elapsed=0))
    clock = Clock()
    renderer = JobRenderer(surface, message_id, clock=clock)
    running = JobState(JobStatus.RUNNING, raw={"status": "processing"})
    await renderer.progress(progress_view(RECORD, running, elapsed=5))
    await renderer.progress(progress_view(RECORD, running, elapsed=6))  # within the interval
    clock.now += 2
    await renderer.progress(progress_view(RECORD, running, elapsed=6))
    await renderer.progress(progress_view(RECORD, running, elapsed=6))  # identical: skipped
    done = final_view(RECORD, JobState(JobStatus.SUCCEEDED), elapsed=7, failure=JobFailed())
    await renderer.final(done)  # right after a live edit: the final never waits
    edits = [view for kind, view in surface.calls if kind == "edit"]
    assert [v.status for v in edits] == [
        "⏳ processing · 5s",
        "⏳ processing · 6s",
        "✅ done in 7s",
    ]
    assert surface.finals == [message_id]
    assert [b.label for b in edits[0].buttons] == ["Cancel"] and not edits[-1].buttons
