"""What every benchmark shares: result records, statistics, memory readings, fresh child
processes, and the rigs that run the real pipeline (simulator → core → slack-bolt adapter →
fake Slack): all in one event loop (`open_slack_pipeline`), or with the simulator and the fake
Slack in a child process (`remote_rig`) so that the bot process is measured alone, as in
production where Slack and Eachlabs are remote.

Everything here is measured, never assumed: figures come from clocks, `/proc` and the fakes'
call logs. A scenario returns `{"name", "figures", "targets"}` dicts; a target is a string
such as `"< 20"` or `"== 0"` that `meets` checks against the figure of the same name.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web
from pydantic import SecretStr
from slack_sdk.signature import SignatureVerifier

from adapters.slack.app import SlackBot
from adapters.slack.ratelimit import SlackLimiter
from bot.app import Core, build_core, close_core, simulated
from bot.config import Settings
from bot.http import HttpServer
from simulator import Simulator, _Turn
from tests.fakes.slack import Call, FakeSlack, slack_like_limits

Result = dict[str, Any]
SIGNING_SECRET = "bench-signing-secret"
TEAM = "T0TEAM"
ROOT_DIR = Path(__file__).resolve().parent.parent


def result(name: str, figures: dict[str, Any], targets: dict[str, str] | None = None) -> Result:
    return {"name": name, "figures": figures, "targets": targets or {}}


# --- statistics -----------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (`q` in 0..100): p99 of 100 samples is the 99th smallest."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values: Iterable[float]) -> float:
    items = list(values)
    return statistics.median(items) if items else math.nan


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


_TARGET = re.compile(r"^\s*(<=|>=|==|<|>)\s*(-?[\d.]+)")


def meets(value: Any, target: str) -> bool | None:
    """Whether `value` satisfies `target` (`"< 20"`, `"<= 1.0"`, `"== 0"`); None if either
    is not a number (a target written as prose is reported, not checked)."""
    match = _TARGET.match(target)
    if match is None or not isinstance(value, int | float) or isinstance(value, bool):
        return None
    op, bound = match.group(1), float(match.group(2))
    checks = {
        "<": value < bound,
        "<=": value <= bound,
        ">": value > bound,
        ">=": value >= bound,
        "==": value == bound,
    }
    return checks[op]


# --- memory and CPU -------------------------------------------------------------------------


def _status_kb(field_name: str) -> int:
    """A `/proc/self/status` figure in KiB (VmRSS: now, VmHWM: the peak so far)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field_name} not in /proc/self/status")


def rss_kb() -> int:
    return _status_kb("VmRSS")


def peak_rss_kb() -> int:
    return _status_kb("VmHWM")


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux: write 5 to clear_refs); False if not allowed."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")
    except OSError:
        return False
    return True


def cpu_seconds() -> float:
    """CPU time of this process (user + system, all threads)."""
    return time.process_time()


# --- child processes ------------------------------------------------------------------------


def run_child(module: str, *args: str, timeout: float = 300.0) -> Any:
    """Run `python -m bench.<module> --child ...` in a fresh interpreter and return the JSON
    it prints last. Used where a figure must not be polluted by earlier scenarios (peak RSS)
    or where the two sides of a comparison need their own process."""
    command = [sys.executable, "-m", f"bench.{module}", "--child", *args]
    done = subprocess.run(
        command, cwd=ROOT_DIR, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def child_env(**settings: str) -> dict[str, str]:
    """The environment for a bot child process: ours plus settings as env vars."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DISCORD_"))}
    env.update({key.upper(): value for key, value in settings.items()})
    env["PYTHONPATH"] = str(ROOT_DIR)
    return env


# --- the simulator, instrumented -----------------------------------------------------------


class TimedSimulator(Simulator):
    """The simulator, plus the moment each stream's last byte was written (`ended`, by
    session id, `time.monotonic`, the clock the fakes record calls with) and an optional
    `pace`: seconds between events, so an `events:N` turn streams for a while instead of
    arriving in one burst."""

    def __init__(self, *, pace: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pace = pace
        self.ended: dict[str, float] = {}
        self.prompts: dict[str, str] = {}  # session id -> prompt of its latest turn

    async def _sleep(self, delay: float, mode: str) -> None:
        if self.pace > 0:
            await asyncio.sleep(self.pace)
        else:
            await super()._sleep(delay, mode)

    async def _stream(self, request: web.Request, turn: _Turn) -> web.StreamResponse:
        self.prompts[turn.session_id] = turn.prompt
        response = await super()._stream(request, turn)
        self.ended[turn.session_id] = time.monotonic()
        return response


def bench_settings(database_url: str = "sqlite://:memory:", **overrides: Any) -> Settings:
    """Settings that ignore any `.env`, with caps high enough for a thousand turns at once."""
    base: dict[str, Any] = {
        "database_url": database_url,
        "media_allow_insecure": True,
        "eachsense_idle_timeout": 60.0,
        "eachsense_max_retries": 0,
        "max_concurrent_turns": 5000,
        "max_turns_per_user": 5000,
        "log_level": "WARNING",
    }
    base.update(overrides)
    return Settings(_env_file=None, **base)  # type: ignore[call-arg]


def unlimited_limiter() -> SlackLimiter:
    """A limiter that never waits: for scenarios that measure our overhead, not Slack's."""
    return SlackLimiter(update_capacity=1e9, update_rate=1e9, post_capacity=1e9, post_rate=1e9)


