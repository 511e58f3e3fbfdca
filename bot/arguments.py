"""What a person types after `/sense-predict` and `/sense-workflow`, read and checked.

Ids end up in Eachlabs URLs (`/workflows/trigger/{workflow_id}/{version_id}`,
`/prediction/{id}`), sent with the operator's API key. An id is therefore checked before
anything is sent: letters, digits, `-` and `_`, 1 to 100 characters, so `../../prediction/…`
typed in a chat can never steer a request to another endpoint. Model slugs look like
`flux-pro/v1.1`, so they may also hold `.` and `/`, but no empty or dot-only part; they go in
a JSON body, and wherever one reaches a path it is quoted whole (`/` becomes `%2F`).

Everything here raises `InputError` with a sentence for the person.
"""

from __future__ import annotations

import re
import shlex

from bot.errors import InputError
from bot.i18n import N_, _

PREDICT_USAGE = N_(
    "Usage: `/sense-predict <model> <prompt>`, for example "
    "`/sense-predict flux-pro/v1.1 a lighthouse at dawn`."
)
WORKFLOW_USAGE = N_(
    "Usage: `/sense-workflow <workflow_id> [key=value ...]`, for example "
    "`/sense-workflow wf_abc123 prompt='a red fox' style=photo`."
)
MAX_ID_CHARS = 100
_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")
# Each `/`-separated part starts with a letter or digit: no empty, `.` or `..` part.
_SLUG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(?:/[A-Za-z0-9][A-Za-z0-9._-]*)*")


def is_id(value: str) -> bool:
    """True when `value` is a well-formed Eachlabs id (workflow, version, run)."""
    return _ID.fullmatch(value) is not None


def is_model_slug(value: str) -> bool:
    """True when `value` looks like a model slug (`flux-pro/v1.1`, `veo3`)."""
    return len(value) <= MAX_ID_CHARS and _SLUG.fullmatch(value) is not None


def check_id(value: str, *, what: str) -> str:
    """`value` if it is a well-formed id, else an `InputError` naming `what` it should be
    (a translated noun: "workflow id")."""
    if not is_id(value):
        raise InputError(
            _(
                "That {what} is not valid: use only letters, digits, `-` and `_` "
                "(1 to {limit} characters)."
            ).format(what=what, limit=MAX_ID_CHARS),
            detail=f"bad {what}: {value[:MAX_ID_CHARS]!r}",
        )
    return value


def check_model(value: str) -> str:
    """`value` if it is a well-formed model slug, else an `InputError`."""
    if not is_model_slug(value):
        raise InputError(
            _(
                "That model name is not valid: use letters, digits, `-`, `_`, `.` and `/` "
                "(like `flux-pro/v1.1`, at most {limit} characters)."
            ).format(limit=MAX_ID_CHARS),
            detail=f"bad model slug: {value[:MAX_ID_CHARS]!r}",
        )
    return value


def parse_predict_args(text: str) -> tuple[str, str]:
    """`"model prompt..."` → (model, prompt). The prompt is kept as typed (quotes and all)."""
    model, _space, prompt = (text or "").strip().partition(" ")
    prompt = prompt.strip()
    if not model or not prompt:
        raise InputError(_(PREDICT_USAGE))
    return check_model(model), prompt


def parse_workflow_args(text: str) -> tuple[str, dict[str, str]]:
    """`"wf_id k=v k2='a b'"` → (workflow id, inputs). Shell-style quoting for values."""
    try:
        parts = shlex.split(text or "")
    except ValueError as exc:
        raise InputError(
            _("I could not read that: {problem} (check your quotes). {usage}").format(
                problem=exc, usage=_(WORKFLOW_USAGE)
            )
        ) from exc
    if not parts:
        raise InputError(_(WORKFLOW_USAGE))
    workflow_id, *pairs = parts
    if "=" in workflow_id:
        raise InputError(_("Start with the workflow id. {usage}").format(usage=_(WORKFLOW_USAGE)))
    check_id(workflow_id, what=_("workflow id"))
    inputs: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InputError(
                _("`{pair}` is not a `key=value` pair (quote values with spaces). {usage}").format(
                    pair=pair[:40], usage=_(WORKFLOW_USAGE)
                )
            )
        inputs[key.strip()] = value
    return workflow_id, inputs
