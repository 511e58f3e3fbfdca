"""A process-wide budget for live edits.

Each turn already edits at most once per `min_edit_interval`, but with a thousand turns in
flight that is a thousand edits a second: more than any platform accepts (Discord allows 50
requests a second per bot, Slack about 50 `chat.update` a minute per workspace) and enough
to saturate the process, which then answers slash commands (3 s deadline) and final edits
late. So live edits share one token bucket; under load every live message simply updates
less often (the renderer always sends its newest state). Final edits never wait for it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class EditBudget:
    def __init__(
        self,
        rate: float,
        *,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`rate` live edits per second for the whole process, `burst` at once."""
        if rate <= 0:
            raise ValueError("rate must be positive")
        self._rate = rate
        self._capacity = burst if burst is not None else max(1.0, rate / 4)
        self._tokens = self._capacity
        self._clock = clock
        self._last = clock()
        self._lock = asyncio.Lock()  # FIFO: waiting renderers take turns fairly

    @property
    def rate(self) -> float:
        return self._rate

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self._capacity, self._tokens + (now - self._last) * self._rate)
        self._last = now

    async def acquire(self) -> None:
        """Wait for one live edit's worth of budget (cancellable while waiting)."""
        async with self._lock:
            self._refill()
            while self._tokens < 1:
                await asyncio.sleep((1 - self._tokens) / self._rate)
                self._refill()
            self._tokens -= 1