# --- the Slack pipeline ---------------------------------------------------------------------


@dataclass
class Workspace:
    """One Slack workspace: a fake Slack, the real SlackBot on its own HTTP server."""

    slack: FakeSlack
    bot: SlackBot
    http: HttpServer
    session: aiohttp.ClientSession

    async def sense(self, prompt: str, *, channel: str, user: str = "U1") -> int:
        """Send `/sense prompt` as Slack does (a signed form POST); return the HTTP status."""
        body, headers = signed_command(
            prompt, channel=channel, user=user, response_url=self.slack.respond_url()
        )
        url = f"{self.http.url}/slack/events"
        async with self.session.post(url, data=body, headers=headers) as response:
            await response.read()
            return response.status

    def updates(self, channel: str | None = None) -> list[Call]:
        """Successful `chat.update` calls (optionally of one channel)."""
        return [
            c
            for c in self.slack.calls_to("chat.update", ok=True)
            if channel is None or c.params.get("channel") == channel
        ]

    def final_update(self, channel: str) -> Call | None:
        """The write that put a turn's footer on its answer, if it arrived: an edit, or a
        post when the answer's last part went out as a continuation."""
        writes = self.updates(channel) + [
            c
            for c in self.slack.calls_to("chat.postMessage", ok=True)
            if c.params.get("channel") == channel and c.params.get("thread_ts")
        ]
        for call in sorted(writes, key=lambda c: c.at, reverse=True):
            if "Done" in str(call.params.get("blocks", "")):
                return call
        return None


@dataclass
class SlackPipeline:
    """The simulator, one core, and `workspaces` Slack workspaces, all in this event loop."""

    sim: TimedSimulator | None  # None when the simulator runs in another process
    core: Core
    workspaces: list[Workspace] = field(default_factory=list)

    @property
    def calls(self) -> list[Call]:
        return [c for w in self.workspaces for c in w.slack.calls]

    def session_of(self, marker: str) -> str | None:
        """The session id of the request whose prompt contains `marker`."""
        assert self.sim is not None, "only an in-process simulator records requests"
        for request in self.sim.requests:
            if marker in request.prompt:
                return request.session_id
        return None

    async def wait(self, done: Any, *, limit: float, poll: float = 0.02) -> bool:
        """Poll `done()` until true or `limit` seconds pass (no fixed sleeps)."""
        deadline = time.monotonic() + limit
        while not done():
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(poll)
        return True


