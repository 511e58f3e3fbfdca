"""Creative controls, reference images, plans and channel settings on Discord, end to end:
the real discord.py `DiscordBot` against the fake Discord (modals, attachment options,
signed expiring CDN links, context menus, age-restricted channels), the simulator as
each::sense and each::storage, and a core built as production builds it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.config import Settings
from simulator import Simulator, png_bytes
from tests.discord_bot import running_bot
from tests.fakes.discord import EPHEMERAL, FakeDiscord, FakeInteraction, _user
from tests.test_discord_adapter import Env

PNG = png_bytes("a person's cat")


def settings(tmp_path: Path, **overrides: Any) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        database_url=f"sqlite:///{tmp_path}/bot.db",
        media_allow_insecure=True,
        eachsense_max_retry_wait=0.05,
        eachsense_max_retries=0,
        eachsense_idle_timeout=5.0,
        **overrides,
    )


@contextlib.asynccontextmanager
async def bot_on(
    fake: FakeDiscord, sim: Simulator, tmp_path: Path, **overrides: Any
) -> AsyncIterator[Env]:
    async with running_bot(fake, sim, settings(tmp_path, **overrides)) as (core, bot):
        yield Env(fake, sim, core, bot)


@pytest.fixture
async def env(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Env]:
    overrides: dict[str, Any] = dict(getattr(request, "param", {}))
    async with FakeDiscord() as fake, Simulator(speed=1000) as sim:
        fake.adult_channel = fake.add_text_channel("adults", nsfw=True)  # type: ignore[attr-defined]
        async with bot_on(fake, sim, tmp_path, **overrides) as ready:
            yield ready


def components(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for row in message.get("components") or [] for c in row["components"]]


def controls(env: Env, thread_id: str, *, count: int = 1) -> list[dict[str, Any]] | None:
    """The messages carrying a generation's controls once `count` of them are there."""
    found = [
        m
        for m in env.bot_messages(thread_id)
        if any(c["custom_id"].startswith("sense:vary:") for c in components(m))
    ]
    return found if len(found) >= count else None


def button(message: dict[str, Any], action: str) -> str:
    return next(c["custom_id"] for c in components(message) if c["custom_id"].startswith(action))


async def turns(env: Env, count: int) -> list[Any]:
    await env.fake.wait_for(lambda: len(env.sim.requests) >= count, what=f"{count} requests")
    return list(env.sim.requests)


async def stored_image(env: Env, url: str) -> bytes:
    """What each::storage serves at a public URL the bot handed each::sense."""
    assert url.startswith(env.sim.url + "/storage/uploads/"), url
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        assert response.status == 200
        return await response.read()


# --- buttons under every generated file ------------------------------------------------


async def test_controls_under_an_image_run_as_the_next_turn_with_it_as_reference(
    env: Env,
) -> None:
    fake = env.fake
    _, thread_id = await env.sense("draw a cat")
    [offer] = await fake.wait_for(lambda: controls(env, thread_id), what="the controls")
    labels = [c["label"] for c in components(offer)]
    assert labels == ["Variations", "Upscale", "Animate", "Remix"]
    assert all(len(c["custom_id"]) <= 100 for c in components(offer))
    generated = env.sim.requests[0]
    await env.answer(thread_id)

    click = await fake.click(button(offer, "sense:vary:"), message_id=offer["id"])
    [_, varied] = await turns(env, 2)
    assert click.callbacks[0]["type"] == 6  # acknowledged at once, the turn runs after
    assert varied.session_id == generated.session_id
    assert varied.prompt.startswith("Make 3 variations of the reference image")
    [reference] = varied.body["image_urls"]
    assert reference.startswith(env.sim.url + "/media/") and reference.endswith("-0.png")
    said = [m["content"] for m in env.bot_messages(thread_id)]
    assert f"<@{fake.user_id}> asked for variations" in said

    await fake.click(button(offer, "sense:animate:"), message_id=offer["id"])
    [*_, animated] = await turns(env, 3)
    assert animated.prompt.startswith("Animate the reference image into a short video")
    assert animated.body["image_urls"] == [reference]
    # the video it made gets its own controls, without Animate (it moves already)
    offers = await fake.wait_for(
        lambda: controls(env, thread_id, count=3), within=15, what="the video's controls"
    )
    video = next(m for m in offers if "video" in m["content"])
    assert [c["label"] for c in components(video)] == ["Variations", "Upscale", "Remix"]
    await fake.click(button(video, "sense:upscale:"), message_id=video["id"])
    [*_, upscaled] = await turns(env, 4)
    assert "image_urls" not in upscaled.body  # a video is no reference image: its URL is named
    assert upscaled.prompt.startswith("Upscale the video you made (http")
    assert not fake.pings()


