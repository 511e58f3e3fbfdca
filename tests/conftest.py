"""Fixtures shared by the end-to-end tests: the simulator as each::sense, and a core
built exactly as production builds it (`bot.app.build_core`) pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.app import Core, build_core, close_core, simulated
from bot.config import Settings
from simulator import Simulator


def make_settings(**overrides: object) -> Settings:
    """Settings that ignore the developer's `.env` and environment."""
    base: dict[str, object] = {
        "database_url": "sqlite://:memory:",
        "media_allow_insecure": True,
        "eachsense_max_retry_wait": 0.05,
        "eachsense_idle_timeout": 5.0,
        "job_poll_initial": 0.05,
        "job_poll_max": 0.2,
    }
    base.update(overrides)
    return Settings(_env_file=None, **base)  # type: ignore[call-arg]


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    """slack_sdk sends even 127.0.0.1 through HTTP(S)_PROXY (it ignores NO_PROXY), so a
    developer's proxy settings must not reach the local fakes."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _english_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The shell speaks the language of LC_ALL / LC_MESSAGES / LANG, and BOT_LANGUAGE is read
    from the environment: a developer's own language must not reach tests written in English
    (the language tests set what they need)."""
    for name in ("LC_ALL", "LC_MESSAGES", "BOT_LANGUAGE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LANG", "C.UTF-8")


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(speed=1000) as simulator:
        yield simulator


@pytest.fixture
async def core(sim: Simulator) -> AsyncIterator[Core]:
    built = await build_core(simulated(make_settings(), sim))
    try:
        yield built
    finally:
        await close_core(built)