class open_slack_pipeline:
    """Start the whole Slack pipeline; `real_limits` makes each fake enforce Slack's tiers
    and each bot use the production limiter, otherwise neither limits anything."""

    def __init__(
        self,
        *,
        workspaces: int = 1,
        real_limits: bool = False,
        pace: float = 0.0,
        shape: str = "openai",
        database_url: str = "sqlite://:memory:",
        external: external_simulator | None = None,
        fake: type[FakeSlack] = FakeSlack,
        **settings: Any,
    ) -> None:
        self._count = workspaces
        self._real = real_limits
        self._pace = pace
        self._shape = shape
        self._database_url = database_url
        self._settings = settings
        self._external = external
        self._fake = fake
        self._stack: list[Any] = []
        self.pipeline: SlackPipeline | None = None

    async def __aenter__(self) -> SlackPipeline:
        try:
            return await self._open()
        except BaseException:
            await self.__aexit__()
            raise

    async def _open(self) -> SlackPipeline:
        base = bench_settings(self._database_url, **self._settings)
        sim: TimedSimulator | None = None
        if self._external is not None:
            settings = simulated(base, self._external)  # type: ignore[arg-type]
        else:
            sim = TimedSimulator(pace=self._pace, speed=1000.0, shape=self._shape)  # type: ignore[arg-type]
            await sim.start()
            self._stack.append(sim.stop)
            settings = simulated(base, sim)
        core = await build_core(settings)
        self._stack.append(lambda: close_core(core))
        pipeline = SlackPipeline(sim, core)
        for _ in range(self._count):
            pipeline.workspaces.append(await self._workspace(settings, core))
        self.pipeline = pipeline
        return pipeline

    async def _workspace(self, settings: Settings, core: Core) -> Workspace:
        if self._real:
            method_limits, post_limit = slack_like_limits()
            slack = self._fake(method_limits=method_limits, channel_post_limit=post_limit)
            limiter = SlackLimiter()
        else:
            slack = self._fake(limits=False)
            limiter = unlimited_limiter()
        await slack.start()
        self._stack.append(slack.stop)
        ws_settings = settings.model_copy(
            update={
                "slack_bot_token": SecretStr(slack.bot_token),
                "slack_signing_secret": SecretStr(SIGNING_SECRET),
                "slack_api_url": slack.api_url,
                "http_host": "127.0.0.1",
                "http_port": 0,
            }
        )
        http = HttpServer(host="127.0.0.1", port=0)
        bot = SlackBot(ws_settings, core, http, limiter=limiter)
        await bot.start()
        await http.start()
        self._stack.append(http.stop)
        self._stack.append(bot.stop)
        return Workspace(slack, bot, http, core.session)

    async def __aexit__(self, *exc: object) -> None:
        while self._stack:
            closer = self._stack.pop()
            try:
                await closer()
            except Exception:
                pass


def marker_prompt(events: int, index: int) -> str:
    """A prompt that streams `events` events and can be found again by its `#index` tag."""
    return f"events:{events} #{index}#"


def edit_gaps(calls: Sequence[Call], *, until: float | None = None) -> list[float]:
    """Seconds between successive edits of one message while its stream was running."""
    times = [c.at for c in calls if until is None or c.at <= until]
    return [b - a for a, b in itertools.pairwise(times)]


# --- a simulator in its own process ---------------------------------------------------------


def free_port() -> int:
    """A port the OS says is free right now (for a child process to listen on)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class external_simulator:
    """The simulator in a child process, so its CPU (encoding events) is not counted as
    ours and both sides of a client comparison see the same server."""

    def __init__(self, *, shape: str = "openai") -> None:
        self.shape = shape
        self.port = free_port()
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    async def __aenter__(self) -> external_simulator:
        code = (
            "import asyncio, logging; from simulator import serve; "
            "logging.basicConfig(level=logging.WARNING); "
            f"asyncio.run(serve(host='127.0.0.1', port={self.port}, "
            f"shape={self.shape!r}, speed=1000.0))"
        )
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", code, cwd=ROOT_DIR, env=child_env()
        )
        async with aiohttp.ClientSession() as http:
            deadline = time.monotonic() + 30
            while True:
                try:
                    async with http.get(self.url + "/healthz") as response:
                        if response.status == 200:
                            return self
                except aiohttp.ClientError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("the simulator child did not start")
                await asyncio.sleep(0.02)

    async def __aexit__(self, *exc: object) -> None:
        if self._proc is not None and self._proc.returncode is None:
            self._proc.terminate()
            await self._proc.wait()


# --- Slack and each::sense in their own process -------------------------------------------


class FinalsSlack(FakeSlack):
    """The fake Slack, plus when each channel's final edit (the one whose footer says Done)
    arrived: `finals[channel]`, on the clock `Call.at` uses."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.finals: dict[str, float] = {}
        self.changed = asyncio.Event()

    def _answer(
        self, method: str, params: dict[str, Any], now: float, body: dict[str, Any]
    ) -> web.Response:
        final = method == "chat.update" or (
            method == "chat.postMessage" and bool(params.get("thread_ts"))
        )
        if final and body["ok"] and "Done" in str(params.get("blocks", "")):
            self.finals.setdefault(str(params.get("channel")), now)
            self.changed.set()
        return super()._answer(method, params, now, body)


