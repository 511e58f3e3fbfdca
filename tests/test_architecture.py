"""The core's boundary, checked: `bot/` imports no adapter, no store module, no simulator and
no platform SDK, and names no platform in its code, except the composition root (`bot/app.py`,
`bot/cli.py`) and the settings schema (`bot/config.py`)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parent.parent / "bot"
ROOT = {"app.py", "cli.py", "config.py", "__main__.py"}
FORBIDDEN = ("adapters", "storage", "simulator", "discord", "slack_sdk", "slack_bolt", "aiosqlite")
PLATFORMS = ("slack", "discord")


def core_modules() -> list[Path]:
    return sorted(p for p in CORE.glob("*.py") if p.name not in ROOT)


def imported(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def code_strings(tree: ast.AST) -> list[str]:
    """String constants that are not docstrings."""
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    ]


@pytest.mark.parametrize("path", core_modules(), ids=lambda p: p.name)
def test_the_core_imports_no_adapter_store_simulator_or_sdk(path: Path) -> None:
    tree = ast.parse(path.read_text())
    bad = {n for n in imported(tree) if n.split(".")[0] in FORBIDDEN}
    assert not bad, f"{path.name} imports {sorted(bad)}"


@pytest.mark.parametrize("path", core_modules(), ids=lambda p: p.name)
def test_the_core_names_no_platform_in_code(path: Path) -> None:
    tree = ast.parse(path.read_text())
    named = [s for s in code_strings(tree) if any(p in s.lower() for p in PLATFORMS)]
    assert not named, f"{path.name} names a platform: {named}"


def test_the_check_itself_sees_a_forbidden_import() -> None:
    tree = ast.parse("from adapters.slack.app import SlackBot\nx = 'a discord id'\n")
    assert "adapters.slack.app" in imported(tree)
    assert code_strings(tree) == ["a discord id"]
