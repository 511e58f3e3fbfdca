"""The fake Slack's assistant threads and App Home, proved against the real slack_sdk client
and slack_bolt's `Assistant` middleware (what the fake promises is in
`tests/fakes/slack_surfaces.py`)."""

from __future__ import annotations

from typing import Any

import pytest
from slack_bolt.async_app import AsyncApp
from slack_bolt.middleware.assistant.async_assistant import AsyncAssistant
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.slack import FakeSlack
from tests.test_fakes_echo import SECRET, serving


def client_for(slack: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)


async def test_assistant_events_reach_bolts_assistant_listeners() -> None:
    """bolt's Assistant takes the fake's `assistant_thread_started`, context change and a
    person's thread message for what they are, with its utilities bound to the thread."""
    async with FakeSlack() as slack:
        app = AsyncApp(client=client_for(slack), signing_secret=SECRET)
        assistant = AsyncAssistant()
        seen: list[tuple[str, Any]] = []

        @assistant.thread_started
        async def started(payload: dict[str, Any], set_suggested_prompts: Any) -> None:
            seen.append(("started", payload))
            await set_suggested_prompts(prompts=["Draw a fox"], title="Try")

        @assistant.thread_context_changed
        async def changed(payload: dict[str, Any]) -> None:
            seen.append(("changed", payload))

        @assistant.user_message
        async def user_message(payload: dict[str, Any], set_status: Any, set_title: Any) -> None:
            seen.append(("message", payload))
            await set_title(payload["text"])
            await set_status("is thinking…")

        others: list[dict[str, Any]] = []

        @app.event("message")
        async def anything_else(event: dict[str, Any]) -> None:
            others.append(event)

        app.assistant(assistant)
        async with serving(app) as url:
            slack.connect_app(url, SECRET)
            thread, delivery = await slack.start_assistant_thread(user="U7", context_channel="C3")
            assert delivery.acked and thread.channel == "D7"
            await slack.wait_for(lambda: thread.prompts, what="suggested prompts")
            assert thread.prompts == [{"title": "Draw a fox", "message": "Draw a fox"}]
            assert thread.prompts_title == "Try"
            await slack.change_assistant_context(thread, context_channel="C4")
            await slack.say(thread.channel, "hello", user="U7", thread_ts=thread.thread_ts)
            await slack.wait_for(lambda: slack.status_now(thread), what="a status")
            # the title change comes back as a message_changed Slack sends; bolt acks it
            await slack.wait_for(lambda: len(slack.echoes) == 1, what="the title's echo")
            await slack.echoes[0].settled()
        kinds = [kind for kind, _ in seen]
        assert kinds == ["started", "changed", "message"]
        started_payload = seen[0][1]["assistant_thread"]
        assert started_payload["context"]["channel_id"] == "C3"
        assert seen[1][1]["assistant_thread"]["context"]["channel_id"] == "C4"
        message = seen[2][1]
        assert message["channel_type"] == "im" and message["parent_user_id"] == "UBOT"
        assert thread.title == "hello" and slack.status_now(thread) == "is thinking…"
        assert slack.echoes[0].acked and others == []


async def test_set_status_lasts_until_a_reply_or_the_ttl() -> None:
    async with FakeSlack(status_ttl=0.3) as slack:
        client = client_for(slack)
        app = AsyncApp(client=client, signing_secret=SECRET)
        async with serving(app) as url:
            slack.connect_app(url, SECRET)
            thread, _ = await slack.start_assistant_thread()
        where = {"channel_id": thread.channel, "thread_ts": thread.thread_ts}
        await client.assistant_threads_setStatus(**where, status="is drawing…")
        assert slack.status_now(thread) == "is drawing…"
        await client.chat_postMessage(channel=thread.channel, thread_ts=thread.thread_ts, text="hi")
        assert slack.status_now(thread) == "" and thread.statuses[-1].ended_by == "reply"
        await client.assistant_threads_setStatus(**where, status="still drawing")
        await slack.wait_for(lambda: slack.status_now(thread) == "", what="the status to lapse")
        await client.assistant_threads_setStatus(**where, status="")
        assert [s.ended_by for s in thread.statuses] == ["reply", "ttl", None]
        assert [s.text for s in thread.lapses] == ["still drawing"]
        with pytest.raises(SlackApiError) as unknown:
            await client.assistant_threads_setStatus(channel_id="D404", thread_ts="1.0", status="x")
        assert unknown.value.response["error"] == "channel_not_found"
        with pytest.raises(SlackApiError) as too_many:
            await client.assistant_threads_setStatus(
                **where, status="x", loading_messages=[str(n) for n in range(11)]
            )
        assert too_many.value.response["error"] == "invalid_arguments"