async def test_remix_opens_a_modal_with_the_prompt_and_runs_what_was_written(env: Env) -> None:
    fake = env.fake
    _, thread_id = await env.sense("draw a lighthouse")
    [offer] = await fake.wait_for(lambda: controls(env, thread_id), what="the controls")
    await env.answer(thread_id)
    click = await fake.click(button(offer, "sense:remix:"), message_id=offer["id"])
    await fake.wait_for(lambda: click.modal, what="the remix form")
    # the fake refuses a response after Discord's 3 s (10062), so this one was in time
    assert click.callbacks[0]["type"] == 9, "the modal is the click's own response"
    modal = click.modal
    assert modal is not None and modal["title"] == "Remix with each::sense"
    [field] = [row["components"][0] for row in modal["components"]]
    assert field["value"] == "draw a lighthouse" and field["style"] == 2
    assert len(env.sim.requests) == 1, "opening the form runs nothing"

    sent = await fake.submit_modal(click, {field["custom_id"]: "at night, in a storm"})
    [first, remixed] = await turns(env, 2)
    assert sent.callbacks[0]["type"] == 6
    assert remixed.prompt == "Remix the reference image: at night, in a storm"
    assert remixed.session_id == first.session_id and len(remixed.body["image_urls"]) == 1
    await fake.wait_for(
        lambda: any(
            m["content"] == f"<@{fake.user_id}> asked for a remix: at night, in a storm"
            for m in env.bot_messages(thread_id)
        ),
        what="who asked",
    )


async def test_controls_keep_working_after_a_restart(tmp_path: Path) -> None:
    async with FakeDiscord() as fake, Simulator(speed=1000) as sim:
        async with bot_on(fake, sim, tmp_path) as first:
            _, thread_id = await first.sense("draw a fox")
            [offer] = await fake.wait_for(lambda: controls(first, thread_id), what="controls")
            await first.answer(thread_id)
        async with bot_on(fake, sim, tmp_path) as second:  # a new process, the same database
            await fake.click(button(offer, "sense:upscale:"), message_id=offer["id"])
            [before, after] = await turns(second, 2)
            assert after.session_id == before.session_id
            assert after.prompt.startswith("Upscale the reference image")
            click = await fake.click(button(offer, "sense:remix:"), message_id=offer["id"])
            await fake.wait_for(lambda: click.modal, what="the form after the restart")
            await fake.submit_modal(click, {"prompt": "as a watercolor"})
            [*_, remixed] = await turns(second, 3)
            assert remixed.prompt == "Remix the reference image: as a watercolor"


@pytest.mark.parametrize("env", [{"max_turns_per_user": 1}], indirect=True)
async def test_controls_respect_the_persons_cap_and_their_thread(env: Env) -> None:
    fake = env.fake
    _, thread_id = await env.sense("draw a cat")
    [offer] = await fake.wait_for(lambda: controls(env, thread_id), what="the controls")
    await env.answer(thread_id)
    _, stalled = await env.sense("fail:stall")
    await turns(env, 2)
    await fake.click(button(offer, "sense:vary:"), message_id=offer["id"])
    await fake.wait_for(
        lambda: any(
            "You already have 1 request running" in m["content"]
            for m in env.bot_messages(thread_id)
        ),
        what="the cap's sentence",
    )
    assert len(env.sim.requests) == 2
    # a control only works in the thread its file was made in
    stray = await fake.click(
        button(offer, "sense:vary:"), message_id=env.bot_messages(stalled)[0]["id"]
    )
    await fake.wait_for(lambda: stray.followups, what="the refusal")
    assert stray.followups[0]["content"] == "That button belongs to another thread."
    assert stray.followups[0]["flags"] & EPHEMERAL
    unknown = await fake.click("sense:vary:0123456789abcdef0123", message_id=offer["id"])
    await fake.wait_for(lambda: unknown.followups, what="the unknown file's sentence")
    assert "can't find that file" in unknown.followups[0]["content"]


