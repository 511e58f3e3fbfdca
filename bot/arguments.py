"""Command arguments as people type them: `/sense-predict` and `/sense-workflow`.

Parsed before the platform is answered, so a mistake is refused at once with the usage.
"""

from __future__ import annotations

import shlex

from bot.errors import InputError

PREDICT_USAGE = (
    "Usage: `/sense-predict <model> <prompt>`, for example "
    "`/sense-predict flux-pro/v1.1 a lighthouse at dawn`."
)
WORKFLOW_USAGE = (
    "Usage: `/sense-workflow <workflow_id> [key=value ...]`, for example "
    "`/sense-workflow wf_abc123 prompt='a red fox' style=photo`."
)


def parse_predict_args(text: str) -> tuple[str, str]:
    """`"model prompt..."` → (model, prompt). The prompt is kept as typed (quotes and all)."""
    model, _, prompt = (text or "").strip().partition(" ")
    prompt = prompt.strip()
    if not model or not prompt:
        raise InputError(PREDICT_USAGE)
    return model, prompt


def parse_workflow_args(text: str) -> tuple[str, dict[str, str]]:
    """`"wf_id k=v k2='a b'"` → (workflow id, inputs). Shell-style quoting for values."""
    try:
        parts = shlex.split(text or "")
    except ValueError as exc:
        raise InputError(
            f"I could not read that: {exc} (check your quotes). {WORKFLOW_USAGE}"
        ) from exc
    if not parts:
        raise InputError(WORKFLOW_USAGE)
    workflow_id, *pairs = parts
    if "=" in workflow_id:
        raise InputError(f"Start with the workflow id. {WORKFLOW_USAGE}")
    inputs: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InputError(
                f"`{pair[:40]}` is not a `key=value` pair (quote values with spaces). "
                f"{WORKFLOW_USAGE}"
            )
        inputs[key.strip()] = value
    return workflow_id, inputs
