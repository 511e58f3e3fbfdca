"""The fake Slack delivering to a real slack-bolt app as Slack does: signed HTTP requests that
bolt's verifier accepts, the 3 s ack deadline (shortened here), redelivery of events with
`X-Slack-Retry-Num` / `X-Slack-Retry-Reason` that bolt hands to its listeners, and in Socket
Mode a new envelope with `retry_attempt` / `retry_reason`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.slack import SLACK_RETRY_DELAYS, FakeSlack

SECRET = "delivery-signing-secret"
DEADLINE = 0.5  # Slack's is 3 s; the shape is the same
NOW = (0.0, 0.0, 0.0)  # retry at once (Slack: at once, after 1 min, after 5 min)


def bolt(slack: FakeSlack, **options: Any) -> AsyncApp:
    client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
    return AsyncApp(client=client, signing_secret=SECRET, **options)


@contextlib.asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events"
    finally:
        await runner.cleanup()


def retry_of(request: AsyncBoltRequest) -> tuple[str | None, str | None]:
    """What bolt shows a listener about a redelivery (`X-Slack-Retry-*`, lower-cased)."""
    num = request.headers.get("x-slack-retry-num")
    reason = request.headers.get("x-slack-retry-reason")
    return (num[0] if num else None), (reason[0] if reason else None)


async def test_deliveries_are_signed_like_slack() -> None:
    assert SLACK_RETRY_DELAYS == (0.0, 60.0, 300.0)
    async with FakeSlack(retry_delays=NOW) as slack:
        app = bolt(slack)
        mentions: list[dict[str, Any]] = []
        clicks: list[str] = []

        @app.event("app_mention")
        async def on_mention(event: dict[str, Any]) -> None:
            mentions.append(event)

        @app.command("/sense")
        async def on_sense(ack: Any, command: dict[str, Any]) -> None:
            await ack(f"working on {command['text']}")

        @app.action("sense:stop")
        async def on_stop(ack: Any, action: dict[str, Any]) -> None:
            await ack()
            clicks.append(action["value"])

        async with serving(app.web_app(path="/slack/events")) as url:
            slack.connect_app(url, SECRET)
            mention = {"type": "app_mention", "channel": "C1", "user": "U1", "text": "<@UBOT> hi"}
            event = await slack.send_event({**mention, "ts": "1.1"}, event_id="EvOne")
            command = await slack.send_command("/sense", "a cat")
            # an event no listener matches: bolt answers 404, so Slack redelivers it
            root = await slack.say("C1", "a root", user="U2")
            await root.settled()
            assert [a.status for a in root.attempts] == [404] * 4 and not root.acked

            @app.event("message")
            async def on_message(event: dict[str, Any]) -> None:
                pass

            root = await slack.say("C1", "a root, handled", user="U2")
            assert root.message is not None
            button = {"action_id": "sense:stop", "value": "turn-1"}
            click = await slack.click(button, root.message)
            for delivery in (event, command, root, click):
                assert delivery.acked and delivery.attempts[0].status == 200, delivery.kind
            assert event.event_id == "EvOne" and mentions[0]["text"] == "<@UBOT> hi"
            assert command.attempts[0].body == "working on a cat", "the ack's text came back"
            await slack.wait_for(lambda: clicks, what="the click")
            assert clicks == ["turn-1"]
            # the request itself is what the real SDK's verifier accepts
            sent = command.attempts[0].headers
            assert sent["Content-Type"] == "application/x-www-form-urlencoded"
            assert "X-Slack-Retry-Num" not in sent

            # signed with the wrong secret bolt answers 401: an event is retried (http_error)
            slack.connect_app(url, "not-the-secret")
            refused = await slack.send_event({**mention, "ts": "1.2"})
            await refused.settled()
            assert [a.status for a in refused.attempts] == [401] * 4
            assert [a.retry_reason for a in refused.attempts] == [None] + ["http_error"] * 3
            assert not refused.acked and len(mentions) == 1


async def test_signature_checks_with_slack_sdks_verifier_and_no_retry_header() -> None:
    verifier = SignatureVerifier(SECRET)
    received: list[bool] = []

    async def endpoint(request: web.Request) -> web.Response:
        body = (await request.read()).decode()
        received.append(verifier.is_valid_request(body, dict(request.headers)))
        return web.Response(status=500, headers={"X-Slack-No-Retry": "1"})

    app = web.Application()
    app.router.add_post("/slack/events", endpoint)
    async with FakeSlack(retry_delays=NOW) as slack, serving(app) as url:
        slack.connect_app(url, SECRET)
        delivery = await slack.send_event({"type": "app_mention", "text": "x", "ts": "1.1"})
        await delivery.settled()
        assert received == [True], "signed as Slack signs, and X-Slack-No-Retry was honoured"
        assert [a.outcome for a in delivery.attempts] == ["http_error"]


async def test_slow_http_ack_is_redelivered_with_retry_headers() -> None:
    async with FakeSlack(ack_deadline=DEADLINE, retry_delays=NOW) as slack:
        app = bolt(slack, process_before_response=True)  # answers when the listener is done
        seen: list[tuple[str | None, str | None]] = []
        release = asyncio.Event()

        @app.event("app_mention")
        async def slow(event: dict[str, Any], request: AsyncBoltRequest) -> None:
            seen.append(retry_of(request))
            if len(seen) <= 2:  # the first delivery and the first retry miss the deadline
                await release.wait()

        async with serving(app.web_app(path="/slack/events")) as url:
            slack.connect_app(url, SECRET)
            mention = {"type": "app_mention", "channel": "C1", "user": "U1", "text": "hi"}
            delivery = await slack.send_event({**mention, "ts": "1.1"}, event_id="EvSlow")
            assert [a.outcome for a in delivery.attempts] == ["timeout"]
            assert delivery.attempts[0].latency is None and delivery.timeouts == 1
            await delivery.settled()
            release.set()
        assert [a.outcome for a in delivery.attempts] == ["timeout", "timeout", "acked"]
        assert [a.headers.get("X-Slack-Retry-Num") for a in delivery.attempts] == [None, "1", "2"]
        assert seen == [(None, None), ("1", "http_timeout"), ("2", "http_timeout")]
        assert len(slack.deliveries) == 1 and delivery.event_id == "EvSlow", "one event, retried"


async def test_slow_command_is_a_timeout_not_a_retry() -> None:
    async with FakeSlack(ack_deadline=DEADLINE, retry_delays=NOW) as slack:
        app = bolt(slack)
        release = asyncio.Event()
        calls: list[str] = []

        @app.command("/sense")
        async def late(ack: Any, command: dict[str, Any]) -> None:
            calls.append(command["text"])
            await release.wait()  # work before the ack: the mistake the deadline catches
            await ack()

        async with serving(app.web_app(path="/slack/events")) as url:
            slack.connect_app(url, SECRET)
            delivery = await slack.send_command("/sense", "too slow")
            assert delivery.finished.is_set(), "commands are not redelivered"
            release.set()
        assert [a.outcome for a in delivery.attempts] == ["timeout"] and calls == ["too slow"]


async def test_socket_mode_envelope_not_acked_in_time_is_redelivered() -> None:
    async with FakeSlack(ack_deadline=DEADLINE, retry_delays=NOW) as slack:
        app = bolt(slack, process_before_response=True)
        seen: list[tuple[str | None, str | None]] = []
        release = asyncio.Event()

        @app.event("app_mention")
        async def slow(event: dict[str, Any], request: AsyncBoltRequest) -> None:
            seen.append(retry_of(request))
            if len(seen) == 1:
                await release.wait()

        handler = AsyncSocketModeHandler(app, slack.socket_mode.app_token)
        await handler.connect_async()
        try:
            await slack.socket_mode.wait_connected()
            mention = {"type": "app_mention", "channel": "C1", "user": "U1", "text": "hi"}
            delivery = await slack.send_event({**mention, "ts": "1.1"})
            await delivery.settled()
            release.set()
            assert [a.outcome for a in delivery.attempts] == ["timeout", "acked"]
            assert all(a.transport == "socket" for a in delivery.attempts)
            envelopes = [m for m in slack.socket_mode.sent if m.get("type") == "events_api"]
            assert [(e["retry_attempt"], e["retry_reason"]) for e in envelopes] == [
                (0, ""),
                (1, "timeout"),
            ]
            assert envelopes[0]["envelope_id"] != envelopes[1]["envelope_id"]
            # bolt >= 1.29 mirrors the envelope's retry fields into the HTTP-mode headers
            assert seen == [("0", ""), ("1", "timeout")]
        finally:
            await handler.close_async()
