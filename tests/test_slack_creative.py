"""Creative controls, shared files, plans, channel settings and message shortcuts on Slack, end
to end: the real slack-bolt app (HTTP mode, signed deliveries from the fake Slack, which also
answers `views.open`, `files.info` and serves `url_private` with the bot token), the simulator
as each::sense and each::storage."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from bot.app import simulated
from bot.config import Settings
from simulator import Simulator, png_bytes
from tests.fakes.slack import FakeMessage, FakeSlack
from tests.test_slack_adapter import (
    MAX_UPLOAD,
    SECRET,
    Rig,
    buttons,
    close_core,
    fast_limiter,
    finished,
    make_rig,
    until,
)

PNG = png_bytes("a shared cat")


def settings(slack: FakeSlack, sim: Simulator, tmp_path: Path) -> Settings:
    base = Settings(
        _env_file=None,  # type: ignore[call-arg]
        slack_bot_token=SecretStr(slack.bot_token),
        slack_signing_secret=SecretStr(SECRET),
        slack_api_url=slack.api_url,
        database_url=f"sqlite:///{tmp_path / 'bot.db'}",
        media_max_bytes=MAX_UPLOAD,
        http_host="127.0.0.1",
        http_port=0,
    )
    return simulated(base, sim)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    async with Simulator(speed=1000) as sim, FakeSlack(admins={"UADMIN"}) as slack:
        core, http, bot = await make_rig(settings(slack, sim, tmp_path), slack, sim, fast_limiter())
        rig = Rig(slack, sim, bot, http, core.session)
        slack.connect_app(rig.url, SECRET)  # the fake delivers file shares, forms, shortcuts
        try:
            yield rig
        finally:
            await bot.stop()
            await http.stop()
            await close_core(core)


def offer(rig: Rig, root: str, channel: str = "C1") -> FakeMessage | None:
    return next(
        (
            m
            for m in rig.slack.thread(channel, root)
            if any(b["action_id"].startswith("sense:vary:") for b in buttons(m))
        ),
        None,
    )


def control(message: FakeMessage, action: str) -> dict[str, Any]:
    return next(b for b in buttons(message) if b["action_id"].startswith(action))


async def requests(rig: Rig, count: int) -> list[Any]:
    await until(lambda: len(rig.sim.requests) >= count, what=f"{count} requests")
    return list(rig.sim.requests)


async def stored(rig: Rig, url: str) -> bytes:
    assert url.startswith(rig.sim.url + "/storage/uploads/"), url
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return await response.read()


def said(rig: Rig, channel: str, root: str, text: str) -> bool:
    return any(text in m.all_text for m in rig.slack.thread(channel, root))


async def test_controls_under_an_image_and_the_remix_form(rig: Rig) -> None:
    await rig.command("/sense", "draw a cat")
    root = (await until(lambda: rig.slack.top_level("C1"), what="root"))[0].ts
    controls = await until(lambda: offer(rig, root), what="the controls")
    assert [b["text"]["text"] for b in buttons(controls)] == [
        "Variations",
        "Upscale",
        "Animate",
        "Remix",
    ]
    await until(lambda: finished(rig.slack, "C1", root), what="the answer")
    await rig.click(control(controls, "sense:vary:"), controls, user="U2")
    [first, varied] = await requests(rig, 2)
    assert varied.session_id == first.session_id
    assert varied.prompt.startswith("Make 3 variations of the reference image")
    assert len(varied.body["image_urls"]) == 1
    await until(lambda: said(rig, "C1", root, "<@U2> asked for variations"), what="who asked")

    await rig.click(control(controls, "sense:remix:"), controls, user="U2")
    view = await until(lambda: list(rig.slack.views.values()), what="views.open")
    [opened] = view
    element = opened["blocks"][0]["element"]
    assert opened["callback_id"] == "sense:remix" and element["initial_value"] == "draw a cat"
    assert len(rig.sim.requests) == 2, "opening the form runs nothing"
    await rig.slack.submit_view(opened["id"], {"prompt": "as a neon sign"}, user="U2")
    [*_, remixed] = await requests(rig, 3)
    assert remixed.prompt == "Remix the reference image: as a neon sign"
    assert remixed.session_id == first.session_id
    await until(lambda: said(rig, "C1", root, "asked for a remix: as a neon sign"), what="echo")
    # an empty form is refused in words, privately (a submission has no response_url)
    await rig.click(control(controls, "sense:remix:"), controls, user="U2")
    await until(lambda: len(rig.slack.views) == 2, what="the second form")
    second = list(rig.slack.views)[-1]
    await rig.slack.submit_view(second, {"prompt": "   "}, user="U2")
    await until(
        lambda: any("write what the remix" in r.get("text", "") for r in rig.slack.responses),
        what="the ephemeral refusal",
    )


async def test_shared_files_are_fetched_with_the_token_and_re_hosted(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    slack = rig.slack
    await rig.command("/sense", "just text")
    root = (await until(lambda: slack.top_level("C1"), what="root"))[0].ts
    await until(lambda: finished(slack, "C1", root), what="the answer")
    await slack.share_file(
        "C1", "cat.png", PNG, "image/png", text="put a hat on it", thread_ts=root
    )
    [first, second] = await requests(rig, 2)
    assert second.session_id == first.session_id and second.prompt == "put a hat on it"
    [url] = second.body["image_urls"]
    assert await stored(rig, url) == PNG
    assert slack.base_url not in str(second.body), "never a Slack file URL"

    # a stub is completed with files.info first
    await until(lambda: len(finished(slack, "C1", root)) >= 2, what="the second answer")
    await slack.share_file("C1", "dog.png", PNG, "image/png", thread_ts=root, stub_files=True)
    [*_, third] = await requests(rig, 3)
    assert slack.calls_to("files.info") and third.prompt.startswith("Here is an image")
    # without files:read Slack hands out a sign-in page: refused in words, nothing runs
    slack.files_read = False
    await slack.share_file("C1", "fish.png", PNG, "image/png", text="and this", thread_ts=root)
    await until(
        lambda: said(rig, "C1", root, "“fish.png” is not a JPEG, PNG, WebP or GIF image"),
        what="the refusal",
    )
    assert len(rig.sim.requests) == 3
    assert slack.bot_token not in caplog.text, "the token used for url_private is never logged"


async def test_a_plan_flag_and_approve_on_slack(rig: Rig) -> None:
    await rig.command("/sense", "--plan draw a castle")
    root = (await until(lambda: rig.slack.top_level("C1"), what="root"))[0]
    assert root.text.endswith("· plan first") and "--plan" not in root.text
    [planned] = await requests(rig, 1)
    assert planned.body["behavior"] == "plan" and planned.prompt == "draw a castle"
    answer = await until(
        lambda: next(
            (m for m in rig.slack.thread("C1", root.ts) if "Plan ready" in m.all_text), None
        ),
        what="the plan",
    )
    assert [b["text"]["text"] for b in buttons(answer)] == ["Approve", "Cancel"]
    await rig.click(control(answer, "sense:decline:"), answer)
    await until(lambda: said(rig, "C1", root.ts, "cancelled the plan"), what="cancelled")
    await rig.click(control(answer, "sense:approve:"), answer)
    await until(
        lambda: any("already approved or cancelled" in r["text"] for r in rig.slack.responses),
        what="the second press",
    )
    assert len(rig.sim.requests) == 1


async def test_settings_on_slack_where_no_channel_is_adult(rig: Rig) -> None:
    await rig.command("/sense-settings", "web off", user="U2")
    await until(lambda: rig.slack.responses, what="the refusal")
    assert "Only admins" in rig.slack.responses[0]["text"]
    await rig.command("/sense-settings", "web off", user="UADMIN")
    await until(lambda: len(rig.slack.responses) == 2, what="web off")
    assert rig.slack.responses[1]["response_type"] == "in_channel"
    await rig.command("/sense-settings", "safety off", user="UADMIN")
    await until(lambda: len(rig.slack.responses) == 3, what="the safety refusal")
    assert "marks as adult" in rig.slack.responses[2]["text"]
    status, body = await rig.command("/sense-settings", "loud", user="UADMIN")
    assert status == 200 and "/sense-settings status" in body  # refused in the ack itself
    await rig.command("/sense", "just text")
    root = (await until(lambda: rig.slack.top_level("C1"), what="root"))[0].ts
    [answer] = await until(lambda: finished(rig.slack, "C1", root), what="the answer")
    assert rig.sim.requests[0].body["web_search"] is False
    assert "web search off · safety checker on" in answer.all_text


async def test_message_shortcuts_open_a_thread_or_continue_the_bots(rig: Rig) -> None:
    slack = rig.slack
    await slack.share_file("C2", "cat.png", PNG, "image/png", text="my cat", user="U5")
    [shared] = slack.top_level("C2")
    await slack.message_shortcut("sense_animate", shared, user="U6")
    root = await until(
        lambda: next((m for m in slack.top_level("C2") if m.bot_id), None), what="a new thread"
    )
    assert root.text == "<@U6> asked to animate an image"
    [animated] = await requests(rig, 1)
    assert animated.prompt.startswith("Animate the reference image into a short video")
    assert await stored(rig, animated.body["image_urls"][0]) == PNG

    await slack.message_shortcut("sense_remix", shared, user="U6")
    [form] = await until(lambda: list(slack.views.values()), what="the remix form")
    await slack.submit_view(form["id"], {"prompt": "as a statue"}, user="U6")
    [_, remixed] = await requests(rig, 2)
    assert remixed.prompt == "Remix the reference image: as a statue"
    assert remixed.session_id != animated.session_id, "a new thread, a new session"

    # on the bot's own generated image in its thread: the same thread, the same session
    await rig.command("/sense", "draw a cat", channel="C3")
    own = (await until(lambda: slack.top_level("C3"), what="the root"))[0].ts
    upload = await until(
        lambda: next((m for m in slack.thread("C3", own) if m.files), None), what="the image"
    )
    await until(lambda: len(rig.sim.requests) == 3, what="its turn")
    await until(lambda: finished(slack, "C3", own), what="its answer")
    await slack.message_shortcut("sense_animate", upload, user="U6")
    [*_, made, again] = await requests(rig, 4)
    assert again.session_id == made.session_id
    assert again.prompt.startswith("Animate the reference image")
    await until(lambda: said(rig, "C3", own, "<@U6> asked to animate an image"), what="echo")


async def test_audio_and_other_files_are_uploaded_as_files(rig: Rig) -> None:
    await rig.command("/sense", "a short song, audio")
    await rig.command("/sense", "a 3d model of a chair", channel="C2")
    for channel, magic, name in (("C1", b"ID3", ".mp3"), ("C2", b"glTF", ".glb")):
        root = (await until(lambda c=channel: rig.slack.top_level(c), what="root"))[0].ts
        file = await until(
            lambda c=channel, r=root: next(
                (f for f in rig.slack.files.values() if f.thread_ts == r and f.data), None
            ),
            what=f"the {name} file",
        )
        assert file.filename.endswith(name) and file.data is not None
        assert file.data.startswith(magic)
        await until(lambda c=channel, r=root: finished(rig.slack, c, r), what="the answer")
        assert offer(rig, root, channel) is None, "controls only under images and videos"
