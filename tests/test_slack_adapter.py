"""The Slack adapter end to end: the real slack-bolt app behind the bot's aiohttp server,
driven by signed HTTP requests (and Socket-Mode-shaped dispatch), the simulator as
each::sense and the fake Slack as Slack's Web API."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from pydantic import SecretStr
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.app import SlackBot
from adapters.slack.ratelimit import SlackLimiter
from adapters.slack.surface import SlackSurface, StreamingSwitch, escape, render, to_mrkdwn
from bot.app import build_core, close_core, simulated
from bot.config import Settings
from bot.http import HttpServer
from bot.models import Button, ButtonAction, View
from simulator import Simulator
from tests.fakes.slack import FakeMessage, FakeSlack, Limit

SECRET = "test-signing-secret"
TEAM = "T0TEAM"
MAX_UPLOAD = 1_000_000


@dataclass
class Rig:
    slack: FakeSlack
    sim: Simulator
    bot: SlackBot
    http: HttpServer
    session: aiohttp.ClientSession
    events: int = 0

    @property
    def url(self) -> str:
        return f"{self.http.url}/slack/events"

    async def post(
        self,
        body: str,
        *,
        content_type: str,
        timestamp: int | None = None,
        secret: str = SECRET,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, str]:
        ts = str(int(time.time()) if timestamp is None else timestamp)
        signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
        sent = {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": signature or "",
            **(headers or {}),
        }
        async with self.session.post(self.url, data=body.encode(), headers=sent) as response:
            return response.status, await response.text()

    async def command(self, command: str, text: str, *, user: str = "U1", channel: str = "C1"):
        body = urlencode(
            {
                "token": "legacy",
                "team_id": TEAM,
                "team_domain": "fake",
                "channel_id": channel,
                "channel_name": "general",
                "user_id": user,
                "user_name": user.lower(),
                "command": command,
                "text": text,
                "api_app_id": "A1",
                "response_url": self.slack.respond_url(),
                "trigger_id": "trigger",
            }
        )
        return await self.post(body, content_type="application/x-www-form-urlencoded")

    def event_body(self, event: dict[str, Any], event_id: str | None = None) -> str:
        self.events += 1
        return json.dumps(
            {
                "token": "legacy",
                "team_id": TEAM,
                "api_app_id": "A1",
                "type": "event_callback",
                "event_id": event_id or f"Ev{self.events:04d}",
                "event_time": int(time.time()),
                "event": event,
                "authorizations": [{"team_id": TEAM, "user_id": "UBOT", "is_bot": True}],
            }
        )

    async def event(self, event: dict[str, Any], **kwargs: Any) -> tuple[int, str]:
        headers = kwargs.pop("headers", None)
        body = self.event_body(event, **kwargs)
        return await self.post(body, content_type="application/json", headers=headers)

    async def click(self, button: dict[str, Any], message: FakeMessage, *, user: str = "U1"):
        payload = self.slack.block_actions(button, message, user=user, team=TEAM, app_id="A1")
        body = urlencode({"payload": json.dumps(payload)})
        return await self.post(body, content_type="application/x-www-form-urlencoded")


async def until(check: Callable[[], Any], *, limit: float = 10.0, what: str = "") -> Any:
    """Poll `check` until it returns something truthy (no fixed sleeps)."""
    deadline = time.monotonic() + limit
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        await asyncio.sleep(0.01)


def fast_limiter() -> SlackLimiter:
    return SlackLimiter(update_capacity=100, update_rate=100, post_capacity=100, post_rate=100)


@pytest.fixture
def settings_for(tmp_path: Path) -> Callable[..., Settings]:
    def make(slack: FakeSlack, sim: Simulator, **extra: Any) -> Settings:
        base = Settings(
            _env_file=None,  # type: ignore[call-arg]
            slack_bot_token=SecretStr(slack.bot_token),
            slack_signing_secret=SecretStr(SECRET),
            slack_api_url=slack.api_url,
            database_url=f"sqlite:///{tmp_path / 'bot.db'}",
            media_max_bytes=MAX_UPLOAD,
            http_host="127.0.0.1",
            http_port=0,
            job_poll_initial=0.05,
            job_poll_max=0.2,
            **extra,
        )
        return simulated(base, sim)

    return make


async def make_rig(settings: Settings, slack: FakeSlack, sim: Simulator, limiter: SlackLimiter):
    core = await build_core(settings)
    http = HttpServer(host="127.0.0.1", port=0)
    bot = SlackBot(settings, core, http, limiter=limiter)
    await bot.start()
    await http.start()
    return core, http, bot


@pytest.fixture
async def rig(settings_for: Callable[..., Settings]) -> AsyncIterator[Rig]:
    async with Simulator(speed=1000) as sim, FakeSlack(admins={"UADMIN"}) as slack:
        core, http, bot = await make_rig(settings_for(slack, sim), slack, sim, fast_limiter())
        try:
            yield Rig(slack, sim, bot, http, core.session)
        finally:
            await bot.stop()
            await http.stop()
            await close_core(core)


def finished(slack: FakeSlack, channel: str, root: str) -> list[FakeMessage]:
    """The thread once an answer carries its final footer."""
    messages = slack.thread(channel, root)
    return messages if any("Done" in m.all_text for m in messages) else []


def root_of(slack: FakeSlack, channel: str = "C1", index: int = 0) -> str:
    return slack.top_level(channel)[index].ts


def buttons(message: FakeMessage) -> list[dict[str, Any]]:
    return [e for b in message.blocks if b.get("type") == "actions" for e in b["elements"]]


# --- the happy path --------------------------------------------------------------------


async def test_sense_runs_end_to_end_with_upload(rig: Rig) -> None:
    status, _ = await rig.command("/sense", "draw a <!everyone> cat")
    assert status == 200
    root = (await until(lambda: rig.slack.top_level("C1"), what="root"))[0]
    # the broadcast token arrives as the words the person typed, shown as words, never a ping
    assert root.text.startswith("<@U1> asked: draw a @everyone cat")
    assert "<!everyone>" not in root.text
    assert "max mode" in root.text
    await until(lambda: finished(rig.slack, "C1", root.ts), what="final answer")
    await until(lambda: any(f.thread_ts == root.ts for f in rig.slack.files.values()))
    [file] = rig.slack.files.values()
    assert file.channel == "C1" and file.data
    async with rig.session.get(rig.sim.media_url(file.filename)) as response:
        assert await response.read() == file.data
    answer = rig.slack.thread("C1", root.ts)[0]
    assert "max mode" in answer.all_text and "<!everyone>" not in answer.all_text
    assert [b["action_id"].split(":")[1] for b in buttons(answer)] == ["regen"]
    [request] = rig.sim.requests
    assert request.mode == "max" and request.session_id
    # every Web API call went over the process's pooled connections, not one each
    api_calls = len(rig.slack.calls)
    assert api_calls >= 4 and len(rig.slack.connections) <= 2, (api_calls, rig.slack.connections)


async def test_follow_up_continues_the_session_and_new_thread_gets_a_new_one(rig: Rig) -> None:
    await rig.command("/sense", "just text please")
    root = (await until(lambda: rig.slack.top_level("C1")))[0].ts
    await until(lambda: finished(rig.slack, "C1", root))
    reply = {"type": "message", "channel": "C1", "user": "U2", "text": "and more?"}
    await rig.event(
        {**reply, "ts": "1800000000.000001", "thread_ts": root, "channel_type": "channel"}
    )
    await until(lambda: len(rig.sim.requests) == 2, what="follow-up request")
    assert rig.sim.requests[1].session_id == rig.sim.requests[0].session_id
    assert "and more?" in rig.sim.requests[1].prompt
    await rig.command("/sense", "just text again")
    await until(lambda: len(rig.sim.requests) == 3)
    assert rig.sim.requests[2].session_id != rig.sim.requests[0].session_id


async def test_ignores_own_edits_bots_and_unknown_threads(rig: Rig) -> None:
    await rig.command("/sense", "just text")
    root = (await until(lambda: rig.slack.top_level("C1")))[0].ts
    await until(lambda: finished(rig.slack, "C1", root))
    base = {"type": "message", "channel": "C1", "thread_ts": root, "ts": "1800000000.1"}
    await rig.event({**base, "user": "UBOT", "text": "mine"})
    await rig.event({**base, "bot_id": "B9", "user": "U9", "text": "a bot"})
    await rig.event({**base, "subtype": "message_changed", "user": "U1", "text": "edit"})
    await rig.event({**base, "thread_ts": "1.000001", "user": "U1", "text": "elsewhere"})
    await rig.event({**base, "thread_ts": None, "user": "U1", "text": "top level chatter"})
    # bolt runs listeners after the ack (and drops our own post itself): wait until the
    # listener has seen the other four, then for whatever work they started
    await until(lambda: rig.bot.events_seen >= 4, what="the listener to see every event")
    await rig.bot.wait_idle()
    assert len(rig.sim.requests) == 1


# --- eco --------------------------------------------------------------------------------


async def test_eco_on_by_admin_then_next_request_is_eco(rig: Rig) -> None:
    await rig.command("/sense-eco", "on", user="UADMIN")
    await until(lambda: rig.slack.responses, what="eco answer")
    assert "on" in rig.slack.responses[0]["text"]
    # a change is the channel's news, on Slack as on Discord; refusals stay private
    assert rig.slack.responses[0]["response_type"] == "in_channel"
    await rig.command("/sense", "just text")
    await until(lambda: rig.sim.requests)
    assert rig.sim.requests[0].mode == "eco"
    assert "eco mode" in rig.slack.top_level("C1")[0].text


async def test_eco_toggle_refused_for_non_admin(rig: Rig) -> None:
    await rig.command("/sense-eco", "on", user="U2")
    await until(lambda: rig.slack.responses)
    assert "Only admins" in rig.slack.responses[0]["text"]
    assert rig.slack.calls_to("users.info")[0].params["user"] == "U2"
    await rig.command("/sense-eco", "status", user="U2")
    await until(lambda: len(rig.slack.responses) == 2)
    assert "off" in rig.slack.responses[1]["text"]


# --- signatures and redeliveries -------------------------------------------------------


async def test_forged_or_stale_signature_is_rejected(rig: Rig) -> None:
    body = rig.event_body(
        {"type": "app_mention", "channel": "C1", "user": "U1", "text": "<@UBOT> hi", "ts": "1.1"}
    )
    forged, _ = await rig.post(body, content_type="application/json", secret="wrong")
    stale, _ = await rig.post(
        body, content_type="application/json", timestamp=int(time.time()) - 600
    )
    assert (forged, stale) == (401, 401)
    status, _ = await rig.command("/sense", "")  # a valid request still works (empty prompt)
    assert status == 200
    await rig.bot.wait_idle()
    assert rig.sim.requests == []
    assert not rig.slack.calls_to("chat.postMessage")


async def test_redelivered_event_starts_one_generation(rig: Rig) -> None:
    mention = {
        "type": "app_mention",
        "channel": "C1",
        "user": "U1",
        "text": "<@UBOT> just text",
        "ts": "1700000000.5",
    }
    first, _ = await rig.event(mention, event_id="EvSame")
    again, _ = await rig.event(
        mention,
        event_id="EvSame",
        headers={"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"},
    )
    assert (first, again) == (200, 200)
    await until(lambda: finished(rig.slack, "C1", "1700000000.5"))
    await rig.bot.wait_idle()
    assert len(rig.sim.requests) == 1
    assert rig.sim.requests[0].prompt.strip().endswith("just text")


async def test_socket_mode_dispatch_starts_a_thread_under_the_mention(rig: Rig) -> None:
    body = rig.event_body(
        {
            "type": "app_mention",
            "channel": "C7",
            "user": "U1",
            "text": "<@UBOT> just text",
            "ts": "1700000001.1",
        }
    )
    response = await rig.bot.app.async_dispatch(AsyncBoltRequest(body=body, mode="socket_mode"))
    assert response.status == 200
    await until(lambda: finished(rig.slack, "C7", "1700000001.1"))


# --- buttons ----------------------------------------------------------------------------


async def test_stop_cancels_a_running_turn(rig: Rig) -> None:
    await rig.command("/sense", "fail:stall forever")
    root = (await until(lambda: rig.slack.top_level("C1")))[0].ts
    live = (await until(lambda: rig.slack.thread("C1", root)))[0]
    stop = next(b for b in buttons(live) if b["action_id"].startswith("sense:stop:"))
    await until(lambda: rig.sim.requests)
    status, _ = await rig.click(stop, live)
    assert status == 200
    await until(lambda: "Stopped" in live.all_text, what="stopped footer")
    assert any("Stopping" in r["text"] for r in rig.slack.responses)


async def test_regenerate_reruns_in_the_same_session(rig: Rig) -> None:
    await rig.command("/sense", "just text")
    root = (await until(lambda: rig.slack.top_level("C1")))[0].ts
    [answer] = await until(lambda: finished(rig.slack, "C1", root))
    regen = next(b for b in buttons(answer) if b["action_id"].startswith("sense:regen:"))
    await rig.click(regen, answer, user="U3")
    await until(lambda: len(rig.sim.requests) == 2)
    assert rig.sim.requests[1].session_id == rig.sim.requests[0].session_id


async def test_clarification_option_answers_in_the_session(rig: Rig) -> None:
    await rig.command("/sense", "ask me")
    root = (await until(lambda: rig.slack.top_level("C1")))[0].ts
    [answer] = await until(lambda: finished(rig.slack, "C1", root))
    option = next(b for b in buttons(answer) if b["action_id"].startswith("sense:answer:"))
    await rig.click(option, answer)
    await until(lambda: len(rig.sim.requests) == 2)
    assert rig.sim.requests[1].prompt.strip() == option["value"]
    assert rig.sim.requests[1].session_id == rig.sim.requests[0].session_id


async def test_predict_and_workflow_post_their_outputs_in_a_thread(rig: Rig) -> None:
    await rig.command("/sense-predict", "flux-schnell a cat")
    root = (await until(lambda: rig.slack.top_level("C1")))[0]
    assert "ran `flux-schnell`: a cat" in root.text  # the same root text as on Discord
    await until(lambda: any(f.thread_ts == root.ts and f.data for f in rig.slack.files.values()))
    status, text = await rig.command("/sense-workflow", "")
    assert status == 200 and text  # invalid input: the ack itself says what is wrong
    await rig.command("/sense-workflow", "wf_1 subject='a dog'", channel="C2")
    root2 = (await until(lambda: rig.slack.top_level("C2")))[0]
    assert "wf_1" in root2.text and "a dog" in root2.text
    await until(
        lambda: len([f for f in rig.slack.files.values() if f.thread_ts == root2.ts]) == 2,
        what="workflow outputs",
    )


# --- limits and failures ----------------------------------------------------------------


async def test_a_429_from_slack_is_waited_out(rig: Rig) -> None:
    rig.slack.force_429("chat.postMessage", retry_after=1)
    await rig.command("/sense", "just text")
    root = (await until(lambda: rig.slack.top_level("C1")))[0].ts
    await until(lambda: finished(rig.slack, "C1", root))
    assert len(rig.slack.ratelimited) == 1
    # and /metrics saw it, retries included
    metrics = rig.bot.core.metrics
    assert metrics.platform_429s.labels("slack", "chat.postMessage")._value.get() == 1
    assert metrics.platform_calls.labels("slack", "chat.postMessage")._value.get() >= 3


async def test_each_sense_failure_is_shown_in_the_thread(rig: Rig) -> None:
    await rig.command("/sense", "fail:401")
    root = (await until(lambda: rig.slack.top_level("C1")))[0].ts
    await until(
        lambda: any("API key was rejected" in m.all_text for m in rig.slack.thread("C1", root))
    )
    await rig.event(
        {
            "type": "message",
            "channel": "C1",
            "user": "U1",
            "text": "just text",
            "ts": "1800000000.2",
            "thread_ts": root,
        }
    )
    await until(lambda: finished(rig.slack, "C1", root), what="thread still usable")


async def test_too_large_file_is_posted_as_a_link(rig: Rig) -> None:
    await rig.command("/sense", f"fail:bigmedia:{MAX_UPLOAD * 2}")
    root = (await until(lambda: rig.slack.top_level("C1")))[0].ts
    link = await until(
        lambda: [m for m in rig.slack.thread("C1", root) if "Generated video" in m.text]
    )
    assert f"/media/blob/{MAX_UPLOAD * 2}.mp4" in link[0].text
    await until(lambda: finished(rig.slack, "C1", root))
    assert not rig.slack.files


async def test_long_answer_is_split_not_cut(rig: Rig) -> None:
    await rig.command("/sense", "long")
    root = (await until(lambda: rig.slack.top_level("C1")))[0].ts
    await until(lambda: finished(rig.slack, "C1", root), limit=20)

    def answers() -> list[FakeMessage]:
        return [m for m in rig.slack.thread("C1", root) if m.blocks]

    # a live edit of an earlier page may still be in the update queue when the footer lands
    await until(lambda: sum(len(m.all_text) for m in answers()) > 6000, what="every page")
    assert len(answers()) >= 2
    assert not [c for c in rig.slack.calls if c.error]


# --- native streaming -------------------------------------------------------------------


@pytest.mark.parametrize("allowed", [True, False])
async def test_native_streaming_and_fallback(
    settings_for: Callable[..., Settings], allowed: bool
) -> None:
    async with Simulator(speed=1000) as sim, FakeSlack(native_streaming=allowed) as slack:
        settings = settings_for(slack, sim, slack_native_streaming=True)
        core, http, bot = await make_rig(settings, slack, sim, fast_limiter())
        rig = Rig(slack, sim, bot, http, core.session)
        try:
            await rig.command("/sense", "just text")
            root = (await until(lambda: slack.top_level("C1")))[0].ts
            [answer] = await until(lambda: finished(slack, "C1", root))
            if allowed:
                assert slack.calls_to("chat.stopStream", ok=True)
                assert not answer.streaming and "text" in answer.text.lower()
                start = slack.calls_to("chat.startStream")[0].params
                assert start["recipient_user_id"] == "U1" and start["recipient_team_id"] == TEAM
            else:
                assert slack.calls_to("chat.startStream", ok=False)
                assert slack.calls_to("chat.update", ok=True)
        finally:
            await bot.stop()
            await http.stop()
            await close_core(core)


async def test_native_streaming_escapes_what_the_agent_wrote() -> None:
    """Streamed pieces are escaped like every other path: `<!channel>` from the model is text."""
    async with FakeSlack() as slack, aiohttp.ClientSession() as session:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        surface = SlackSurface(
            client=client,
            session=session,
            limiter=fast_limiter(),
            channel="C1",
            thread_ts="1.0",
            max_upload_bytes=10,
            streaming=StreamingSwitch(enabled=True, team_id=TEAM),
            user_id="U1",
        )
        stop = (Button("Stop", ButtonAction.STOP, "t1"),)
        first = "<!channel> fish & chips "
        ts = await surface.post(View(text=first, buttons=stop))
        second = first + "<@U2> <https://evil.example|click> "
        await surface.edit(ts, View(text=second, buttons=stop))
        final = second + "<!everyone>"
        await surface.edit(ts, View(text=final, status="Done"), final=True)
    sent = [
        call.params.get("markdown_text") or ""
        for method in ("chat.startStream", "chat.appendStream", "chat.stopStream")
        for call in slack.calls_to(method, ok=True)
    ]
    assert len(sent) == 3 and all(sent)
    for text in sent:
        assert "<" not in text and ">" not in text
    message = slack.message("C1", ts)
    assert message is not None and not message.streaming
    assert message.text == escape(final)


# --- rendering --------------------------------------------------------------------------


def test_rendering_escapes_and_converts() -> None:
    assert escape("<@U1> & <!channel>") == "&lt;@U1&gt; &amp; &lt;!channel&gt;"
    assert to_mrkdwn("**bold** [site](https://x.test/a?b=1&c=2)") == (
        "*bold* <https://x.test/a?b=1&amp;c=2|site>"
    )
    assert to_mrkdwn("`**code**`") == "`**code**`"
    text, blocks = render(
        View(
            text="x" * 3400,
            status="done",
            buttons=(Button("Stop", ButtonAction.STOP, "t1", style="danger"),),
        )
    )
    assert len(text) <= 3000
    sections = [b for b in blocks if b["type"] == "section"]
    assert len(sections) == 2 and all(len(s["text"]["text"]) <= 3000 for s in sections)
    assert blocks[-1]["elements"][0]["action_id"] == "sense:stop:t1"


# --- the shared budget ------------------------------------------------------------------


async def test_concurrent_turns_share_the_budget_without_429s() -> None:
    limits = {"chat.update": Limit(10, 2.0)}
    async with (
        FakeSlack(method_limits=limits, channel_post_limit=Limit(3, 1.0)) as slack,
        aiohttp.ClientSession() as session,
    ):
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        # at most 3 + 3 * 2 = 9 updates in any 2 s; 1 + 1.5 = 2.5 posts per channel a second
        limiter = SlackLimiter(update_capacity=3, update_rate=3.0, post_capacity=1, post_rate=1.5)

        async def turn(i: int) -> str:
            surface = SlackSurface(
                client=client,
                session=session,
                limiter=limiter,
                channel=f"C{i % 2}",
                thread_ts=f"1.{i}",
                max_upload_bytes=10,
            )
            ts = await surface.post(View(status="thinking"))
            for n in range(30):
                await surface.edit(ts, View(text=f"turn {i} part {n}", status="writing"))
                await asyncio.sleep(0.01)
            await surface.edit(ts, View(text=f"turn {i} final"), final=True)
            return ts

        stamps = await asyncio.gather(*(turn(i) for i in range(6)))
        await limiter.aclose()
    assert not slack.ratelimited
    for i, ts in enumerate(stamps):
        message = slack.message(f"C{i % 2}", ts)
        assert message is not None and message.text == f"turn {i} final"
    assert len(slack.calls_to("chat.update")) < 6 * 31 / 3  # coalesced, not one per edit


# --- one command flow: the behaviours Slack and Discord share --------------------------


async def test_a_mention_in_someone_elses_thread_generates_once(rig: Rig) -> None:
    """Slack sends `app_mention` and `message` (different event ids) for one post: the
    message itself is handled once, whichever event comes first."""
    post = {
        "channel": "C1",
        "user": "U1",
        "text": "<@UBOT> just text",
        "ts": "1800000001.000002",
        "thread_ts": "1800000001.000001",  # a person's thread, not one of ours
        "channel_type": "channel",
    }
    await rig.event({**post, "type": "app_mention"}, event_id="EvMention")
    await rig.event({**post, "type": "message"}, event_id="EvMessage")
    await until(lambda: finished(rig.slack, "C1", "1800000001.000001"), what="the answer")
    await rig.bot.wait_idle()
    assert len(rig.sim.requests) == 1
    assert not any("Queued" in m.all_text for m in rig.slack.thread("C1", "1800000001.000001"))


async def test_the_restart_notice_is_the_cores(rig: Rig) -> None:
    from bot.conversations import INTERRUPTED
    from bot.models import ThreadKey, TurnRecord, TurnStatus

    key = ThreadKey("slack", TEAM, "C1", "1700000009.000001")
    record = TurnRecord("t1", key, "U1", "x", TurnStatus.INTERRUPTED, 0.0)
    await rig.bot.core.commands.notify_interrupted([rig.bot], [record])
    [notice] = rig.slack.thread("C1", "1700000009.000001")
    assert notice.all_text.startswith(escape(INTERRUPTED)[:40])


async def test_bad_predict_arguments_are_refused_in_the_ack(rig: Rig) -> None:
    status, body = await rig.command("/sense-predict", "flux-schnell")
    assert status == 200 and "Usage" in body
    await rig.bot.wait_idle()
    assert not rig.slack.top_level("C1")


async def test_direct_runs_count_against_the_persons_cap(
    settings_for: Callable[..., Settings],
) -> None:
    async with Simulator(speed=1000) as sim, FakeSlack() as slack:
        settings = settings_for(slack, sim, max_turns_per_user=1)
        core, http, bot = await make_rig(settings, slack, sim, fast_limiter())
        rig = Rig(slack, sim, bot, http, core.session)
        try:
            await rig.command("/sense", "fail:stall forever")
            await until(lambda: rig.sim.requests, what="the stalled turn")
            await rig.command("/sense-predict", "flux-schnell a cat")
            second = await until(lambda: rig.slack.top_level("C1")[1:], what="the run's root")
            notice = await until(lambda: rig.slack.thread("C1", second[0].ts), what="refusal")
            assert "You already have 1 request running" in notice[0].all_text
        finally:
            await bot.stop()
            await http.stop()
            await close_core(core)


async def test_the_ack_never_waits_for_the_turn(rig: Rig) -> None:
    """HTTP mode: Slack wants the ack within 3 s; a turn runs for minutes after it."""
    status, _ = await asyncio.wait_for(rig.command("/sense", "fail:stall forever"), 5)
    assert status == 200
    await until(lambda: rig.sim.requests, what="the turn, after the ack")
    assert rig.bot.core.conversations.running_turns == 1


def test_the_status_line_is_escaped() -> None:
    _, blocks = render(View(text="hi", status="working on <!channel> & <@U1>"))
    [context] = [b for b in blocks if b["type"] == "context"]
    shown = context["elements"][0]["text"]
    assert "<!channel>" not in shown and "&lt;!channel&gt;" in shown and "&amp;" in shown


async def test_a_direct_message_is_answered_in_a_thread_under_it(rig: Rig) -> None:
    dm = {
        "type": "message",
        "channel": "D1",
        "channel_type": "im",
        "user": "U1",
        "text": "just text, privately",
        "ts": "1800000002.000001",
    }
    await rig.event(dm)
    await until(lambda: finished(rig.slack, "D1", "1800000002.000001"), what="the answer")
    assert rig.sim.requests[0].prompt.strip().endswith("just text, privately")
    # a top-level message in a channel without a mention is not for the bot
    await rig.event({**dm, "channel": "C1", "channel_type": "channel", "ts": "1800000002.2"})
    await until(lambda: rig.bot.events_seen >= 2, what="the second event")
    await rig.bot.wait_idle()
    assert len(rig.sim.requests) == 1


async def test_the_agent_reads_what_the_person_typed_not_slack_markup(rig: Rig) -> None:
    """Entities are unescaped and mentions become names at the edge; a broadcast reaches the
    agent as plain words."""
    await rig.command("/sense", "just text")
    root = (await until(lambda: rig.slack.top_level("C1")))[0].ts
    await until(lambda: finished(rig.slack, "C1", root))
    typed = "a &lt;b&gt; &amp; c for <@U7> and <!here>, see <https://example.com|the docs>"
    await rig.event(
        {
            "type": "message",
            "channel": "C1",
            "channel_type": "channel",
            "user": "U1",
            "text": typed,
            "ts": "1800000003.000001",
            "thread_ts": root,
        }
    )
    await until(lambda: len(rig.sim.requests) == 2, what="the follow-up")
    prompt = rig.sim.requests[1].prompt
    assert "a <b> & c for @u7 and @here, see the docs (https://example.com)" in prompt
    assert "<@U7>" not in prompt and "&amp;" not in prompt


async def test_the_web_api_is_called_over_a_few_pooled_connections(rig: Rig) -> None:
    """A hundred Web API calls at once (a hundred turns' edits) share at most
    `PLATFORM_CONNECTIONS` connections to Slack instead of opening one each."""
    from bot.sessions import PLATFORM_CONNECTIONS

    before = set(rig.slack.connections)
    calls = [rig.bot.client.chat_postMessage(channel=f"C{n}", text="hi") for n in range(100)]
    answers = await asyncio.gather(*calls)
    assert all(answer["ok"] for answer in answers)
    opened = rig.slack.connections - before
    assert 1 <= len(opened) <= PLATFORM_CONNECTIONS
