"""The sentences `bot.errors` builds from what the services send."""

from __future__ import annotations

import pytest

from bot.errors import balance_message, sentence


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  too   many\nruns  ", "too many runs."),
        ("Done!", "Done!"),
        ("", None),
        ("   ", None),
        (None, None),
        ({"not": "text"}, None),
        ("x" * 400, "x" * 299 + "…"),
    ],
)
def test_sentence(text: object, expected: str | None) -> None:
    assert sentence(text) == expected


@pytest.mark.parametrize(
    ("details", "expected"),
    [
        (
            {"current_balance": 0.5, "required_balance": 2, "top_up_url": "https://x.example/t"},
            "The Eachlabs account is out of credit (balance $0.50; this needs $2.00). "
            "An admin can top it up here: https://x.example/t",
        ),
        (
            {"required_estimate": "1.234"},
            "The Eachlabs account is out of credit (this needs about $1.23). "
            "An admin needs to top it up.",
        ),
        (
            {"current_balance": "$1,000.00 credit"},
            "The Eachlabs account is out of credit (balance $1,000.00 credit). "
            "An admin needs to top it up.",
        ),
        (
            {"top_up_url": "https://x.example/t"},
            "The Eachlabs account is out of credit. An admin can top it up here: "
            "https://x.example/t",
        ),
        # a link that is not a plain http(s) URL is not shown
        (
            {"current_balance": 0, "top_up_url": "javascript:alert(1)"},
            "The Eachlabs account is out of credit (balance $0.00). An admin needs to top it up.",
        ),
        (
            {"current_balance": 0, "top_up_url": "https://x.example/a b"},
            "The Eachlabs account is out of credit (balance $0.00). An admin needs to top it up.",
        ),
        ({"current_balance": True, "top_up_url": 7}, None),
        ({"other": 1}, None),
        ({}, None),
        (None, None),
        ("Balance too low", "Payment required by Eachlabs: Balance too low."),
        ("", None),
    ],
)
def test_balance_message(details: object, expected: str | None) -> None:
    assert balance_message(details) == expected
