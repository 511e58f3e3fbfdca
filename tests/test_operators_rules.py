"""The operator features' pure parts, one rule at a time: costs as Eachlabs reports them, the
usage summary, the access rule (deny beats allow), `/sense-admin`'s arguments, the quota
reset time, the ids adapters hand the core, and every command registered on every
platform."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from adapters.discord.translate import ids_in
from adapters.shell import COMMANDS
from adapters.slack.text import with_ids
from bot.access import DENIED_CHANNEL, DENIED_PERSON, AccessLists
from bot.admin import ChangeAccess, Help, SetQuota, ShowAccess, ShowQuotas, parse_admin_args
from bot.errors import InputError
from bot.models import CommandName
from bot.operator_records import UsageKind, UsageTotal
from bot.usage import DAY, cost_of, summary, until_midnight

MANIFEST = Path(__file__).resolve().parent.parent / "adapters" / "slack" / "manifest.yml"


@pytest.mark.parametrize(
    ("body", "cost"),
    [
        ({"metrics": {"predict_time": 1.2, "cost": 0.03}}, 0.03),  # GET /prediction/{id}
        ({"total_cost": 0.12}, 0.12),  # a workflow execution
        ({"execution_cost": "0.5"}, 0.5),  # GET /v1/executions
        ({"cost": "$1.25"}, 1.25),
        ({"metrics": {"cost": None}, "total_cost": 0}, 0.0),
        ({"exec_id": "x", "status": "succeeded", "output": []}, None),  # a webhook body
        ({"metrics": "n/a", "cost": "free"}, None),
        ({"cost": float("nan")}, None),
        ({"cost": -1}, None),
        ({"cost": True}, None),
    ],
)
def test_cost_as_eachlabs_reports_it(body: dict, cost: float | None) -> None:
    assert cost_of(body) == cost


def test_summary_reads_like_a_sentence() -> None:
    totals = [
        UsageTotal(UsageKind.GENERATION, "image", 3),
        UsageTotal(UsageKind.GENERATION, "video", 1),
        UsageTotal(UsageKind.GENERATION, "audio", 1),
        UsageTotal(UsageKind.RUN, "prediction", 2, cost=0.06, priced=2),
        UsageTotal(UsageKind.RUN, "workflow:failed", 1, cost=0.0, priced=0),
        UsageTotal(UsageKind.TURN, "done", 4),
        UsageTotal(UsageKind.TURN, "failed", 1),
    ]
    assert summary(totals) == (
        "5 turns (1 failed) · 3 images, 1 audio file, 1 video · "
        "3 runs, $0.06 (1 without a reported cost)"
    )
    assert summary([UsageTotal(UsageKind.RUN, "prediction", 1)]) == "1 run (no cost reported)"
    assert summary([]) == "nothing yet"


def test_quotas_reset_at_utc_midnight() -> None:
    day = 20_000 * DAY
    assert until_midnight(day) == "at 00:00 UTC (in 24h 00m)"
    assert until_midnight(day + DAY - 90) == "at 00:00 UTC (in 1m 30s)"
    assert until_midnight(day + 18 * 3600 + 59) == "at 00:00 UTC (in 5h 59m)"


def _lists(**lists: set[str]) -> AccessLists:
    allow = {k.removeprefix("allow_"): frozenset(v) for k, v in lists.items() if k[0] == "a"}
    deny = {k.removeprefix("deny_"): frozenset(v) for k, v in lists.items() if k[0] == "d"}
    return AccessLists(allow=allow, deny=deny)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("lists", "user", "roles", "channel", "said"),
    [
        ({}, "U1", set(), "C1", None),
        ({"deny_user": {"U1"}}, "U1", set(), "C1", DENIED_PERSON),
        ({"deny_user": {"U1"}}, "U2", set(), "C1", None),
        ({"deny_role": {"R1"}}, "U1", {"R1", "R2"}, "C1", DENIED_PERSON),
        ({"deny_channel": {"C1"}}, "U1", set(), "C1", DENIED_CHANNEL),
        ({"deny_channel": {"C1"}}, "U1", set(), "C2", None),
        ({"allow_channel": {"C1"}}, "U1", set(), "C2", DENIED_CHANNEL),
        ({"allow_channel": {"C1"}}, "U1", set(), "C1", None),
        ({"allow_user": {"U2"}}, "U1", set(), "C1", DENIED_PERSON),
        ({"allow_user": {"U2"}, "allow_role": {"R1"}}, "U1", {"R1"}, "C1", None),
        ({"allow_role": {"R1"}}, "U2", set(), "C1", DENIED_PERSON),
        # deny beats allow, whichever list names the person
        ({"allow_user": {"U1"}, "deny_role": {"R1"}}, "U1", {"R1"}, "C1", DENIED_PERSON),
        ({"allow_role": {"R1"}, "deny_user": {"U1"}}, "U1", {"R1"}, "C1", DENIED_PERSON),
        ({"allow_channel": {"C1"}, "deny_channel": {"C1"}}, "U1", set(), "C1", DENIED_CHANNEL),
    ],
)
def test_the_access_rule(
    lists: dict[str, set[str]], user: str, roles: set[str], channel: str, said: str | None
) -> None:
    found = _lists(**lists).refusal(user_id=user, roles=frozenset(roles), channel=channel)
    assert found == said


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("", Help()),
        ("help", Help()),
        ("access", ShowAccess()),
        ("ACCESS deny users U1 @U2 U1", ChangeAccess("deny", "user", ("U1", "U2"))),
        ("access allow group S1", ChangeAccess("allow", "role", ("S1",))),
        ("access remove channel here #C2", ChangeAccess("remove", "channel", ("here", "C2"))),
        ("quota", ShowQuotas()),
        ("quotas", ShowQuotas()),
        ("quota user-turns 20", SetQuota("user-turns", 20, False)),
        ("quota channel-runs off here", SetQuota("channel-runs", 0, True)),
        ("quota channel-turns default", SetQuota("channel-turns", None, False)),
    ],
)
def test_admin_arguments(text: str, parsed: object) -> None:
    assert parse_admin_args(text) == parsed


@pytest.mark.parametrize(
    "text",
    [
        "help me",
        "access deny",
        "access deny user",
        "access block user U1",
        "access deny user <@U1>",  # a mention the adapter did not turn into an id
        "access deny user " + " ".join(f"U{n}" for n in range(21)),
        "quota user-turns",
        "quota user-turns 2000000",
        "quota channel-turns 5 there",
    ],
)
def test_bad_admin_arguments_are_a_sentence(text: str) -> None:
    with pytest.raises(InputError) as info:
        parse_admin_args(text)
    assert info.value.user_message.strip()


def test_adapters_hand_the_core_bare_ids() -> None:
    # Slack, with should_escape: true
    assert with_ids("access deny user <@U12|ann> <#C9|general> <!subteam^S3|@design>") == (
        "access deny user U12 C9 S3"
    )
    assert with_ids("quota user-turns 5 &amp; <https://x.example|x>") == (
        "quota user-turns 5 & x (https://x.example)"
    )
    # Discord: mentions in a string option
    assert ids_in("access deny user <@12> <@!34> role <@&56> channel <#78>") == (
        "access deny user 12 34 role 56 channel 78"
    )


def test_every_command_is_registered_on_every_platform() -> None:
    """The Slack manifest lists every command (`/sense-admin` with escaping, so mentions
    arrive as ids), with the scope user groups need; the shell knows them all. (Discord's
    tree is checked against the fake in test_sync_commands_and_interrupted_notice.)"""
    manifest = MANIFEST.read_text()
    listed = re.findall(r"- command: /(\S+)\n(?:\s+\w+: .*\n)*?\s+should_escape: (\w+)", manifest)
    assert sorted(name for name, _ in listed) == sorted(c.value for c in CommandName)
    assert dict(listed)["sense-admin"] == "true"
    assert "- usergroups:read" in manifest
    assert set(COMMANDS.values()) == set(CommandName)


def test_quota_refusals_say_what_ran_out_and_when_it_resets() -> None:
    from bot.quotas import Limit, refusal

    now = 20_000 * DAY + DAY - 90
    assert refusal(Limit("user-turns", 20, "settings"), "turns", now=now) == (
        "⏳ You have used all 20 turns you may start in a day here. "
        "The quota resets at 00:00 UTC (in 1m 30s)."
    )
    assert refusal(Limit("channel-runs", 1, "channel"), "runs", now=now) == (
        "⏳ This channel has used the one model or workflow run it may start in a day. "
        "The quota resets at 00:00 UTC (in 1m 30s)."
    )


def test_every_setting_is_in_env_example_and_the_operator_ones_in_the_readme() -> None:
    from bot.config import Settings

    root = MANIFEST.parent.parent.parent
    example = (root / ".env.example").read_text()
    readme = (root / "README.md").read_text()
    for name in (field.upper() for field in Settings.model_fields):
        line = re.search(rf"^(# .*\n)*{name}=", example, re.M)
        assert line, f"{name} is not in .env.example"
        if name.startswith(("ACCESS_", "QUOTA_", "USAGE_")):
            assert re.search(rf"^# .*\n(# .*\n|[A-Z_]+=.*\n)*{name}=", example, re.M), name
            assert name in readme, f"{name} is not in README.md"
