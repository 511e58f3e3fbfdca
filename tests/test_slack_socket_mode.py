"""The Slack adapter in Socket Mode over a real websocket: slack-bolt's async Socket Mode
handler (slack_sdk's aiohttp client) opens a URL from the fake Slack, receives envelopes
there and acks them on the same socket; the simulator plays each::sense."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.app import SlackBot
from adapters.slack.ratelimit import SlackLimiter
from bot.app import Core, build_core, close_core, simulated
from bot.config import Settings
from simulator import Simulator
from tests.fakes.slack import FakeMessage, FakeSlack
from tests.util import wait_until

TEAM = "T0TEAM"
ACK_DEADLINE = 3.0  # what Slack allows before it retries an envelope


@dataclass
class Rig:
    slack: FakeSlack
    sim: Simulator
    bot: SlackBot
    core: Core
    events: int = 0

    async def command(self, text: str, *, command: str = "/sense", channel: str = "C1") -> Any:
        payload = {
            "token": "legacy",
            "team_id": TEAM,
            "team_domain": "fake",
            "channel_id": channel,
            "channel_name": "general",
            "user_id": "U1",
            "user_name": "u1",
            "command": command,
            "text": text,
            "api_app_id": "A0APP",
            "is_enterprise_install": "false",
            "response_url": self.slack.respond_url(),
            "trigger_id": "trigger",
        }
        return await self.slack.socket_mode.push("slash_commands", payload, timeout=ACK_DEADLINE)

    def event_payload(self, event: dict[str, Any], *, event_id: str | None = None) -> dict:
        self.events += 1
        return {
            "token": "legacy",
            "team_id": TEAM,
            "api_app_id": "A0APP",
            "type": "event_callback",
            "event_id": event_id or f"Ev{self.events:04d}",
            "event_time": int(time.time()),
            "event": event,
            "authorizations": [{"team_id": TEAM, "user_id": "UBOT", "is_bot": True}],
        }

    async def click(self, button: dict[str, Any], message: FakeMessage) -> Any:
        payload = self.slack.block_actions(button, message, user="U1", team=TEAM, app_id="A0APP")
        return await self.slack.socket_mode.push("interactive", payload, timeout=ACK_DEADLINE)


def socket_tasks() -> list[asyncio.Task[Any]]:
    """Unfinished tasks running slack_sdk's Socket Mode code (receiver, monitor, listeners)."""
    found = []
    for task in asyncio.all_tasks():
        code = getattr(task.get_coro(), "cr_code", None)
        if not task.done() and code is not None and "socket_mode" in code.co_filename:
            found.append(task)
    return found


@pytest.fixture
async def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Rig]:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(name, raising=False)  # slack_sdk would send 127.0.0.1 through it
    async with Simulator(speed=1000) as sim, FakeSlack() as slack:
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            slack_bot_token=SecretStr(slack.bot_token),
            slack_app_token=SecretStr(slack.socket_mode.app_token),
            slack_api_url=slack.api_url,
            database_url=f"sqlite:///{tmp_path / 'bot.db'}",
        )
        core = await build_core(simulated(settings, sim))
        limiter = SlackLimiter(
            update_capacity=100, update_rate=100, post_capacity=100, post_rate=100
        )
        bot = SlackBot(settings, core, None, limiter=limiter)
        try:
            await bot.start()
            await slack.socket_mode.wait_connected()
            yield Rig(slack, sim, bot, core)
        finally:
            await bot.stop()
            await close_core(core)
        # a clean stop: the socket is closed on the server side too and nothing is left running
        await wait_until(lambda: slack.socket_mode.current is None, timeout=3)
        await asyncio.sleep(0)
        assert socket_tasks() == []


def finished(slack: FakeSlack, channel: str, root: str) -> list[FakeMessage]:
    messages = slack.thread(channel, root)
    return messages if any("Done" in m.all_text for m in messages) else []


def buttons(message: FakeMessage) -> list[dict[str, Any]]:
    return [e for b in message.blocks if b.get("type") == "actions" for e in b["elements"]]


async def test_connects_with_the_app_token_and_answers_pings(rig: Rig) -> None:
    socket = rig.slack.socket_mode
    assert socket.opens == 1
    [call] = rig.slack.calls_to("apps.connections.open")
    assert call.status == 200 and call.error is None
    [connection] = socket.connections
    assert socket.sent[0]["type"] == "hello"
    assert socket_tasks()  # the receiver and the monitor (the teardown waits for them to end)
    await wait_until(lambda: connection.pings >= 1, timeout=3)  # slack_sdk pings on connect
    assert not rig.slack.calls_to("auth.test", ok=False)


async def test_sense_thread_follow_up_and_redelivery(rig: Rig) -> None:
    ack = await rig.command("just text")
    assert ack.payload is None and ack.latency is not None and ack.latency < ACK_DEADLINE
    [root] = await wait_until(lambda: rig.slack.top_level("C1"), timeout=10)
    assert root.text.startswith("<@U1> asked: just text")
    await wait_until(lambda: finished(rig.slack, "C1", root.ts), timeout=10)

    reply = {
        "type": "message",
        "channel": "C1",
        "channel_type": "channel",
        "user": "U2",
        "text": "and more?",
        "ts": "1800000000.000001",
        "thread_ts": root.ts,
    }
    payload = rig.event_payload(reply, event_id="EvFollow")
    first = await rig.slack.socket_mode.push("events_api", payload, timeout=ACK_DEADLINE)
    assert first.payload is None
    await wait_until(lambda: len(rig.sim.requests) == 2, timeout=10)
    assert rig.sim.requests[1].session_id == rig.sim.requests[0].session_id
    assert "and more?" in rig.sim.requests[1].prompt

    again = await rig.slack.socket_mode.push(
        "events_api", payload, retry_attempt=1, retry_reason="timeout", timeout=ACK_DEADLINE
    )
    assert again.envelope_id != first.envelope_id
    await rig.bot.wait_idle()
    assert len(rig.sim.requests) == 2  # the redelivery was acked and dropped


