"""`eachsense-bot`: the only composition root. Wires settings, storage, clients, adapters.

    eachsense-bot run [--platform discord|slack|shell|all]
    eachsense-bot shell [--simulate]
    eachsense-bot simulate [--host H] [--port P] [--shape openai|raw] [--speed X]
    eachsense-bot doctor
    eachsense-bot sync-commands [--guild ID]

With no each::sense key the bot runs against the built-in offline simulator and says so;
with no Slack or Discord tokens `run` starts the shell.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

from pydantic import ValidationError

from bot.config import Settings
from bot.http import HttpServer
from bot.logs import setup_logging
from bot.models import ThreadKey
from bot.ports import Surface

log = logging.getLogger(__name__)

NO_KEY = (
    "No EACHSENSE_API_KEY set: using the built-in offline each::sense simulator "
    "(answers and media are simulated). Set EACHSENSE_API_KEY in .env for the real service."
)
NO_PLATFORM = (
    "No Slack or Discord tokens configured: starting the local shell. Set SLACK_BOT_TOKEN "
    "(+ SLACK_APP_TOKEN or SLACK_SIGNING_SECRET) or DISCORD_TOKEN in .env to connect a platform."
)


def _secrets(settings: Settings) -> list[str]:
    fields = (
        settings.eachsense_api_key,
        settings.slack_bot_token,
        settings.slack_app_token,
        settings.slack_signing_secret,
        settings.discord_token,
    )
    return [f.get_secret_value() for f in fields if f is not None]


def _notice(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@contextlib.asynccontextmanager
async def _eachlabs(settings: Settings, *, force_sim: bool) -> AsyncIterator[Settings]:
    """Settings for the Eachlabs APIs: the real ones, or a simulator started here."""
    if settings.has_eachsense_key and not force_sim:
        yield settings
        return
    from bot.runtime import simulated
    from simulator import Simulator

    _notice(NO_KEY)
    async with Simulator(
        host="127.0.0.1", port=0, shape=settings.simulator_shape, speed=settings.simulator_speed
    ) as sim:
        yield simulated(settings, sim)


async def _shell(settings: Settings, *, simulate: bool) -> int:
    from adapters.shell import Shell
    from bot.conversations import INTERRUPTED
    from bot.runtime import build_core, close_core

    async with _eachlabs(settings, force_sim=simulate) as live:
        core = await build_core(live)
        try:
            interrupted = await core.conversations.recover()
            shell = Shell(core)
            if any(t.key.platform == "shell" for t in interrupted):
                shell.say(INTERRUPTED)
            return await shell.run()
        finally:
            await close_core(core)


async def _run(settings: Settings, platform: str) -> int:
    wanted = {"discord", "slack"} if platform == "all" else {platform}
    if platform == "all" and not (settings.slack_enabled or settings.discord_enabled):
        _notice(NO_PLATFORM)
        return await _shell(settings, simulate=False)
    if platform == "shell":
        return await _shell(settings, simulate=False)
    from bot.runtime import build_core, close_core

    async with _eachlabs(settings, force_sim=False) as live:
        core = await build_core(live)
        http = HttpServer(host=live.http_host, port=live.http_port)
        stoppers: list[Callable[[], Awaitable[None]]] = []
        try:
            interrupted = await core.conversations.recover()
            await _start_platforms(live, core, http, wanted, interrupted, stoppers)
            if core.jobs is not None:
                from bot.webhooks import webhook_routes

                http.add_routes(webhook_routes(core.jobs))
            await http.start()
            _notice(f"eachsense-bot is running ({', '.join(sorted(wanted))}). Ctrl-C stops it.")
            await _wait_for_signal()
        finally:
            for stop in reversed(stoppers):
                with contextlib.suppress(Exception):
                    await stop()
            await http.stop()
            await close_core(core)
    return 0


async def _start_platforms(
    settings: Settings,
    core: Any,
    http: HttpServer,
    wanted: set[str],
    interrupted: list[Any],
    stoppers: list[Callable[[], Awaitable[None]]],
) -> None:
    surfaces: list[Callable[[ThreadKey], Awaitable[Surface | None]]] = []
    if "slack" in wanted and settings.slack_enabled:
        from adapters.slack.app import SlackBot

        slack = SlackBot(settings, core, http)
        await slack.start()
        stoppers.append(slack.stop)
        await slack.notify_interrupted([t for t in interrupted if t.key.platform == "slack"])
        surfaces.append(slack.surface_for)
    elif "slack" in wanted:
        _notice("Slack is not configured (SLACK_BOT_TOKEN and an app token or signing secret).")
    if "discord" in wanted and settings.discord_enabled:
        from adapters.discord.client import DiscordBot

        discord_bot = DiscordBot(settings, core)
        await discord_bot.start()
        stoppers.append(discord_bot.stop)
        await discord_bot.notify_interrupted(
            [t for t in interrupted if t.key.platform == "discord"]
        )
        surfaces.append(discord_bot.surface_for)
    elif "discord" in wanted:
        _notice("Discord is not configured (DISCORD_TOKEN).")
    if core.jobs is not None and surfaces:
        await core.jobs.resume(_first_surface(surfaces))


def _first_surface(
    factories: list[Callable[[ThreadKey], Awaitable[Surface | None]]],
) -> Callable[[ThreadKey], Awaitable[Surface | None]]:
    async def surface_for(key: ThreadKey) -> Surface | None:
        for factory in factories:
            surface = await factory(key)
            if surface is not None:
                return surface
        return None

    return surface_for


async def _wait_for_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def _simulate(args: argparse.Namespace, settings: Settings) -> int:
    from simulator import serve

    await serve(
        host=args.host or settings.simulator_host,
        port=args.port if args.port is not None else settings.simulator_port,
        shape=args.shape or settings.simulator_shape,
        speed=args.speed or settings.simulator_speed,
    )
    return 0


async def _doctor(settings: Settings) -> int:
    from bot.doctor import doctor

    return await doctor(settings)


async def _sync_commands(settings: Settings, guild: int | None) -> int:
    if not settings.discord_enabled:
        _notice("DISCORD_TOKEN is not set: nothing to sync.")
        return 2
    from adapters.discord.client import sync_commands

    guilds: list[int | None] = [guild] if guild else list(settings.discord_guild_ids)
    for name in await sync_commands(settings, guilds or [None]):
        print(name)
    return 0


def _invalid_settings(err: ValidationError) -> None:
    """Each bad setting's name and what is wrong with it, never the value given: pydantic's
    own message quotes `input_value`, which may be a token put in the wrong variable."""
    print("Invalid settings:", file=sys.stderr)
    for problem in err.errors(include_url=False, include_input=False, include_context=False):
        name, *rest = [str(part) for part in problem["loc"]] or ["settings"]
        where = name.upper() + "".join(f"[{part}]" for part in rest)
        print(f"  {where}: {problem['msg']}", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eachsense-bot", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("run", help="start the bot on every configured platform")
    run.add_argument("--platform", choices=["discord", "slack", "shell", "all"], default="all")
    shell = sub.add_parser("shell", help="chat with each::sense in the terminal")
    shell.add_argument("--simulate", action="store_true", help="use the offline simulator")
    sim = sub.add_parser("simulate", help="run the offline each::sense simulator alone")
    sim.add_argument("--host")
    sim.add_argument("--port", type=int)
    sim.add_argument("--shape", choices=["openai", "raw"])
    sim.add_argument("--speed", type=float)
    sub.add_parser("doctor", help="check settings and reachability")
    sync = sub.add_parser("sync-commands", help="register the Discord slash commands")
    sync.add_argument("--guild", type=int, help="a guild id for instant, guild-scoped commands")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as err:
        _invalid_settings(err)
        return 2
    except Exception as err:  # e.g. an unreadable .env: no setting's value is in these
        print(f"Invalid settings: {type(err).__name__}: {err}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level, _secrets(settings))
    command = args.command or "run"
    actions: dict[str, Callable[[], Coroutine[Any, Any, int]]] = {
        "run": lambda: _run(settings, getattr(args, "platform", "all")),
        "shell": lambda: _shell(settings, simulate=args.simulate),
        "simulate": lambda: _simulate(args, settings),
        "doctor": lambda: _doctor(settings),
        "sync-commands": lambda: _sync_commands(settings, args.guild),
    }
    from bot.runtime import tune_gc

    tune_gc()
    try:
        return asyncio.run(actions[command]())
    except KeyboardInterrupt:
        return 130
