"""A per-channel sliding-window limiter, so the bot never earns a 429 from Discord.

Discord allows about 5 message edits per 5 s per channel (a thread is a channel). discord.py
waits out 429s by itself, but a bot that relies on that spends its budget sleeping and its
answers freeze mid-sentence. We take a slot here before every message we send or edit in a
channel, so the requests we make stay inside the window; the renderer's coalescing decides
what is worth a slot. A turn's final edit is served before waiting live edits.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

DISCORD_RATE = 5
DISCORD_PER = 5.0
# Our clock starts a slot when we send, Discord's when the request arrives: a little slack
# keeps jitter on the wire from squeezing six requests into Discord's window.
SAFETY = 0.35
PRUNE_AT = 1024  # channels remembered before idle ones are swept


@dataclass
class _Channel:
    stamps: deque[float] = field(default_factory=deque)
    waiting: list[tuple[int, int]] = field(default_factory=list)  # (priority, ticket) heap
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class ChannelLimiter:
    """At most `rate` slots per `per` seconds in each channel; urgent waiters go first."""

    def __init__(
        self,
        *,
        rate: int = DISCORD_RATE,
        per: float = DISCORD_PER + SAFETY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.per = per
        self._clock = clock
        self._channels: dict[str, _Channel] = {}
        self._tickets = itertools.count()

    async def acquire(self, channel: str, *, urgent: bool = False) -> None:
        """Wait for a slot in `channel`; `urgent` (a final edit) jumps the queue."""
        if len(self._channels) > PRUNE_AT:
            self._prune()
        state = self._channels.setdefault(channel, _Channel())
        entry = (0 if urgent else 1, next(self._tickets))
        heapq.heappush(state.waiting, entry)
        try:
            while True:
                now = self._clock()
                while state.stamps and now - state.stamps[0] >= self.per:
                    state.stamps.popleft()
                if state.waiting[0] == entry and len(state.stamps) < self.rate:
                    heapq.heappop(state.waiting)
                    state.stamps.append(now)
                    self._wake(state)
                    return
                delay = None
                if len(state.stamps) >= self.rate:
                    delay = max(0.0, state.stamps[0] + self.per - now)
                state.changed.clear()
                try:
                    await asyncio.wait_for(state.changed.wait(), delay)
                except TimeoutError:
                    pass
        except BaseException:
            if entry in state.waiting:
                state.waiting.remove(entry)
                heapq.heapify(state.waiting)
                self._wake(state)
            raise
        finally:
            self._forget_idle(channel, state)

    def _wake(self, state: _Channel) -> None:
        state.changed.set()

    def _prune(self) -> None:
        now = self._clock()
        for name, state in list(self._channels.items()):
            if not state.waiting and (not state.stamps or now - state.stamps[-1] >= self.per):
                del self._channels[name]

    def _forget_idle(self, channel: str, state: _Channel) -> None:
        """Drop a channel's state once its window is empty, so idle threads cost nothing."""
        if state.waiting:
            return
        now = self._clock()
        while state.stamps and now - state.stamps[0] >= self.per:
            state.stamps.popleft()
        if not state.stamps:
            self._channels.pop(channel, None)