async def test_invalid_prompt_is_answered_in_the_ack(rig: Rig) -> None:
    ack = await rig.command("   ")
    assert ack.payload is not None and "write a prompt" in ack.payload["text"]
    await rig.bot.wait_idle()
    assert rig.sim.requests == [] and not rig.slack.calls_to("chat.postMessage")


async def test_stop_button_over_the_socket(rig: Rig) -> None:
    await rig.command("fail:stall forever")
    [root] = await wait_until(lambda: rig.slack.top_level("C1"), timeout=10)
    [live] = await wait_until(lambda: rig.slack.thread("C1", root.ts), timeout=10)
    stop = next(b for b in buttons(live) if b["action_id"].startswith("sense:stop:"))
    await wait_until(lambda: rig.sim.requests, timeout=10)
    ack = await rig.click(stop, live)
    assert ack.payload is None
    await wait_until(lambda: "Stopped" in live.all_text, timeout=10)
    assert any("Stopping" in r["text"] for r in rig.slack.responses)


async def test_disconnect_and_dropped_socket_reconnect(rig: Rig) -> None:
    socket = rig.slack.socket_mode
    await socket.request_reconnect()
    second = await socket.wait_connected(2)
    assert socket.opens == 2 and second.number == 2
    await wait_until(lambda: socket.connections[0].closed, timeout=3)  # the client let go
    ack = await rig.command("just text")
    assert ack.connection == 2
    root = (await wait_until(lambda: rig.slack.top_level("C1"), timeout=10))[0].ts
    await wait_until(lambda: finished(rig.slack, "C1", root), timeout=10)

    await socket.drop()
    third = await socket.wait_connected(3)
    assert socket.opens == 3 and third.number == 3
    ack = await rig.command("just text again", channel="C2")
    assert ack.connection == 3
    await wait_until(lambda: rig.slack.top_level("C2"), timeout=10)


async def test_connections_open_wants_the_app_token() -> None:
    async with FakeSlack() as slack:
        for token, error in [
            (slack.bot_token, "not_allowed_token_type"),
            ("xapp-1-wrong", "invalid_auth"),
        ]:
            with pytest.raises(SlackApiError) as info:
                await AsyncWebClient(base_url=slack.api_url).apps_connections_open(app_token=token)
            assert info.value.response["error"] == error
        opened = await AsyncWebClient(base_url=slack.api_url).apps_connections_open(
            app_token=slack.socket_mode.app_token
        )
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(opened["url"]) as ws:
                hello = await ws.receive_json(timeout=3)
                assert hello["type"] == "hello"
            with pytest.raises(aiohttp.WSServerHandshakeError):  # a URL is good once
                await session.ws_connect(opened["url"])
        assert slack.socket_mode.opens == 1


async def test_two_replicas_each_open_a_socket_and_share_the_work(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Socket Mode with several replicas: one connection each, Slack spreads envelopes
    among them, and a redelivered event landing on the other replica generates nothing."""
    from tests.postgres import fresh_schema_url

    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    async with (
        fresh_schema_url() as database_url,
        Simulator(speed=1000) as sim,
        FakeSlack() as slack,
    ):
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            slack_bot_token=SecretStr(slack.bot_token),
            slack_app_token=SecretStr(slack.socket_mode.app_token),
            slack_api_url=slack.api_url,
            database_url=database_url,
            max_turns_per_user=10,  # one person runs four turns at once here
        )
        replicas: list[tuple[Core, SlackBot]] = []
        try:
            for _ in range(2):
                core = await build_core(simulated(settings, sim))
                bot = SlackBot(settings, core, None)
                replicas.append((core, bot))
                await bot.start()
            await slack.socket_mode.wait_connected(2)
            rig = Rig(slack, sim, replicas[0][1], replicas[0][0])
            for n in range(4):
                await rig.command(f"just text {n}", channel=f"C{n}")
            await wait_until(lambda: len(sim.requests) == 4, timeout=10)
            first, second = slack.socket_mode.connections[:2]
            assert first.received and second.received  # both replicas got envelopes

            mention = {
                "type": "app_mention",
                "channel": "C9",
                "user": "U1",
                "text": "<@UBOT> just text once",
                "ts": "1800000200.000001",
            }
            payload = rig.event_payload(mention, event_id="EvTwice")
            await slack.socket_mode.push("events_api", payload)
            await slack.socket_mode.push(
                "events_api", payload, retry_attempt=1, retry_reason="timeout"
            )
            await wait_until(lambda: finished(slack, "C9", "1800000200.000001"), timeout=10)
            for _, bot in replicas:
                await bot.wait_idle()
            assert sum(r.prompt.endswith("just text once") for r in sim.requests) == 1
        finally:
            for core, bot in replicas:
                await bot.stop()
                await close_core(core)
