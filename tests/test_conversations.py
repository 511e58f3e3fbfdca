"""The use case end to end: real client, real simulator, real SQLite store and media fetcher;
only the adapter side is a recording surface."""

from __future__ import annotations

import asyncio

from bot.app import Core, build_core, close_core, simulated
from bot.models import ButtonAction, ChannelKey, ThreadKey, Turn, TurnRecord, TurnStatus
from simulator import Simulator
from tests.conftest import make_settings
from tests.util import RecordingSurface, wait_until

KEY = ThreadKey("slack", "T1", "C1", "100.1")
OTHER = ThreadKey("slack", "T1", "C1", "200.2")


def chat_bodies(sim: Simulator) -> list[dict]:
    return [r.json for r in sim.requests]


async def test_new_thread_then_follow_up_share_a_session(core: Core, sim: Simulator) -> None:
    surface = RecordingSurface()
    await core.conversations.run(Turn(KEY, "U1", "draw a red fox", new_thread=True), surface)
    await core.conversations.run(Turn(KEY, "U1", "make it blue"), surface)
    await core.conversations.run(Turn(OTHER, "U1", "a cat", new_thread=True), surface)
    first, second, third = chat_bodies(sim)
    assert first["session_id"] == second["session_id"]
    assert third["session_id"] != first["session_id"]
    assert first["messages"] == [{"role": "user", "content": "draw a red fox"}]
    assert await core.conversations.is_bot_thread(KEY)
    assert not await core.conversations.is_bot_thread(ThreadKey("slack", "T1", "C1", "9"))


async def test_answer_text_and_media_reach_the_surface(core: Core, sim: Simulator) -> None:
    surface = RecordingSurface()
    await core.conversations.run(Turn(KEY, "U1", "draw a red fox", new_thread=True), surface)
    assert len(surface.uploads) == 1
    upload = surface.uploads[0]
    assert upload.kind == "image"
    async with core.session.get(upload.url) as resp:
        assert await resp.read() == upload.data
    final = surface.messages[surface.finals[-1]]
    assert "max mode" in final.status
    assert any(b.action is ButtonAction.REGENERATE for b in final.buttons)


async def test_eco_setting_decides_the_mode_of_the_next_turn(core: Core, sim: Simulator) -> None:
    surface = RecordingSurface()
    conv = core.conversations
    await conv.run(Turn(KEY, "U1", "just text please", new_thread=True), surface)
    answer = await conv.eco(KEY.channel_key, "on", user_id="U1", is_admin=True)
    assert "on" in answer
    await conv.run(Turn(KEY, "U1", "just text again"), surface)
    assert [b["mode"] for b in chat_bodies(sim)] == ["max", "eco"]
    status = await conv.eco(KEY.channel_key, "status", user_id="U2", is_admin=False)
    assert "Eco mode is **on**" in status


async def test_eco_toggle_refused_for_non_admins_and_unknown_options(core: Core) -> None:
    conv = core.conversations
    refusal = await conv.eco(KEY.channel_key, "on", user_id="U2", is_admin=False)
    assert "Only admins" in refusal
    assert not (await core.store.get_channel(KEY.channel_key)).eco
    assert "Unknown option" in await conv.eco(KEY.channel_key, "maybe", user_id="U2", is_admin=True)


async def test_bot_admins_setting_allows_eco_toggle(sim: Simulator) -> None:
    core = await build_core(simulated(make_settings(bot_admins="U9"), sim))
    try:
        answer = await core.conversations.eco(
            ChannelKey("slack", "T1", "C9"), "on", user_id="U9", is_admin=False
        )
        assert answer.startswith("Done")
    finally:
        await close_core(core)


async def test_thread_mode_override_beats_channel_setting(core: Core, sim: Simulator) -> None:
    surface = RecordingSurface()
    await core.conversations.run(Turn(KEY, "U1", "just text", new_thread=True, mode="eco"), surface)
    await core.conversations.run(Turn(KEY, "U1", "more text"), surface)
    assert [b["mode"] for b in chat_bodies(sim)] == ["eco", "eco"]


