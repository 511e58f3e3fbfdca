"""slack_sdk's errors as the bot's: the one place that reads them.

Everything the Slack adapter calls runs inside `slack_errors()`, so the core only ever sees
`bot.errors.PlatformError` (with Slack's error name as `code`), never an SDK exception.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.errors import PlatformError, PlatformRefused

# Slack's answers that mean "not allowed here", not "try again"
REFUSALS = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "restricted_action",
        "missing_scope",
        "not_allowed_token_type",
        "no_permission",
    }
)


def platform_error(exc: BaseException) -> PlatformError:
    """The bot's error for one slack_sdk or aiohttp failure."""
    if isinstance(exc, SlackApiError):
        code = str(exc.response.get("error") or "unknown_error")
        status = getattr(exc.response, "status_code", None)
        kind = PlatformRefused if code in REFUSALS else PlatformError
        return kind(detail=f"Slack answered {code}", code=code, status=status)
    return PlatformError(detail=f"Slack call failed: {type(exc).__name__}", code="network")


@contextlib.contextmanager
def slack_errors() -> Iterator[None]:
    try:
        yield
    except (SlackApiError, SlackClientError, aiohttp.ClientError, TimeoutError) as exc:
        raise platform_error(exc) from exc
