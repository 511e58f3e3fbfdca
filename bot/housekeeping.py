"""Background chores the composition root runs next to the bot.

Event claims only need to outlive a platform's redelivery window (minutes), but every claimed
id stays in the store until something removes it; on a busy bot that is a table growing
without bound. `purge_expired_events` is that something.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import NoReturn

from bot.ports import EventStore

log = logging.getLogger(__name__)


async def purge_expired_events(
    store: EventStore, *, interval: float, clock: Callable[[], float]
) -> NoReturn:
    """Purge expired event claims now and then every `interval` seconds, until cancelled.

    `clock` gives the time the claims were made with (the core's wall clock), so a claim is
    purged only once `claim_event` would let the same id be claimed again anyway. A store
    error is logged and the loop goes on: a missed purge costs a few rows, while a dead loop
    would let the table grow for the rest of the process's life.
    """
    while True:
        await purge_once(store, now=clock())
        await asyncio.sleep(interval)


async def purge_once(store: EventStore, *, now: float) -> int:
    """One purge; the number of claims removed, or 0 if the store failed (logged)."""
    try:
        purged = await store.purge_events(now=now)
    except Exception:
        log.exception("purging expired event claims failed; trying again later")
        return 0
    log.debug("purged %d expired event claims", purged)
    return purged