async def test_second_message_waits_its_turn_and_is_told(core: Core, sim: Simulator) -> None:
    surface = RecordingSurface()
    conv = core.conversations
    await conv.run(Turn(KEY, "U1", "just text", new_thread=True), surface)
    first = asyncio.create_task(conv.run(Turn(KEY, "U1", "fail:stall"), surface))
    await wait_until(lambda: conv.running_turns == 1)
    second = asyncio.create_task(conv.run(Turn(KEY, "U2", "just text after"), surface))
    await wait_until(lambda: any("Queued" in v.text for v in surface.messages.values()))
    assert len(sim.requests) == 2  # the queued turn has not been sent
    turn_id = next(iter(conv._running))
    assert await conv.stop(turn_id, user_id="U1") == "Stopping…"
    await asyncio.wait_for(asyncio.gather(first, second), 10)
    assert len(sim.requests) == 3
    assert "SESSION_BUSY" not in surface.all_text()
    assert any("Stopped" in v.status for v in surface.messages.values())


async def test_stop_by_someone_else_is_refused(core: Core) -> None:
    surface = RecordingSurface()
    conv = core.conversations
    task = asyncio.create_task(conv.run(Turn(KEY, "U1", "fail:stall", new_thread=True), surface))
    await wait_until(lambda: conv.running_turns == 1)
    turn_id = next(iter(conv._running))
    assert "Only the person" in await conv.stop(turn_id, user_id="U2")
    await conv.stop(turn_id, user_id="U1")
    await asyncio.wait_for(task, 10)
    record = await core.store.get_turn(turn_id)
    assert record is not None and record.status is TurnStatus.CANCELLED
    assert "already finished" in await conv.stop(turn_id, user_id="U1")


async def test_bad_prompts_get_a_sentence_and_send_nothing(core: Core, sim: Simulator) -> None:
    surface = RecordingSurface()
    await core.conversations.run(Turn(KEY, "U1", "   ", new_thread=True), surface)
    await core.conversations.run(Turn(KEY, "U1", "x" * 10_001, new_thread=True), surface)
    texts = [v.text for v in surface.messages.values()]
    assert "write a prompt" in texts[0]
    assert "10,001 characters" in texts[1] and "10,000" in texts[1]  # the default limit
    assert sim.requests == []


async def test_redelivered_event_never_generates_twice(core: Core, sim: Simulator) -> None:
    surface = RecordingSurface()
    turn = Turn(KEY, "U1", "draw a fox", new_thread=True, event_id="Ev1")
    await asyncio.gather(*(core.conversations.run(turn, surface) for _ in range(3)))
    await core.conversations.run(turn, surface)
    assert len(sim.requests) == 1
    assert len(surface.uploads) == 1


async def test_per_person_cap(sim: Simulator) -> None:
    core = await build_core(simulated(make_settings(max_turns_per_user=1), sim))
    conv = core.conversations
    try:
        surface = RecordingSurface()
        task = asyncio.create_task(
            conv.run(Turn(KEY, "U1", "fail:stall", new_thread=True), surface)
        )
        await wait_until(lambda: conv.running_turns == 1)
        await conv.run(Turn(OTHER, "U1", "another", new_thread=True), surface)
        assert any("already have 1 request" in v.text for v in surface.messages.values())
        await conv.stop(next(iter(conv._running)), user_id="U1")
        await asyncio.wait_for(task, 10)
    finally:
        await close_core(core)


async def test_global_cap_queues_and_says_so(sim: Simulator) -> None:
    core = await build_core(simulated(make_settings(max_concurrent_turns=1), sim))
    conv = core.conversations
    try:
        surface = RecordingSurface()
        task = asyncio.create_task(
            conv.run(Turn(KEY, "U1", "fail:stall", new_thread=True), surface)
        )
        await wait_until(lambda: conv.running_turns == 1)
        other = asyncio.create_task(
            conv.run(Turn(OTHER, "U2", "just text", new_thread=True), surface)
        )
        await wait_until(lambda: any("Many requests" in v.text for v in surface.messages.values()))
        assert len(sim.requests) == 1
        await conv.stop(next(iter(conv._running)), user_id="U1")
        await asyncio.wait_for(asyncio.gather(task, other), 10)
        assert len(sim.requests) == 2
    finally:
        await close_core(core)


