"""The composition root: the one place that names platforms, stores and the simulator.

`cli.py` parses arguments and calls in here; tests call the same functions, so an end-to-end
test builds exactly what production builds. The root opens the store from `DATABASE_URL`
(`storage.open_store`), builds the core (`bot.core.Core`), and loops over the registered
adapters (`adapters.REGISTRY`): each says whether it is configured, how to build it and what
`doctor` should check. Adding a platform means adding an adapter package and one line in
that registry; adding a store means one module and one scheme in `storage/__init__.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import sys
import time
from collections.abc import AsyncIterator, Sequence

from pydantic import SecretStr

from bot.commands import Commands
from bot.config import Settings
from bot.conversations import Conversations
from bot.core import Core
from bot.eachlabs import PredictionsClient, WorkflowsClient
from bot.eachsense import EachSenseClient
from bot.eachstorage import StorageClient
from bot.housekeeping import purge_expired_events
from bot.http import HttpServer
from bot.i18n import set_language
from bot.jobs import Jobs
from bot.media import MediaFetcher
from bot.metrics import Metrics
from bot.models import ChannelKey
from bot.operators import Operators
from bot.ports import AdapterSpec, Platform
from bot.references import References
from bot.replicas import POLL, Coordinator, every
from bot.sessions import new_http_session
from bot.shared_budgets import SharedTokens
from bot.tasks import BackgroundTasks
from bot.webhooks import webhook_routes
from simulator import Simulator
from storage import open_store

log = logging.getLogger(__name__)

SIMULATOR_KEY = "simulator"
PURGE_EVERY = 600.0  # seconds between purges of expired event claims
QUIET_LOGGERS = ("discord.gateway", "discord.client")  # a line per heartbeat and reconnect


__all__ = ["SIMULATOR_KEY", "Core", "build_core", "close_core", "new_http_session", "simulated"]


def tune_gc() -> None:
    """Fewer, cheaper garbage collections for a long-running asyncio server.

    CPython's defaults collect the youngest generation every 700 allocations and walk every
    live object in a full collection; with a thousand turns in flight those pauses showed up
    as event-loop lag (p99 14-24 ms -> 5 ms in the overhead benchmark). Objects alive after
    start-up (modules, settings, clients) are frozen out of collections for good.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 50)
    gc.enable()  # the command line turns it off while it starts up


def simulated(settings: Settings, sim: Simulator) -> Settings:
    """Settings pointed at a running simulator for all three Eachlabs APIs."""
    return settings.model_copy(
        update={
            "eachsense_api_key": settings.eachsense_api_key or SecretStr(SIMULATOR_KEY),
            "eachsense_base_url": sim.base_url,
            "eachlabs_api_url": sim.url + "/eachlabs/v1",
            "eachlabs_workflows_url": sim.url + "/workflows/api/v1",
            "media_allow_insecure": True,
        }
    )


async def build_core(settings: Settings) -> Core:
    metrics = Metrics()
    session = new_http_session(metrics=metrics)
    try:
        store = await open_store(settings.database_url)
    except BaseException:
        await session.close()
        raise
    agent = EachSenseClient.from_settings(session, settings)
    media = MediaFetcher.from_settings(session, settings)
    coordinator = Coordinator(store, settings, enabled=settings.coordinated)
    operators = Operators(store, settings)
    conversations = Conversations(
        store=store,
        agent=agent,
        media=media,
        settings=settings,
        metrics=metrics,
        coordinator=coordinator,
        usage=operators.usage,
    )
    key = settings.eachsense_api_key.get_secret_value() if settings.eachsense_api_key else None
    predictions = PredictionsClient(session, api_key=key, base_url=settings.eachlabs_api_url)
    workflows = WorkflowsClient(
        session,
        api_key=key,
        base_url=(
            settings.eachlabs_workflows_url
            if settings.workflows_api == "legacy"
            else settings.eachlabs_api_url
        ),
        api=settings.workflows_api,
    )
    jobs = Jobs(
        store=store,
        predictions=predictions,
        workflows=workflows,
        media=media,
        settings=settings,
        metrics=metrics,
        usage=operators.usage,
    )
    jobs.owner = coordinator.replica_id
    storage = StorageClient(session, api_key=key, base_url=settings.eachlabs_api_url)
    references = References(media, storage, ttl=settings.reference_image_ttl)
    commands = Commands(
        conversations=conversations,
        jobs=jobs,
        settings=settings,
        operators=operators,
        references=references,
    )
    return Core(
        settings,
        session,
        store,
        agent,
        media,
        conversations,
        jobs,
        commands,
        metrics,
        coordinator,
        BackgroundTasks("core"),
        SharedTokens(store) if settings.coordinated else None,
    )


async def close_core(core: Core) -> None:
    await core.background.cancel_all()
    await core.conversations.aclose()
    await core.jobs.aclose()
    if core.shared_tokens is not None:
        await core.shared_tokens.aclose()
    await core.store.close()
    await core.session.close()


# --- running --------------------------------------------------------------------------

NO_KEY = (
    "No EACHSENSE_API_KEY set: using the built-in offline each::sense simulator "
    "(answers and media are simulated). Set EACHSENSE_API_KEY in .env for the real service."
)
NO_PLATFORM = (
    "No Slack or Discord tokens configured: starting the local shell. Set SLACK_BOT_TOKEN "
    "(+ SLACK_APP_TOKEN or SLACK_SIGNING_SECRET) or DISCORD_TOKEN in .env to connect a platform."
)