def signed_command(
    prompt: str, *, channel: str, user: str, response_url: str
) -> tuple[bytes, dict[str, str]]:
    """A `/sense prompt` form body and headers, signed as Slack signs them."""
    body = urlencode(
        {
            "token": "legacy",
            "team_id": TEAM,
            "channel_id": channel,
            "user_id": user,
            "command": "/sense",
            "text": prompt,
            "api_app_id": "A1",
            "response_url": response_url,
            "trigger_id": "trigger",
        }
    )
    stamp = str(int(time.time()))
    signature = SignatureVerifier(SIGNING_SECRET).generate_signature(timestamp=stamp, body=body)
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": signature or "",
    }
    return body.encode(), headers


class LagProbe:
    """How late the event loop wakes a `period` sleep (the queueing every callback in the
    process sees at that moment), and this process's CPU use per `window` seconds."""

    def __init__(self, period: float = 0.005, window: float = 1.0) -> None:
        self.period = period
        self.window = window
        self.lags: list[float] = []
        self.cpu_windows: list[float] = []  # CPU seconds per wall second, one per window
        self._task: asyncio.Task[None] | None = None

    async def _probe(self) -> None:
        loop = asyncio.get_running_loop()
        mark_wall, mark_cpu = loop.time(), cpu_seconds()
        while True:
            start = loop.time()
            await asyncio.sleep(self.period)
            now = loop.time()
            self.lags.append(now - start - self.period)
            if now - mark_wall >= self.window:
                cpu = cpu_seconds()
                self.cpu_windows.append((cpu - mark_cpu) / (now - mark_wall))
                mark_wall, mark_cpu = now, cpu

    async def __aenter__(self) -> LagProbe:
        self._task = asyncio.create_task(self._probe())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class _Rig:
    """The child side of `remote_rig`: the simulator, the fake Slack, and a control server
    whose `POST /run` plays Slack's part for one scenario (it sends the slash commands at
    their start times) and answers with every turn's timestamps once all have ended."""

    def __init__(self) -> None:
        self.sim = TimedSimulator(speed=1000.0)
        self.slack = FinalsSlack(limits=False)  # our overhead, not Slack's limits
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> None:
        await self.sim.start()
        await self.slack.start()
        app = web.Application()
        app.router.add_post("/run", self._run)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def _run(self, request: web.Request) -> web.Response:
        spec = await request.json()
        tag, turns, events = str(spec["tag"]), int(spec["turns"]), int(spec["events"])
        spread, deadline = float(spec["spread"]), float(spec["timeout"])
        self.sim.pace = float(spec["pace"])
        channels = [f"{tag}C{i}" for i in range(turns)]
        sent: dict[int, float] = {}
        statuses: list[int] = []
        # Slack's side sends over a pool of connections, as Slack (or the load balancer in
        # front of the bot) does: not one connection per command, each left open
        connector = aiohttp.TCPConnector(limit=RIG_CONNECTIONS)
        async with aiohttp.ClientSession(connector=connector) as http, LagProbe() as probe:
            cpu0, wall0 = cpu_seconds(), time.monotonic()
            first = wall0 + 0.05

            async def start_turn(i: int) -> None:
                await asyncio.sleep(max(0.0, first + i * spread / turns - time.monotonic()))
                data, headers = signed_command(
                    f"events:{events} #{tag}-{i}#",
                    channel=channels[i],
                    user=f"U{tag}{i}",
                    response_url=self.slack.respond_url(),
                )
                sent[i] = time.monotonic()
                async with http.post(spec["bot_url"], data=data, headers=headers) as response:
                    await response.read()
                    statuses.append(response.status)

            await asyncio.gather(*(start_turn(i) for i in range(turns)))
            finals = self.slack.finals
            until = time.monotonic() + deadline
            while not all(c in finals for c in channels) and time.monotonic() < until:
                self.slack.changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.slack.changed.wait(), 1.0)
            cpu, wall = cpu_seconds() - cpu0, time.monotonic() - wall0
        ended = {
            prompt: self.sim.ended[session]
            for session, prompt in self.sim.prompts.items()
            if session in self.sim.ended
        }
        rows = [
            {
                "sent": sent.get(i),
                "ended": ended.get(f"events:{events} #{tag}-{i}#"),
                "final": finals.get(channels[i]),
            }
            for i in range(turns)
        ]
        ours = set(channels)
        updates = sum(
            c.params.get("channel") in ours for c in self.slack.calls_to("chat.update", ok=True)
        )
        return web.json_response(
            {
                "turns": rows,
                "statuses": sorted(set(statuses)),
                "updates": updates,
                "lag_p99": percentile(probe.lags, 99),
                "cpu_share": cpu / wall,
            }
        )

    async def serve_forever(self) -> None:
        await self.start()
        ready = {
            "sim_url": self.sim.url,
            "slack_api_url": self.slack.api_url,
            "bot_token": self.slack.bot_token,
            "control_url": f"http://127.0.0.1:{self.port}",
        }
        print(json.dumps(ready), flush=True)
        await asyncio.Event().wait()