async def test_failures_are_sentences_and_the_thread_stays_usable(
    core: Core, sim: Simulator
) -> None:
    surface = RecordingSurface()
    conv = core.conversations
    await conv.run(Turn(KEY, "U1", "just text", new_thread=True), surface)
    session = (await core.store.get_thread(KEY)).session_id  # type: ignore[union-attr]
    for prompt, words in [
        ("fail:401", "API key was rejected"),
        ("fail:error please", "each::sense"),
        ("fail:cut please", "dropped"),
        ("fail:balance", "out of credit"),
    ]:
        await conv.run(Turn(KEY, "U1", prompt), surface)
        final = surface.messages[surface.finals[-1]]
        assert words in final.status, (prompt, final.status)
        assert "Traceback" not in surface.all_text()
    await conv.run(Turn(KEY, "U1", "just text again"), surface)
    assert "Done" in surface.messages[surface.finals[-1]].status
    assert (await core.store.get_thread(KEY)).session_id == session  # type: ignore[union-attr]
    assert {r.json["session_id"] for r in sim.requests} == {session}


async def test_agent_error_details_reach_the_thread(core: Core, sim: Simulator) -> None:
    surface = RecordingSurface()
    conv = core.conversations
    for prompt, words in [
        (
            "fail:balance",
            "(balance $0.42; this needs about $1.20). "
            f"An admin can top it up here: {sim.url}/top-up",
        ),
        ("fail:timeout", "each::sense ran out of time on this request"),
        ("fail:filter", "each::sense's content filter blocked this request"),
    ]:
        await conv.run(Turn(KEY, "U1", prompt, new_thread=True), surface)
        final = surface.messages[surface.finals[-1]]
        assert words in final.status, (prompt, final.status)


async def test_too_big_media_is_posted_as_a_link(core: Core) -> None:
    surface = RecordingSurface()
    await core.conversations.run(Turn(KEY, "U1", "fail:bigmedia", new_thread=True), surface)
    assert surface.uploads == []
    (url, _kind, reason) = surface.links[0]
    assert url.startswith("http") and "too big" in reason


async def test_insecure_media_is_refused_without_the_setting(sim: Simulator) -> None:
    settings = simulated(make_settings(), sim).model_copy(update={"media_allow_insecure": False})
    core = await build_core(settings)
    try:
        surface = RecordingSurface()
        await core.conversations.run(Turn(KEY, "U1", "draw a fox", new_thread=True), surface)
        assert surface.uploads == []
        assert "https" in surface.links[0][2]
    finally:
        await close_core(core)


async def test_regenerate_reruns_the_prompt_in_the_same_session(core: Core, sim: Simulator) -> None:
    surface = RecordingSurface()
    await core.conversations.run(Turn(KEY, "U1", "draw a fox", new_thread=True), surface)
    final = surface.messages[surface.finals[-1]]
    regen = next(b for b in final.buttons if b.action is ButtonAction.REGENERATE)
    await core.conversations.regenerate(regen.value, user_id="U2", surface=surface)
    first, second = chat_bodies(sim)
    assert first["session_id"] == second["session_id"]
    assert second["messages"][0]["content"] == "draw a fox"
    await core.conversations.regenerate("nope", user_id="U2", surface=surface)
    assert "can't find" in list(surface.messages.values())[-1].text


async def test_turn_cut_by_a_crash_is_reported_at_startup(sim: Simulator, tmp_path) -> None:
    settings = simulated(make_settings(database_url=f"sqlite:///{tmp_path}/bot.db"), sim)
    core = await build_core(settings)
    await core.store.begin_turn(
        TurnRecord("t1", KEY, "U1", "a fox", TurnStatus.RUNNING, started_at=1.0)
    )
    await close_core(core)
    core = await build_core(settings)
    try:
        interrupted = await core.conversations.recover()
        assert [t.id for t in interrupted] == ["t1"]
        assert await core.conversations.recover() == []
        turn = await core.store.get_turn("t1")
        assert turn is not None and turn.status is TurnStatus.INTERRUPTED
    finally:
        await close_core(core)


async def test_idle_threads_leave_no_per_thread_state(core: Core) -> None:
    surface = RecordingSurface()
    for n in range(20):
        key = ThreadKey("slack", "T1", "C1", str(n))
        await core.conversations.run(Turn(key, "U1", "just text", new_thread=True), surface)
    assert core.conversations._slots == {}
    assert core.conversations._per_user == {}
    assert core.conversations._running == {}


