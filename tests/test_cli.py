"""The program's commands as a new user runs them (subprocesses, no `.env`)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp

from tests.util import wait_until


def clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("EACHSENSE_", "SLACK_", "DISCORD_", "DATABASE_URL", "PUBLIC_URL"))
    }
    env["PYTHONPATH"] = str(Path.cwd())
    env.update(extra)
    return env


def test_help_lists_every_command(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bot", "--help"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=clean_env(),
        timeout=30,
    ).stdout
    for command in ("run", "shell", "simulate", "doctor", "sync-commands"):
        assert command in out


def test_doctor_without_settings_explains_what_is_missing(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot", "doctor"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=clean_env(),
        timeout=30,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "EACHSENSE_API_KEY is not set" in result.stdout
    assert "SLACK_BOT_TOKEN not set" in result.stdout
    assert "Traceback" not in result.stderr


def test_doctor_reports_a_rejected_key_without_showing_it(tmp_path: Path) -> None:
    secret = "sk-doctor-secret-999999"
    result = subprocess.run(
        [sys.executable, "-m", "bot", "doctor"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=clean_env(EACHSENSE_API_KEY=secret, EACHSENSE_BASE_URL="http://127.0.0.1:9/v1"),
        timeout=30,
    )
    assert result.returncode == 1
    assert "unreachable" in result.stdout
    assert secret not in result.stdout + result.stderr


def test_invalid_setting_is_a_clear_message(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot", "doctor"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=clean_env(HTTP_PORT="eighty"),
        timeout=30,
    )
    assert result.returncode == 2
    assert "Invalid settings" in result.stderr and "HTTP_PORT" in result.stderr
    assert "Traceback" not in result.stderr


def test_invalid_settings_name_the_setting_but_never_echo_its_value(tmp_path: Path) -> None:
    # A token pasted into the wrong variable must not be printed back (pydantic's own message
    # quotes `input_value`).
    token = "xoxb-pasted-in-the-wrong-place-777"
    result = subprocess.run(
        [sys.executable, "-m", "bot", "doctor"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=clean_env(WORKFLOWS_API=token, HTTP_PORT=token, DISCORD_GUILD_IDS=f"1,{token}"),
        timeout=30,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[0] == "Invalid settings:"
    assert sorted(line.split(":")[0].strip() for line in lines[1:]) == [
        "DISCORD_GUILD_IDS[1]",
        "HTTP_PORT",
        "WORKFLOWS_API",
    ]
    assert "Input should be a valid integer" in result.stderr
    assert token not in result.stderr + result.stdout
    assert "input_value" not in result.stderr and "Traceback" not in result.stderr


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


async def test_simulate_serves_the_protocol(tmp_path: Path, unused_tcp_port: int) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "simulate",
        "--port",
        str(unused_tcp_port),
        cwd=tmp_path,
        env=clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        # Ctrl-C as at a terminal: a test run started in the background (`make test &`)
        # ignores SIGINT, and an ignored signal stays ignored in the children it starts
        preexec_fn=_default_sigint,
    )
    try:
        async with aiohttp.ClientSession() as session:

            async def healthy() -> bool:
                try:
                    async with session.get(f"http://127.0.0.1:{unused_tcp_port}/healthz") as r:
                        return r.status == 200
                except aiohttp.ClientError:
                    return False

            await wait_until(healthy, timeout=20, interval=0.1)
            body = {"messages": [{"role": "user", "content": "just text"}], "stream": False}
            url = f"http://127.0.0.1:{unused_tcp_port}/v1/chat/completions"
            async with session.post(url, json=body) as resp:
                data = await resp.json()
            assert data["choices"][0]["message"]["content"]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            assert proc.stderr is not None
            said = (await proc.stderr.read()).decode(errors="replace")
            raise AssertionError(f"the simulator did not stop on SIGINT:\n{said[-3000:]}") from None