# --- reference images --------------------------------------------------------------------


async def test_an_image_option_is_re_hosted_and_never_handed_on_as_a_cdn_link(env: Env) -> None:
    fake = env.fake
    inter = await fake.slash(
        "sense",
        {"prompt": "make this cat wear a hat"},
        attachments={"image": ("cat.png", PNG, "image/png")},
    )
    [request] = await turns(env, 1)
    [url] = request.body["image_urls"]
    assert await stored_image(env, url) == PNG
    assert f"127.0.0.1:{fake.port}" not in str(request.body)
    fake.expire_attachments()  # the CDN link dies; the re-hosted copy does not
    assert await stored_image(env, url) == PNG
    assert inter.callbacks[0]["type"] == 5


async def test_images_in_a_thread_reply_are_checked_and_re_hosted(env: Env) -> None:
    fake = env.fake
    _, thread_id = await env.sense("just text")
    await env.answer(thread_id)
    jpeg = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(64)
    await fake.say(
        thread_id,
        "combine these",
        attachments=[("a.png", PNG, "image/png"), ("b.jpg", jpeg, "image/jpeg")],
    )
    [first, combined] = await turns(env, 2)
    assert combined.session_id == first.session_id and combined.prompt == "combine these"
    urls = combined.body["image_urls"]
    assert [await stored_image(env, u) for u in urls] == [PNG, jpeg]

    # an image alone is a turn too; a document is refused in the thread, in words
    await fake.say(thread_id, "", attachments=[("c.png", PNG, "image/png")])
    [*_, alone] = await turns(env, 3)
    assert alone.prompt == "Here is an image for you to use as a reference."
    await env.answer(thread_id, count=3)
    await fake.say(
        thread_id, "read this", attachments=[("notes.pdf", b"%PDF-1.7", "application/pdf")]
    )
    await fake.wait_for(
        lambda: any(
            "“notes.pdf” is not a JPEG" in m["content"] for m in env.bot_messages(thread_id)
        ),
        what="the refusal",
    )
    five = [(f"{n}.png", PNG, "image/png") for n in range(5)]
    await fake.say(thread_id, "all of these", attachments=five)
    await fake.wait_for(
        lambda: any("at most 4" in m["content"] for m in env.bot_messages(thread_id)),
        what="the count's refusal",
    )
    assert len(env.sim.requests) == 3


async def test_a_bad_image_option_is_refused_privately_before_any_thread(env: Env) -> None:
    fake = env.fake
    inter = await fake.slash(
        "sense",
        {"prompt": "use this"},
        attachments={"image": ("notes.pdf", b"%PDF", "application/pdf")},
    )
    await fake.wait_for(lambda: inter.callbacks, what="the refusal")
    reply = inter.callbacks[0]
    assert reply["type"] == 4 and reply["data"]["flags"] & EPHEMERAL
    assert "“notes.pdf” is not a JPEG, PNG, WebP or GIF image" in reply["data"]["content"]
    # declared an image, but the bytes are not: found after the download, still privately
    fake_png = ("cat.png", b"<html>nope</html>", "image/png")
    late = await fake.slash("sense", {"prompt": "use this"}, attachments={"image": fake_png})
    await fake.wait_for(lambda: late.followups or _edited(fake, late), what="the late refusal")
    assert "is not a JPEG" in (_edited(fake, late) or late.followups[0]["content"])
    assert late.callbacks[0]["type"] == 5 and late.callbacks[0]["data"]["flags"] & EPHEMERAL
    assert not fake.threads() and not env.sim.requests


