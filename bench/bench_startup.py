"""Start-up: wall time from launching the bot's process to it being ready, three ways.

- `shell`: `eachsense-bot shell --simulate` with `/help` piped in; ready when the help text
  appears (imports, storage, the embedded simulator and the core are all up by then).
- `slack_http`: `run --platform slack` in HTTP mode against the fake Slack (auth.test);
  ready when the bot's `/healthz` answers.
- `discord`: `run --platform discord` against the fake Discord (REST login, Gateway
  IDENTIFY → READY → every listed guild); ready when the bot logs that it is ready.
  Both are configured as deployed (an each::sense key: no embedded simulator to start).

The fakes run in this process; the bot runs as `python -m bot` with settings in env vars.
Median of a few launches each.

Run: `python -m bench.bench_startup [--quick]`.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import ROOT_DIR, Result, child_env, free_port, median, ms, result
from tests.fakes.discord import FakeDiscord
from tests.fakes.slack import FakeSlack

REPEATS = 3
# A deployed bot has an each::sense key, so it starts no simulator; nothing calls each::sense
# during start-up, so the address need not answer.
CONFIGURED = {"eachsense_api_key": "bench-key", "eachsense_base_url": "http://127.0.0.1:9/v1"}
READY_LIMIT = 60.0


async def _launch(args: list[str], env: dict[str, str], stdin: bytes | None = None):
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        cwd=ROOT_DIR,
        env=env,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.terminate()
    await proc.wait()


async def _until_line(stream: asyncio.StreamReader, marker: str) -> None:
    while True:
        line = await stream.readline()
        if not line:
            raise RuntimeError(f"process ended before printing {marker!r}")
        if marker in line.decode(errors="replace"):
            return


async def shell_once(folder: Path) -> float:
    env = child_env(database_url=f"sqlite:///{folder / 'shell.db'}", log_level="WARNING")
    start = time.perf_counter()
    proc = await _launch(["shell", "--simulate"], env, stdin=b"/help\n")
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(b"/help\n")
        await proc.stdin.drain()
        async with asyncio.timeout(READY_LIMIT):
            first = await proc.stdout.readline()
        if not first:
            raise RuntimeError("the shell printed nothing")
        return time.perf_counter() - start
    finally:
        await _stop(proc)


async def slack_once(folder: Path, slack: FakeSlack) -> float:
    port = free_port()
    env = child_env(
        database_url=f"sqlite:///{folder / 'slack.db'}",
        slack_bot_token=slack.bot_token,
        slack_signing_secret="bench-secret",
        slack_api_url=slack.api_url,
        http_host="127.0.0.1",
        http_port=str(port),
        log_level="WARNING",
        **CONFIGURED,
    )
    start = time.perf_counter()
    proc = await _launch(["run", "--platform", "slack"], env)
    try:
        async with aiohttp.ClientSession() as http, asyncio.timeout(READY_LIMIT):
            while True:
                try:
                    async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
                        if response.status == 200:
                            return time.perf_counter() - start
                except aiohttp.ClientError:
                    pass
                if proc.returncode is not None:
                    raise RuntimeError("the Slack bot exited during start-up")
                await asyncio.sleep(0.01)
    finally:
        await _stop(proc)


async def discord_once(folder: Path, fake: FakeDiscord) -> float:
    env = child_env(
        database_url=f"sqlite:///{folder / 'discord.db'}",
        discord_token=fake.token,
        discord_api_url=fake.api_url,
        discord_gateway_url=fake.gateway_url,
        log_level="INFO",
        http_host="127.0.0.1",
        http_port=str(free_port()),
        **CONFIGURED,
    )
    start = time.perf_counter()
    proc = await _launch(["run", "--platform", "discord"], env)
    try:
        assert proc.stderr is not None
        async with asyncio.timeout(READY_LIMIT):
            await _until_line(proc.stderr, "discord: ready as")
        return time.perf_counter() - start
    finally:
        await _stop(proc)


async def _measure(repeats: int) -> dict[str, Any]:
    times: dict[str, list[float]] = {"shell": [], "slack_http": [], "discord": []}
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        async with FakeSlack() as slack, FakeDiscord() as fake:
            for _ in range(repeats):
                times["shell"].append(await shell_once(folder))
                times["slack_http"].append(await slack_once(folder, slack))
                times["discord"].append(await discord_once(folder, fake))
    return {f"{name}_ready_ms": ms(median(values)) for name, values in times.items()}


def run(quick: bool = False) -> list[Result]:
    figures = asyncio.run(_measure(1 if quick else REPEATS))
    return [result("startup", figures, {"discord_ready_ms": "<= 500"})]


if __name__ == "__main__":
    for item in run(quick="--quick" in sys.argv):
        print(item)
