"""discord.py's errors as the bot's: the one place that reads them.

Calls the Discord adapter makes run inside `discord_errors()`, so the core only ever sees
`bot.errors.PlatformError` (Discord's JSON error code as `code`), never an SDK exception.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import aiohttp
import discord

from bot.errors import PlatformError, PlatformRefused

MISSING_ACCESS, MISSING_PERMISSIONS = 50001, 50013


def platform_error(exc: BaseException) -> PlatformError:
    """The bot's error for one discord.py or aiohttp failure."""
    if isinstance(exc, discord.HTTPException):
        refused = isinstance(exc, discord.Forbidden) or exc.code in (
            MISSING_ACCESS,
            MISSING_PERMISSIONS,
        )
        kind = PlatformRefused if refused else PlatformError
        return kind(
            detail=f"Discord answered {exc.status} (code {exc.code})",
            code=exc.code,
            status=exc.status,
        )
    return PlatformError(detail=f"Discord call failed: {type(exc).__name__}", code="network")


@contextlib.contextmanager
def discord_errors() -> Iterator[None]:
    try:
        yield
    except (discord.HTTPException, aiohttp.ClientError, TimeoutError) as exc:
        raise platform_error(exc) from exc
