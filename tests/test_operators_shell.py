"""Usage, quotas and access in the shell: the console adapter through the same command flow
(`/usage`, `/admin`), on a core built as production builds it. The console's user runs the
bot, so is an admin: never refused, and shown everyone's use."""

from __future__ import annotations

import io

from adapters.shell import Shell
from bot.app import Core


async def test_shell_usage_and_admin(core: Core) -> None:
    out = io.StringIO()
    shell = Shell(core, out=out)

    async def said(line: str) -> str:
        start = len(out.getvalue())
        assert await shell.handle_line(line)
        return out.getvalue()[start:]

    first = await said("/usage")
    assert "Your each::sense usage" in first and "Today: nothing yet" in first

    await said("just text please")
    await said("/predict flux-schnell a lighthouse")
    usage = await said("/usage")
    assert "Today: 1 turn · 1 run, $0.03" in usage
    assert "Everyone here" in usage and "1. `local`: 1 turn · 1 run, $0.03" in usage

    assert "each person may start 1 turn a day" in await said("/admin quota user-turns 1")
    assert "Turns per person: 1 a day (set for the workspace)" in await said("/admin quota")
    assert "Done: denied people `local`" in await said("/admin access deny user local")
    # an admin is never locked out, nor held to a quota
    await said("a second message, just text")
    await said("/sense and a third, just text")
    assert "Today: 3 turns · 1 run, $0.03" in await said("/usage")

    assert "Unknown option `bogus`" in await said("/admin bogus")
    helped = await said("/help")
    assert "/usage" in helped and "/admin access|quota" in helped
    assert "Traceback" not in out.getvalue()