def serve_rig() -> None:
    """Entry point of the child process (`remote_rig` starts it)."""
    import logging

    logging.basicConfig(level=logging.WARNING)
    asyncio.run(_Rig().serve_forever())


RIG_CONNECTIONS = 64  # the rig's connections to the bot for the slash commands


class remote_rig:
    """The simulator and the fake Slack in one child process (`serve_rig`).

    `time.monotonic()` is CLOCK_MONOTONIC, one clock for every process on a Linux machine,
    so the child's timestamps (last event written, final edit received) and ours compare
    directly."""

    def __init__(self) -> None:
        self._proc: asyncio.subprocess.Process | None = None
        self.info: dict[str, str] = {}
        self._runs = itertools.count(1)

    @property
    def url(self) -> str:
        return self.info["sim_url"]

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    async def __aenter__(self) -> remote_rig:
        code = "from bench.common import serve_rig; serve_rig()"
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            code,
            cwd=ROOT_DIR,
            env=child_env(),
            stdout=asyncio.subprocess.PIPE,
        )
        assert self._proc.stdout is not None
        try:
            line = await asyncio.wait_for(self._proc.stdout.readline(), 60)
            self.info = json.loads(line)
        except (TimeoutError, ValueError):
            await self.__aexit__()
            raise RuntimeError("the rig child did not start") from None
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._proc is not None and self._proc.returncode is None:
            self._proc.terminate()
            await self._proc.wait()

    async def run(
        self, bot_url: str, *, turns: int, events: int, pace: float, spread: float
    ) -> dict[str, Any]:
        """Start `turns` turns of `events` events `pace` seconds apart, their slash commands
        spread evenly over `spread` seconds; return the child's report once all ended."""
        timeout = spread + events * pace + 120
        spec = {
            "tag": f"r{next(self._runs)}",
            "bot_url": bot_url,
            "turns": turns,
            "events": events,
            "pace": pace,
            "spread": spread,
            "timeout": timeout,
        }
        wait = aiohttp.ClientTimeout(total=timeout + 60)
        async with aiohttp.ClientSession(timeout=wait) as http:
            async with http.post(self.info["control_url"] + "/run", json=spec) as response:
                response.raise_for_status()
                report: dict[str, Any] = await response.json()
        return report


@contextlib.asynccontextmanager
async def remote_slack_bot(rig: remote_rig, **settings: Any) -> AsyncIterator[SlackBot]:
    """The real core and SlackBot in this process, pointed at the rig's simulator and fake
    Slack, with the limiter off (scenarios that measure our overhead, not Slack's)."""
    base = simulated(bench_settings(**settings), rig)  # type: ignore[arg-type]
    ws_settings = base.model_copy(
        update={
            "slack_bot_token": SecretStr(rig.info["bot_token"]),
            "slack_signing_secret": SecretStr(SIGNING_SECRET),
            "slack_api_url": rig.info["slack_api_url"],
        }
    )
    core = await build_core(ws_settings)
    http = HttpServer(host="127.0.0.1", port=0)
    bot = SlackBot(ws_settings, core, http, limiter=unlimited_limiter())
    try:
        await bot.start()
        await http.start()
        yield bot
    finally:
        await bot.stop()
        await http.stop()
        await close_core(core)
