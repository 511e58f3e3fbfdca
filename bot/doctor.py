"""`eachsense-bot doctor`: what is configured, what is reachable, and how to fix the rest.

It prints whether each secret is set (never its value) and makes one cheap request to each
configured service, so a new user sees in one screen why the bot would not work.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import aiohttp

from bot.config import Settings
from bot.ports import AdapterSpec, Store

OK, WARN, BAD = "ok  ", "warn", "FAIL"


def line(level: str, text: str) -> None:
    print(f"[{level}] {text}")


async def _reach(session: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> str | None:
    """None when the service answered (any HTTP status below 500), else why not."""
    try:
        async with session.get(url, headers=headers) as resp:
            if resp.status == 401:
                return "the key was rejected (401)"
            if resp.status >= 500:
                return f"it answered HTTP {resp.status}"
            return None
    except (TimeoutError, aiohttp.ClientError) as err:
        return f"unreachable ({type(err).__name__})"


async def doctor(
    settings: Settings,
    adapters: Sequence[AdapterSpec],
    *,
    open_store: Callable[[str], Awaitable[Store]],
) -> int:
    """Every check, the adapters' and the database's included; 0 when nothing is wrong."""
    problems = await _database(settings, open_store)
    timeout = aiohttp.ClientTimeout(total=8)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        if settings.has_eachsense_key:
            key = settings.eachsense_api_key.get_secret_value()  # type: ignore[union-attr]
            headers = {"Authorization": f"Bearer {key}", "X-API-Key": key}
            why = await _reach(session, settings.eachsense_base_url + "/models", headers)
            if why:
                problems += 1
                line(BAD, f"each::sense at {settings.eachsense_base_url}: {why}")
            else:
                line(OK, f"each::sense reachable at {settings.eachsense_base_url}")
        else:
            line(WARN, "EACHSENSE_API_KEY is not set: the bot will use the offline simulator.")
        for adapter in adapters:
            problems += await adapter.doctor(settings, session)
    if settings.public_url:
        line(
            OK, f"webhooks at {settings.public_url}/webhooks/eachlabs/… (port {settings.http_port})"
        )
    else:
        line(WARN, "PUBLIC_URL is not set: direct runs are followed by polling only.")
    line(OK if problems == 0 else BAD, f"{problems} problem(s) found")
    return 0 if problems == 0 else 1


async def _database(settings: Settings, open_store: Callable[[str], Awaitable[Store]]) -> int:
    """The store opens (migrations applied) and answers; the URL is shown without a password."""
    shown = (
        settings.database_url.split("@")[-1]
        if "@" in settings.database_url
        else (settings.database_url)
    )
    try:
        store = await open_store(settings.database_url)
        try:
            await store.running_jobs()
        finally:
            await store.close()
    except Exception as err:
        line(BAD, f"database {shown}: {type(err).__name__}: {str(err)[:200]}")
        return 1
    line(OK, f"database {shown} opens and answers")
    return 0
