"""The shell's creative controls, reference images and plans, through the whole command flow
against the simulator (as each::sense and each::storage): the same core as every platform,
typed instead of clicked."""

from __future__ import annotations

import io
from pathlib import Path

import aiohttp

from adapters.shell import Shell
from bot.app import Core
from bot.models import ButtonAction, TurnRecord
from simulator import Simulator, png_bytes

PNG = png_bytes("a local cat")


async def test_an_image_attached_with_a_command_goes_with_the_next_message(
    core: Core, sim: Simulator, tmp_path: Path
) -> None:
    out = io.StringIO()
    shell = Shell(core, out=out)
    picture = tmp_path / "cat.png"
    picture.write_bytes(PNG)
    await shell.handle_line(f"/image {picture}")
    assert "Attached cat.png: it goes with your next message." in out.getvalue()
    await shell.handle_line("/image /no/such/file.png")
    assert "There is no file at /no/such/file.png." in out.getvalue()
    await shell.handle_line("give it a hat, just text")
    [request] = sim.requests
    [url] = request.body["image_urls"]
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        assert await response.read() == PNG
    await shell.handle_line("and now without, just text")
    assert "image_urls" not in sim.requests[1].body, "an image goes with one message only"

    notes = tmp_path / "notes.txt"
    notes.write_text("not an image")
    await shell.handle_line(f"/image {notes}")
    await shell.handle_line("use it")
    assert "“notes.txt” is not a JPEG, PNG, WebP or GIF image" in out.getvalue()
    assert len(sim.requests) == 2


async def test_the_controls_are_commands_on_the_newest_file(core: Core, sim: Simulator) -> None:
    out = io.StringIO()
    shell = Shell(core, out=out)
    await shell.handle_line("/variations")
    assert "There is no file to do that with here yet." in out.getvalue()
    await shell.handle_line("draw a cat")
    assert "/variations, /upscale, /animate, /remix" in out.getvalue()
    await shell.handle_line("/variations")
    first, varied = sim.requests
    assert varied.prompt.startswith("Make 3 variations of the reference image")
    assert varied.session_id == first.session_id and len(varied.body["image_urls"]) == 1
    await shell.handle_line("/remix")  # a variation's prompt has none of the person's words
    assert "Type `/remix WHAT TO CHANGE` to remix it." in out.getvalue()
    await shell.handle_line("/remix as a neon sign")
    assert sim.requests[-1].prompt == "Remix the reference image: as a neon sign"
    assert "asked for a remix: as a neon sign" in out.getvalue()
    await shell.handle_line("/remix")  # a remix's: what was asked for
    assert "remix it (it was: as a neon sign)." in out.getvalue()


async def test_a_plan_then_approve(core: Core, sim: Simulator) -> None:
    out = io.StringIO()
    shell = Shell(core, out=out)
    await shell.handle_line("/plan draw a castle")
    [planned] = sim.requests
    assert planned.body["behavior"] == "plan" and planned.prompt == "draw a castle"
    text = out.getvalue()
    assert "Estimated cost" in text and "/approve, /decline" in text
    assert "Plan ready" in text and "Generated:" not in text
    await shell.handle_line("/approve")
    ran = sim.requests[1]
    assert ran.body["behavior"] == "agent" and ran.session_id == planned.session_id
    assert "Generated:" in out.getvalue()
    await shell.handle_line("/decline")
    assert "There is no plan to do that with here yet." in out.getvalue()


async def test_regenerate_sends_the_same_request_again(core: Core, sim: Simulator) -> None:
    """A control's reference image and a plan's behavior are stored with the turn, so
    Regenerate (and Retry after a restart) never drops the image or runs an unapproved plan."""
    out = io.StringIO()
    shell = Shell(core, out=out)
    await shell.handle_line("/plan draw a castle")
    plan_turn = shell._surface.controls[ButtonAction.APPROVE]
    await shell.handle_line("draw a cat")
    await shell.handle_line("/variations")
    varied = sim.requests[-1]
    [turn_id] = [r.id for r in await _turns(core) if r.prompt.startswith("Make 3 variations")]
    surface = shell.surface(shell.key)
    await core.conversations.regenerate(turn_id, user_id="local", surface=surface)
    again = sim.requests[-1]
    assert again.prompt == varied.prompt and again.body["image_urls"] == varied.body["image_urls"]
    await core.conversations.regenerate(plan_turn, user_id="local", surface=surface)
    assert sim.requests[-1].body["behavior"] == "plan"


async def _turns(core: Core) -> list[TurnRecord]:
    async with core.store._conn.execute("SELECT id FROM turns") as cursor:  # type: ignore[attr-defined]
        ids = [row[0] for row in await cursor.fetchall()]
    found = [await core.store.get_turn(turn_id) for turn_id in ids]
    return [turn for turn in found if turn is not None]