def notice(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def adapters() -> tuple[AdapterSpec, ...]:
    from adapters import REGISTRY

    return REGISTRY


@contextlib.asynccontextmanager
async def eachlabs(settings: Settings, *, force_sim: bool) -> AsyncIterator[Settings]:
    """Settings for the Eachlabs APIs: the real ones, or a simulator started here."""
    if settings.has_eachsense_key and not force_sim:
        yield settings
        return
    notice(NO_KEY)
    async with Simulator(
        host="127.0.0.1", port=0, shape=settings.simulator_shape, speed=settings.simulator_speed
    ) as sim:
        yield simulated(settings, sim)


async def run_shell(settings: Settings, *, simulate: bool) -> int:
    from adapters.shell import Shell

    async with eachlabs(settings, force_sim=simulate) as live:
        core = await build_core(live)
        try:
            interrupted = await core.conversations.recover()
            shell = Shell(core)
            set_language(shell.locale)  # the notices below, before the shell's first line
            await core.commands.notify_interrupted([shell], interrupted)
            return await shell.run()
        finally:
            await close_core(core)


async def run(settings: Settings, platform: str) -> int:
    """`eachsense-bot run`: every wanted, configured platform on one core, until a signal."""
    specs = [spec for spec in adapters() if platform in ("all", spec.name)]
    if platform == "shell":
        return await run_shell(settings, simulate=False)
    if platform == "all" and not any(spec.configured(settings) for spec in specs):
        notice(NO_PLATFORM)
        return await run_shell(settings, simulate=False)
    async with eachlabs(settings, force_sim=False) as live:
        core = await build_core(live)
        http = HttpServer(host=live.http_host, port=live.http_port)
        started: list[Platform] = []
        try:
            await serve(core, http, specs, started)
            names = ", ".join(p.name for p in started) or "no platform"
            notice(f"eachsense-bot is running ({names}). Ctrl-C stops it.")
            http.ready = True
            await wait_for_signal()
            http.ready = False  # /readyz: 503 at once; /healthz stays 200 while draining
            await core.conversations.drain(live.shutdown_grace)
        finally:
            for platform_ in reversed(started):
                with contextlib.suppress(Exception):
                    await platform_.stop()
            await http.stop()
            await close_core(core)
    return 0


async def serve(
    core: Core, http: HttpServer, specs: Sequence[AdapterSpec], started: list[Platform]
) -> None:
    """Start the platforms, tell cut-off threads, resume jobs, open the HTTP server."""
    settings = core.settings
    # what no person's payload starts (restart notices, resumed jobs) speaks BOT_LANGUAGE
    set_language(settings.bot_language)
    interrupted = await core.conversations.recover()
    for spec in specs:
        if not spec.configured(settings):
            notice(spec.not_configured)
            continue
        platform = spec.build(settings, core, http)
        await platform.start()
        started.append(platform)
    await core.commands.notify_interrupted(started, interrupted)
    await core.jobs.resume(core.commands.surface_finder(started))
    start_chores(core, started)
    http.add_routes(webhook_routes(core.jobs))
    http.metrics = core.metrics.render
    http.checks += [lambda: store_problem(core), lambda: platform_problem(started)]
    await http.start()


def start_chores(core: Core, platforms: Sequence[Platform]) -> None:
    """The replica's background work: its heartbeat, the purge of expired event claims and,
    with several replicas, Stop requests from elsewhere and the sweep for dead replicas."""
    coordinator, ttl, spawn = core.coordinator, core.settings.replica_ttl, core.background.spawn
    spawn(every(ttl / 4, coordinator.heartbeat, what="heartbeat"), name="heartbeat")
    purge = purge_expired_events(core.store, interval=PURGE_EVERY, clock=time.time)
    spawn(purge, name="purge-events")
    operators = core.commands.operators  # old usage events and past days' quota counts
    spawn(every(PURGE_EVERY, operators.purge, what="usage purge"), name="purge-usage")
    if not coordinator.enabled:
        return
    spawn(every(POLL, core.conversations.watch_stops, what="stop requests"), name="stops")

    async def sweep() -> None:
        turns = await core.conversations.sweep()
        await core.commands.notify_interrupted(platforms, turns)
        taken = await core.store.take_over_jobs(
            coordinator.replica_id, stale_before=coordinator.stale_before(), at=time.time()
        )
        if taken:
            log.warning("following %d jobs of a dead replica", len(taken))
            await core.jobs.resume(core.commands.surface_finder(platforms), taken)

    spawn(every(ttl / 2, sweep, what="dead-replica sweep"), name="sweep")


async def store_problem(core: Core) -> str | None:
    """For `/readyz`: None when the store answers within two seconds."""
    try:
        async with asyncio.timeout(2.0):
            await core.store.get_channel(ChannelKey("readyz", "-", "-"))
    except Exception as err:
        return f"store unreachable ({type(err).__name__})"
    return None


async def platform_problem(platforms: Sequence[Platform]) -> str | None:
    down = [p.name for p in platforms if not p.connected]
    return f"not connected: {', '.join(down)}" if down else None


async def wait_for_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def doctor(settings: Settings) -> int:
    from bot.doctor import doctor as check

    return await check(settings, adapters(), open_store=open_store)


async def sync_commands(settings: Settings, guild: int | None) -> int:
    if not settings.discord_enabled:
        notice("DISCORD_TOKEN is not set: nothing to sync.")
        return 2
    from adapters.discord.client import sync_commands as sync

    guilds: list[int | None] = [guild] if guild else list(settings.discord_guild_ids)
    for name in await sync(settings, guilds or [None]):
        print(name)
    return 0


async def simulate(*, host: str, port: int, shape: str, speed: float) -> int:
    from simulator import serve as serve_simulator

    await serve_simulator(host=host, port=port, shape=shape, speed=speed)  # type: ignore[arg-type]
    return 0
