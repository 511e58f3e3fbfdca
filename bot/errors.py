"""One error tree for the whole bot.

Every error carries two texts: `user_message`, the sentence a person sees in the thread
(never a token, never a traceback), and `detail`, what a log should keep. Adapters show
`user_message`; nothing else about an exception ever reaches a chat.

    BotError
    ├── InputError            bad prompt / unknown option (the person can fix it)
    ├── BusyError             a concurrency cap is full (try again shortly)
    ├── MediaRejected         a generated file cannot be fetched or is not allowed
    └── UpstreamError         anything from Eachlabs' services
        ├── AuthError             401: key missing or rejected
        ├── PaymentRequired       402 / INSUFFICIENT_BALANCE
        ├── RequestRejected       422 and other 4xx
        ├── RateLimited           429 after the bounded retries
        ├── ServerError           5xx after retries
        ├── ConnectError          could not reach the service
        ├── StreamCut             the stream ended before the turn did
        ├── IdleTimeout           no byte for `idle_timeout` seconds
        ├── AgentError            an `error` event (carries `code`)
        └── JobFailed             a prediction or workflow ended in failure
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from bot.i18n import N_, _, ngettext

SENTENCE_CHARS = 300


class BotError(Exception):
    """Root of every error the bot expects. `str(err)` is the log detail."""

    default_message = N_("Something went wrong. Please try again.")

    def __init__(self, user_message: str | None = None, *, detail: str = "") -> None:
        # translated here, at construction: in the language of the payload being handled
        self.user_message = user_message or _(self.default_message)
        self.detail = detail or user_message or self.default_message
        super().__init__(self.detail)


class InputError(BotError):
    default_message = N_("I could not understand that request.")


class BusyError(BotError):
    default_message = N_("I'm busy with other requests right now. Please try again in a moment.")


class MediaRejected(BotError):
    default_message = N_("That file could not be fetched.")


class UpstreamError(BotError):
    default_message = N_("each::sense had a problem. Please try again.")

    def __init__(
        self,
        user_message: str | None = None,
        *,
        detail: str = "",
        status: int | None = None,
    ) -> None:
        super().__init__(user_message, detail=detail)
        self.status = status


class AuthError(UpstreamError):
    default_message = N_(
        "The Eachlabs API key was rejected. An admin needs to set a valid EACHSENSE_API_KEY."
    )


class PaymentRequired(UpstreamError):
    default_message = N_("The Eachlabs account is out of credit. An admin needs to top it up.")


class RequestRejected(UpstreamError):
    default_message = N_("each::sense rejected that request.")


class RateLimited(UpstreamError):
    default_message = N_("each::sense is rate-limiting us. Please try again in a minute.")

    def __init__(
        self,
        user_message: str | None = None,
        *,
        detail: str = "",
        status: int | None = 429,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(user_message, detail=detail, status=status)
        self.retry_after = retry_after


class ServerError(UpstreamError):
    default_message = N_("each::sense is having trouble right now. Please try again shortly.")


class ConnectError(UpstreamError):
    default_message = N_("I could not reach each::sense. Please try again shortly.")


class StreamCut(UpstreamError):
    default_message = N_(
        "The connection to each::sense dropped before the answer finished. "
        "Send your message again to continue."
    )


class IdleTimeout(UpstreamError):
    default_message = N_("each::sense stopped responding. Send your message again to continue.")


class AgentError(UpstreamError):
    """An `error` event in the stream (or an error body); `code` is the wire `error_code`."""

    default_message = N_("each::sense reported an error.")

    def __init__(
        self,
        user_message: str | None = None,
        *,
        detail: str = "",
        code: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(user_message, detail=detail, status=status)
        self.code = code


class JobFailed(UpstreamError):
    default_message = N_("The run failed.")


class TurnTooLong(BotError):
    """A turn ran past `MAX_TURN_SECONDS` (a stream of keep-alives, a stuck generation)."""

    def __init__(self, limit: float) -> None:
        minutes = max(1, round(limit / 60))
        super().__init__(
            ngettext(
                "That answer took longer than {minutes} minute, so I stopped it. "
                "Send your message again to retry.",
                "That answer took longer than {minutes} minutes, so I stopped it. "
                "Send your message again to retry.",
                minutes,
            ).format(minutes=minutes),
            detail=f"turn over the {limit:.0f} s limit",
        )


class PlatformError(BotError):
    """A chat platform refused or failed a call. Each adapter maps its SDK's errors into
    this in one place (`adapters/<platform>/errors.py`), so the core catches `BotError`
    only. `code` is the platform's own error name or number, for logs."""

    default_message = N_("I could not post that here. Please try again.")

    def __init__(
        self,
        user_message: str | None = None,
        *,
        detail: str = "",
        code: str | int | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(user_message, detail=detail)
        self.code = code
        self.status = status


class PlatformRefused(PlatformError):
    """The platform will not let the bot do this here (a permission, an invitation)."""

    default_message = N_("I am not allowed to do that here.")


# --- sentences from what the services send ------------------------------------------------


def sentence(text: object, *, limit: int = SENTENCE_CHARS) -> str | None:
    """`text` as one tidy sentence for a person (whitespace collapsed, at most `limit`
    characters, ending in punctuation), or None when it is not a non-empty string."""
    if not isinstance(text, str):
        return None
    tidy = " ".join(text.split())
    if not tidy:
        return None
    if len(tidy) > limit:
        tidy = tidy[: limit - 1].rstrip() + "…"
    return tidy if tidy.endswith((".", "!", "?", "…")) else tidy + "."


def _money(value: object) -> str | None:
    """A balance as a person reads it: numbers are US dollars (what Eachlabs bills in)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        try:
            value = float(text.removeprefix("$"))
        except ValueError:
            return text[:24] or None
    if isinstance(value, int | float) and math.isfinite(value):
        return f"${value:,.2f}"
    return None


_TOP_UP_URL = re.compile(r"https?://[^\s<>|]{1,300}")


def balance_message(details: object) -> str | None:
    """The sentence for running out of credit, from each::sense's error `details`
    (`{current_balance, required_balance | required_estimate, top_up_url}`) or a sentence
    each::api put in `details`; None when `details` says nothing usable."""
    if isinstance(details, str):
        said = sentence(details)
        return _("Payment required by Eachlabs: {reason}").format(reason=said) if said else None
    if not isinstance(details, Mapping):
        return None
    current = _money(details.get("current_balance"))
    needed = _money(details.get("required_balance"))
    estimate = _money(details.get("required_estimate"))
    link = details.get("top_up_url")
    url = link.strip() if isinstance(link, str) and _TOP_UP_URL.fullmatch(link.strip()) else None
    if not (current or needed or estimate or url):
        return None
    parts = [_("balance {amount}").format(amount=current)] if current else []
    if needed:
        parts.append(_("this needs {amount}").format(amount=needed))
    elif estimate:
        parts.append(_("this needs about {amount}").format(amount=estimate))
    numbers = "; ".join(parts)
    if url and parts:
        return _(
            "The Eachlabs account is out of credit ({numbers}). An admin can top it up here: {url}"
        ).format(numbers=numbers, url=url)
    if url:
        return _(
            "The Eachlabs account is out of credit. An admin can top it up here: {url}"
        ).format(url=url)
    return _(
        "The Eachlabs account is out of credit ({numbers}). An admin needs to top it up."
    ).format(numbers=numbers)
