"""`eachsense-bot`: arguments in, the composition root (`bot.app`) does the rest.

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
import gc
import logging
import sys
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported in `_main`, once the collector is off (see `main`)
    from pydantic import ValidationError

    from bot.config import Settings

log = logging.getLogger(__name__)


def _secrets(settings: Settings) -> list[str]:
    fields = (
        settings.eachsense_api_key,
        settings.slack_bot_token,
        settings.slack_app_token,
        settings.slack_signing_secret,
        settings.discord_token,
    )
    return [f.get_secret_value() for f in fields if f is not None]


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
    # Start-up allocates a great deal (modules, pydantic schemas, the SDKs) and frees little,
    # so the collector's passes over it are wasted time: about 50 ms of a Discord bot's
    # half-second start. `app.tune_gc` turns it back on before the event loop starts.
    gc.disable()
    try:
        return _main(argv)
    finally:
        gc.enable()


def _main(argv: list[str] | None) -> int:
    from pydantic import ValidationError

    from bot.config import Settings
    from bot.logs import setup_logging

    args = build_parser().parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as err:
        _invalid_settings(err)
        return 2
    except Exception as err:  # e.g. an unreadable .env: no setting's value is in these
        print(f"Invalid settings: {type(err).__name__}: {err}", file=sys.stderr)
        return 2
    from bot import app

    setup_logging(
        settings.log_level,
        _secrets(settings),
        quiet=app.QUIET_LOGGERS,
        json_lines=settings.log_format == "json",
    )
    command = args.command or "run"

    actions: dict[str, Callable[[], Coroutine[Any, Any, int]]] = {
        "run": lambda: app.run(settings, getattr(args, "platform", "all")),
        "shell": lambda: app.run_shell(settings, simulate=args.simulate),
        "simulate": lambda: app.simulate(
            host=args.host or settings.simulator_host,
            port=args.port if args.port is not None else settings.simulator_port,
            shape=args.shape or settings.simulator_shape,
            speed=args.speed or settings.simulator_speed,
        ),
        "doctor": lambda: app.doctor(settings),
        "sync-commands": lambda: app.sync_commands(settings, args.guild),
    }
    app.tune_gc()
    try:
        return asyncio.run(actions[command]())
    except KeyboardInterrupt:
        return 130