async def test_a_store_failure_before_the_answer_is_told_not_silent(
    core: Core, sim: Simulator
) -> None:
    surface = RecordingSurface()
    await core.store.close()  # every store call now fails, as a locked or lost database does
    await core.conversations.run(Turn(KEY, "U1", "draw a red fox", new_thread=True), surface)
    assert [v.text for v in surface.messages.values()] == [
        "⚠️ Something went wrong. Please try again."
    ]
    assert not sim.requests


async def test_a_turn_past_its_deadline_is_stopped_with_a_sentence(sim: Simulator) -> None:
    core = await build_core(simulated(make_settings(max_turn_seconds=0.3), sim))
    try:
        surface = RecordingSurface()
        await core.conversations.run(Turn(KEY, "U1", "fail:stall", new_thread=True), surface)
        assert "took longer than 1 minute," in surface.all_text()
        assert core.conversations.running_turns == 0
    finally:
        await close_core(core)


async def test_a_drain_hands_back_a_turn_that_outlives_the_grace(sim: Simulator) -> None:
    """SIGTERM: the live answer gets a final edit saying so, with Regenerate and no Stop,
    the turn is stored as interrupted, and new messages are refused with a sentence."""
    core = await build_core(simulated(make_settings(), sim))
    try:
        surface = RecordingSurface()
        turn = asyncio.create_task(
            core.conversations.run(Turn(KEY, "U1", "fail:stall", new_thread=True), surface)
        )
        await wait_until(lambda: core.conversations.running_turns == 1)
        await core.conversations.drain(0.05)
        await turn
        final = surface.messages[surface.finals[-1]]
        assert "Interrupted by a restart" in final.status
        assert [b.action for b in final.buttons] == [ButtonAction.REGENERATE]
        [record] = [await core.store.get_turn(b.value) for b in final.buttons]
        assert record is not None and record.status is TurnStatus.INTERRUPTED
        late = RecordingSurface()
        await core.conversations.run(Turn(OTHER, "U2", "hello", new_thread=True), late)
        assert "restarting" in late.all_text()
    finally:
        await close_core(core)


async def test_a_session_still_releasing_is_waited_out() -> None:
    # each::sense may say SESSION_BUSY for a moment after our previous answer ended: the
    # follow-up is sent again (once nothing was generated) and the person never hears of it.
    async with Simulator(speed=1000, busy_after_stream=0.4) as sim:
        core = await build_core(simulated(make_settings(), sim))
        try:
            surface = RecordingSurface()
            conv = core.conversations
            await conv.run(Turn(KEY, "U1", "just text", new_thread=True), surface)
            await conv.run(Turn(KEY, "U1", "and more, just text"), surface)
            prompts = [r.prompt for r in sim.requests]
            assert prompts[0] == "just text" and len(prompts) >= 3
            assert set(prompts[1:]) == {"and more, just text"}  # the same turn, sent again
            history = sim.sessions[sim.requests[0].session_id]
            assert [m["content"] for m in history if m["role"] == "user"] == [
                "just text",
                "and more, just text",
            ]  # generated once
            final = surface.messages[surface.finals[-1]]
            assert "Done" in final.status and "turn 2 in this session" in final.text
            assert "still answering" not in surface.all_text()
            # a session that stays busy for its first requests is waited out the same way
            sim.make_busy(sim.requests[0].session_id or "", requests=2)
            await conv.run(Turn(KEY, "U1", "third, just text"), surface)
            assert [r.prompt for r in sim.requests][-3:] == ["third, just text"] * 3
            assert "Done" in surface.messages[surface.finals[-1]].status
        finally:
            await close_core(core)


async def test_busy_retry_can_be_turned_off() -> None:
    async with Simulator(speed=1000) as sim:
        core = await build_core(simulated(make_settings(eachsense_busy_retry_seconds=0), sim))
        try:
            surface = RecordingSurface()
            await core.conversations.run(Turn(KEY, "U1", "just text", new_thread=True), surface)
            sim.make_busy(sim.requests[0].session_id or "", requests=1)
            await core.conversations.run(Turn(KEY, "U1", "more text"), surface)
            assert len(sim.requests) == 2
            assert (
                "still answering a previous message" in surface.messages[surface.finals[-1]].status
            )
        finally:
            await close_core(core)