def _edited(fake: FakeDiscord, inter: FakeInteraction) -> str:
    original = fake.messages.get(inter.original_id or "")
    return str(original["content"]) if original and original.get("edits") else ""


# --- plans -------------------------------------------------------------------------------


async def test_a_plan_is_shown_with_approve_and_cancel_and_approve_runs_it(env: Env) -> None:
    fake = env.fake
    inter = await fake.slash("sense", {"prompt": "draw a castle", "plan": True})
    await fake.wait_for(lambda: inter.original_id, what="the thread")
    [planned] = await turns(env, 1)
    assert planned.body["behavior"] == "plan"
    thread_id = fake.messages[inter.original_id or ""]["content"].split("<#")[1].rstrip(">")
    assert fake.messages[thread_id]["content"].endswith("· plan first")
    answer = await fake.wait_for(
        lambda: next(
            (m for m in env.bot_messages(thread_id) if "Plan ready" in m["content"]), None
        ),
        what="the plan",
    )
    assert "Estimated cost" in answer["content"] and "web search on" in answer["content"]
    assert [c["label"] for c in components(answer)] == ["Approve", "Cancel"]
    assert not controls(env, thread_id), "a plan generated nothing"

    approve = button(answer, "sense:approve:")
    someone = fake.new_id()
    fake.users[someone] = _user(someone, "bob")
    other = await fake.click(approve, message_id=answer["id"], user_id=someone)
    await fake.wait_for(lambda: other.followups, what="the refusal")
    assert "Only the person who asked" in other.followups[0]["content"]
    await fake.click(approve, message_id=answer["id"])
    [_, ran] = await turns(env, 2)
    assert ran.body["behavior"] == "agent" and ran.session_id == planned.session_id
    assert ran.prompt.endswith("for this request: draw a castle")
    again = await fake.click(button(answer, "sense:decline:"), message_id=answer["id"])
    await fake.wait_for(lambda: again.followups, what="the second press")
    assert "already approved or cancelled" in again.followups[0]["content"]
    await fake.wait_for(lambda: controls(env, thread_id), what="the approved run's image")


# --- channel settings --------------------------------------------------------------------


async def test_web_search_and_the_safety_checker_per_channel(env: Env) -> None:
    fake = env.fake
    adult: str = fake.adult_channel  # type: ignore[attr-defined]
    refused = await fake.slash("sense-settings", {"setting": "web", "value": "off"})
    await fake.wait_for(lambda: refused.callbacks, what="the refusal")
    assert "Only admins" in refused.callbacks[0]["data"]["content"]

    web = await fake.slash(
        "sense-settings", {"setting": "web", "value": "off"}, user_id=fake.admin_id
    )
    await fake.wait_for(lambda: web.callbacks, what="web off")
    assert "web search **off**" in web.callbacks[0]["data"]["content"]
    assert not (web.callbacks[0]["data"].get("flags") or 0) & EPHEMERAL

    safety = await fake.slash(
        "sense-settings", {"setting": "safety", "value": "off"}, user_id=fake.admin_id
    )
    await fake.wait_for(lambda: safety.callbacks, what="the safety refusal")
    assert (
        "only be turned off in a channel the platform marks as adult"
        in (safety.callbacks[0]["data"]["content"])
    )
    allowed = await fake.slash(
        "sense-settings",
        {"setting": "safety", "value": "off"},
        user_id=fake.admin_id,
        channel_id=adult,
    )
    await fake.wait_for(lambda: allowed.callbacks, what="safety off")
    assert "safety checker **off**" in allowed.callbacks[0]["data"]["content"]

    _, thread_id = await env.sense("just text")
    messages = await env.answer(thread_id)
    [request] = env.sim.requests
    assert request.body["web_search"] is False and "enable_safety_checker" not in request.body
    assert "max mode · web search off · safety checker on" in messages[0]["content"]

    _, adult_thread = await env.sense("just text", channel_id=adult)
    messages = await env.answer(adult_thread)
    assert env.sim.requests[1].body["enable_safety_checker"] is False
    assert "web_search" not in env.sim.requests[1].body
    assert "web search on · safety checker off" in messages[0]["content"]
    # a follow-up in that thread keeps the channel's settings
    await fake.say(adult_thread, "more, just text")
    [*_, follow] = await turns(env, 3)
    assert follow.body["enable_safety_checker"] is False

    status = await fake.slash("sense-settings", {})
    await fake.wait_for(lambda: status.callbacks, what="the status")
    assert status.callbacks[0]["data"]["content"] == (
        "In this channel: max mode, web search **off**, safety checker on."
    )