async def test_suggested_prompts_and_title_as_slack_keeps_them() -> None:
    async with FakeSlack(echo=False) as slack:
        client = client_for(slack)
        app = AsyncApp(client=client, signing_secret=SECRET)
        async with serving(app) as url:
            slack.connect_app(url, SECRET)
            thread, _ = await slack.start_assistant_thread()
        where = {"channel_id": thread.channel, "thread_ts": thread.thread_ts}
        prompts = [{"title": f"t{n}", "message": f"m{n}"} for n in range(5)]
        with pytest.raises(SlackApiError) as five:
            await client.assistant_threads_setSuggestedPrompts(**where, prompts=prompts)
        assert five.value.response["error"] == "invalid_arguments"
        await client.assistant_threads_setSuggestedPrompts(**where, prompts=prompts[:4])
        assert [p["message"] for p in thread.prompts] == ["m0", "m1", "m2", "m3"]
        await client.assistant_threads_setTitle(**where, title="A fox")
        assert thread.title == "A fox"


async def test_views_publish_keeps_a_home_per_person() -> None:
    async with FakeSlack() as slack:
        client = client_for(slack)
        blocks = [
            {"type": "section", "text": {"type": "mrkdwn", "text": "hi"}},
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "action_id": "a1",
                        "value": "v",
                        "text": {"type": "plain_text", "text": "Go"},
                    }
                ],
            },
        ]
        answer = await client.views_publish(user_id="U1", view={"type": "home", "blocks": blocks})
        view = answer["view"]
        assert view["id"].startswith("V") and view["hash"] and slack.home_text("U1") == "hi\nGo"
        assert [b["action_id"] for b in slack.home_buttons("U1")] == ["a1"]
        with pytest.raises(SlackApiError) as stale:
            await client.views_publish(
                user_id="U1", view={"type": "home", "blocks": []}, hash="old"
            )
        assert stale.value.response["error"] == "hash_conflict"
        await client.views_publish(
            user_id="U1", view={"type": "home", "blocks": []}, hash=view["hash"]
        )
        too_many = [{"type": "divider"}] * 101
        with pytest.raises(SlackApiError) as big:
            await client.views_publish(user_id="U2", view={"type": "home", "blocks": too_many})
        assert big.value.response["error"] == "invalid_blocks"
        with pytest.raises(SlackApiError) as modal:
            await client.views_publish(user_id="U2", view={"type": "modal", "blocks": []})
        assert modal.value.response["error"] == "invalid_arguments"

        # bolt reads app_home_opened and a Home click as Slack sends them
        app = AsyncApp(client=client, signing_secret=SECRET)
        opened: list[dict[str, Any]] = []
        clicked: list[dict[str, Any]] = []

        @app.event("app_home_opened")
        async def on_home(event: dict[str, Any]) -> None:
            opened.append(event)

        @app.action("a1")
        async def on_click(ack: Any, body: dict[str, Any]) -> None:
            await ack()
            clicked.append(body)

        async with serving(app) as url:
            slack.connect_app(url, SECRET)
            await client.views_publish(user_id="U1", view={"type": "home", "blocks": blocks})
            await slack.open_home("U1")
            await slack.open_home("U1", tab="messages")
            delivery = await slack.click_home(slack.home_buttons("U1")[0], user="U1")
            await slack.wait_for(lambda: len(opened) == 2 and clicked, what="the listeners")
        assert delivery.acked
        assert opened[0]["tab"] == "home" and opened[0]["view"]["type"] == "home"
        assert opened[1]["tab"] == "messages" and "view" not in opened[1]
        assert clicked[0]["container"]["type"] == "view" and "response_url" not in clicked[0]


async def test_users_conversations_pages_the_bots_channels() -> None:
    async with FakeSlack() as slack:
        slack.member_channels = [{"id": f"C{n}", "name": f"c{n}"} for n in range(5)]
        client = client_for(slack)
        seen: list[str] = []
        async for page in await client.users_conversations(limit=2):
            seen += [c["id"] for c in page["channels"]]
        assert seen == ["C0", "C1", "C2", "C3", "C4"]
