"""The console as a person uses it: the installed command, piped input, no `.env`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from adapters.shell import Shell
from bot.app import Core


def run_cli(*args: str, stdin: str = "", cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("EACHSENSE_", "SLACK_", "DISCORD_", "DATABASE_URL"))
    }
    environ.update({"SIMULATOR_SPEED": "200", "PYTHONPATH": str(Path.cwd())}, **env)
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=environ,
        timeout=60,
    )


def test_piped_shell_runs_turns_in_one_session(tmp_path: Path) -> None:
    result = run_cli(
        "shell",
        "--simulate",
        stdin="a red fox\nmake it blue\n/eco on\nnow a video\n",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "simulator" in result.stderr
    assert out.count("Generated: ") == 3
    assert ".mp4" in out.split("Eco mode")[1]
    before, after = out.split("Eco mode is **on**")
    assert "max mode" in before and "eco mode" in after
    assert "turn 3 in this session" in after
    assert "Traceback" not in result.stderr


def test_run_without_tokens_starts_the_shell_and_says_so(tmp_path: Path) -> None:
    result = run_cli("run", stdin="just text please\n", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "No Slack or Discord tokens" in result.stderr
    assert "simulator" in result.stderr
    assert "just text please" in result.stdout


def test_unknown_command_and_new_thread(tmp_path: Path) -> None:
    result = run_cli(
        "shell", "--simulate", stdin="/frobnicate\nhello\n/new\nhello again\n", cwd=tmp_path
    )
    assert "Unknown command /frobnicate" in result.stdout
    assert result.stdout.count("turn 1 in this session") == 2


@pytest.mark.parametrize("line", ["/eco maybe", "/predict", "/workflow"])
async def test_bad_commands_get_a_sentence(core: Core, line: str, capsys) -> None:
    import io

    out = io.StringIO()
    shell = Shell(core, out=out)
    assert await shell.handle_line(line)
    assert out.getvalue().strip()
    assert "Traceback" not in out.getvalue()


def test_a_turn_cut_by_a_crash_is_reported_on_the_next_start(tmp_path: Path) -> None:
    import asyncio

    from bot.models import ThreadKey, TurnRecord, TurnStatus
    from storage.sqlite import open_store

    async def leave_a_running_turn() -> None:
        store = await open_store(f"sqlite:///{tmp_path}/eachsense-bot.db")
        key = ThreadKey("shell", "local", "console", "1")
        await store.begin_turn(TurnRecord("t1", key, "local", "a fox", TurnStatus.RUNNING, 1.0))
        await store.close()

    asyncio.run(leave_a_running_turn())
    result = run_cli("shell", "--simulate", stdin="", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "restarted while answering" in result.stdout
    again = run_cli("shell", "--simulate", stdin="", cwd=tmp_path)
    assert "restarted" not in again.stdout


def test_piped_output_is_plain_and_says_each_thing_once(tmp_path: Path) -> None:
    result = run_cli("shell", "--simulate", stdin="a red fox\n/help\n", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "\x1b" not in out
    lines = out.splitlines()
    assert sum("Thinking" in line for line in lines) == 1
    assert out.count("Here is your image.") == 1
    assert out.count("✅ Done") == 1
    assert any(line.strip().startswith("/quit") for line in lines)