# --- audio and other outputs -------------------------------------------------------------


async def test_audio_is_uploaded_to_play_and_other_files_to_download(env: Env) -> None:
    fake = env.fake

    def uploads(thread_id: str) -> list[dict[str, Any]]:
        return [a for m in env.bot_messages(thread_id) for a in m["attachments"]]

    _, song = await env.sense("a short song, audio")
    [audio] = await fake.wait_for(lambda: uploads(song), what="the audio")
    assert audio["filename"].endswith(".mp3") and audio["content_type"] == "audio/mpeg"
    sent = next(f for c in fake.calls_to("POST", rf"/channels/{song}/messages$") for f in c.files)
    assert sent.data.startswith(b"ID3")
    messages = await env.answer(song)
    assert "1 file" in messages[0]["content"]
    assert not controls(env, song), "no image or video controls under audio"

    _, model = await env.sense("a 3d model of a chair")
    [glb] = await fake.wait_for(lambda: uploads(model), what="the 3D file")
    assert glb["filename"].endswith(".glb")
    upload = next(
        f for c in fake.calls_to("POST", rf"/channels/{model}/messages$") for f in c.files
    )
    assert upload.data.startswith(b"glTF")
    await env.answer(model)
    assert not controls(env, model)


# --- message context menus ---------------------------------------------------------------


async def test_context_menus_open_a_thread_or_continue_the_bots(env: Env) -> None:
    fake = env.fake
    posted = await fake.say(fake.channel_id, "my cat", attachments=[("cat.png", PNG, "image/png")])
    animate = await fake.message_command("Animate", posted)
    [request] = await turns(env, 1)
    assert request.prompt.startswith("Animate the reference image into a short video")
    assert await stored_image(env, request.body["image_urls"][0]) == PNG
    assert animate.callbacks[0]["type"] == 5 and animate.callbacks[0]["data"]["flags"] & EPHEMERAL
    [thread] = [t for t in fake.threads() if t["name"] == "Animate an image"]
    assert fake.messages[thread["id"]]["content"] == f"<@{fake.user_id}> asked to animate an image"

    remix = await fake.message_command("Remix with each::sense", posted)
    await fake.wait_for(lambda: remix.modal, what="the remix form")
    assert remix.callbacks[0]["type"] == 9 and len(env.sim.requests) == 1
    await fake.submit_modal(remix, {"prompt": "as a marble statue"})
    [_, remixed] = await turns(env, 2)
    assert remixed.prompt == "Remix the reference image: as a marble statue"
    assert remixed.session_id != request.session_id
    assert await stored_image(env, remixed.body["image_urls"][0]) == PNG

    # the bot's own image in its thread: the same thread and session
    _, own = await env.sense("draw a dog")
    image = await fake.wait_for(
        lambda: next((m for m in env.bot_messages(own) if m["attachments"]), None), what="image"
    )
    await env.answer(own)
    drew = env.sim.requests[2]
    await fake.message_command("Animate", image["id"])
    [*_, again] = await turns(env, 4)
    assert again.session_id == drew.session_id

    # a message without an image: said privately, nothing runs
    plain = await fake.say(fake.channel_id, "no picture here")
    none = await fake.message_command("Animate", plain)
    await fake.wait_for(lambda: none.followups or _edited(fake, none), what="the sentence")
    assert "has no image I can use" in (_edited(fake, none) or none.followups[0]["content"])
    assert len(env.sim.requests) == 4
