"""Secrets never reach logs, errors or messages."""

from __future__ import annotations

import logging

from bot.app import build_core, close_core, simulated
from bot.logs import RedactSecrets
from bot.models import ThreadKey, Turn
from simulator import Simulator
from tests.conftest import make_settings
from tests.util import RecordingSurface

KEY = "esk-very-secret-key-123456"


def test_redaction_filter_scrubs_messages_args_and_tracebacks() -> None:
    filt = RedactSecrets([KEY, "xoxb-abc-def", ""])
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "sent %s to %s", (KEY, "x"), None)
    assert filt.filter(record)
    assert KEY not in record.getMessage() and "[redacted]" in record.getMessage()
    try:
        raise ValueError(f"bad header Bearer {KEY}")
    except ValueError:
        import sys

        err = logging.LogRecord("x", logging.ERROR, __file__, 1, "boom", (), sys.exc_info())
    filt.filter(err)
    assert err.exc_text and KEY not in err.exc_text


async def test_a_rejected_key_is_never_echoed(caplog) -> None:
    caplog.set_level(logging.DEBUG)
    async with Simulator(speed=1000, api_key="the-right-key") as sim:
        settings = simulated(make_settings(eachsense_api_key=KEY), sim)
        core = await build_core(settings)
        try:
            surface = RecordingSurface()
            await core.conversations.run(
                Turn(ThreadKey("shell", "w", "c", "t"), "u", "hello", new_thread=True), surface
            )
        finally:
            await close_core(core)
    shown = surface.all_text()
    assert "API key was rejected" in shown
    assert KEY not in shown
    assert KEY not in caplog.text
    assert KEY not in repr(settings)


def test_json_log_lines_are_parseable_and_still_redacted(capsys) -> None:
    import json

    from bot.logs import setup_logging

    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    setup_logging("INFO", [KEY], json_lines=True)
    try:
        logging.getLogger("bot.test").info("calling with %s", KEY)
        entry = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
        assert entry["level"] == "INFO" and entry["logger"] == "bot.test"
        assert KEY not in entry["message"] and "[redacted]" in entry["message"]
    finally:
        root.handlers[:], root.level = saved, level
