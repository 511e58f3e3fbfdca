"""The fake Slack's modals, shared files and message shortcuts, proved against the real
slack_sdk and slack-bolt (signed HTTP deliveries to a bolt app), before the bot's tests rely
on them."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.slack import FakeSlack
from tests.test_slack_delivery_fake import SECRET, bolt, serving

PNG = b"\x89PNG\r\n\x1a\n" + bytes(100)
VIEW = {
    "type": "modal",
    "callback_id": "sense:remix",
    "private_metadata": '{"v":"g1"}',
    "title": {"type": "plain_text", "text": "Remix"},
    "submit": {"type": "plain_text", "text": "Send"},
    "blocks": [
        {
            "type": "input",
            "block_id": "prompt",
            "label": {"type": "plain_text", "text": "Describe it"},
            "element": {
                "type": "plain_text_input",
                "action_id": "prompt",
                "multiline": True,
                "initial_value": "a cat",
                "max_length": 3000,
            },
        }
    ],
}


async def test_views_open_takes_a_fresh_trigger_once_and_the_submission_reaches_bolt() -> None:
    async with FakeSlack() as slack:
        app = bolt(slack)
        opened: list[Any] = []
        submitted: list[dict[str, Any]] = []

        @app.action("sense:remix:g1")
        async def on_click(ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
            await ack()
            opened.append(await client.views_open(trigger_id=body["trigger_id"], view=VIEW))
            try:  # a trigger works once
                await client.views_open(trigger_id=body["trigger_id"], view=VIEW)
            except SlackApiError as err:
                opened.append(err.response["error"])

        @app.view("sense:remix")
        async def on_submit(ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
            await ack()
            submitted.append(body)

        async with serving(app.web_app(path="/slack/events")) as url:
            slack.connect_app(url, SECRET)
            root = await slack.say("C1", "a root")
            assert root.message is not None
            click = await slack.click({"action_id": "sense:remix:g1", "value": "g1"}, root.message)
            assert click.acked
            await slack.wait_for(lambda: len(opened) == 2, what="views.open twice")
            view = opened[0]["view"]
            assert opened[1] == "exchanged_trigger_id"
            assert view["callback_id"] == "sense:remix" and view["id"] in slack.views
            sent = await slack.submit_view(view["id"], {"prompt": "a dog"}, user="U7")
            assert sent.acked
            await slack.wait_for(lambda: submitted, what="the submission")
            body = submitted[0]
            assert body["type"] == "view_submission" and body["user"]["id"] == "U7"
            assert body["view"]["private_metadata"] == '{"v":"g1"}'
            assert body["view"]["state"]["values"] == {
                "prompt": {"prompt": {"type": "plain_text_input", "value": "a dog"}}
            }

        # what views.open refuses, as Slack does
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        for trigger, view, error in [
            ("nope", VIEW, "invalid_trigger_id"),
            (
                slack.new_trigger(),
                {**VIEW, "title": {"type": "plain_text", "text": "x" * 25}},
                "invalid_arguments",
            ),
            (slack.new_trigger(), {**VIEW, "private_metadata": "x" * 3001}, "invalid_arguments"),
        ]:
            with pytest.raises(SlackApiError) as refused:
                await client.views_open(trigger_id=trigger, view=view)
            assert refused.value.response["error"] == error
        late = slack.new_trigger()
        slack.trigger_lifetime = -1.0  # every trigger is older than that: no waiting
        with pytest.raises(SlackApiError) as expired:
            await client.views_open(trigger_id=late, view=VIEW)
        assert expired.value.response["error"] == "expired_trigger_id"


async def test_shared_files_arrive_as_slack_sends_them_and_need_the_token() -> None:
    async with FakeSlack() as slack:
        app = bolt(slack)
        events: list[dict[str, Any]] = []

        @app.event("message")
        async def on_message(event: dict[str, Any]) -> None:
            events.append(event)

        async with serving(app.web_app(path="/slack/events")) as url:
            slack.connect_app(url, SECRET)
            await slack.share_file("C1", "cat.png", PNG, "image/png", text="look", thread_ts="1.1")
            await slack.share_file("C1", "dog.png", PNG, "image/png", stub_files=True)
            await slack.wait_for(lambda: len(events) == 2, what="two file shares")
        shared, stub = events
        assert shared["subtype"] == "file_share" and shared["thread_ts"] == "1.1"
        [file] = shared["files"]
        assert (file["name"], file["mimetype"], file["size"]) == ("cat.png", "image/png", len(PNG))
        assert stub["files"] == [
            {"id": stub["files"][0]["id"], "mode": "file_access", "file_access": "check_file_info"}
        ]
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        info = await client.files_info(file=stub["files"][0]["id"])
        assert info["file"]["name"] == "dog.png" and info["file"]["url_private"]

        async with aiohttp.ClientSession() as http:
            auth = {"Authorization": f"Bearer {slack.bot_token}"}
            async with http.get(file["url_private"], headers=auth) as response:
                assert response.content_type == "image/png" and await response.read() == PNG
            async with http.get(file["url_private"]) as response:  # no token: a sign-in page
                assert response.status == 200 and response.content_type == "text/html"
            slack.files_read = False
            async with http.get(file["url_private"], headers=auth) as response:
                assert response.content_type == "text/html"
        with pytest.raises(SlackApiError) as refused:
            await client.files_info(file=file["id"])
        assert refused.value.response["error"] == "missing_scope"


async def test_message_shortcuts_reach_bolt() -> None:
    async with FakeSlack() as slack:
        app = bolt(slack)
        got: list[dict[str, Any]] = []

        @app.shortcut("sense_animate")
        async def on_shortcut(ack: Any, shortcut: dict[str, Any]) -> None:
            await ack()
            got.append(shortcut)

        async with serving(app.web_app(path="/slack/events")) as url:
            slack.connect_app(url, SECRET)
            await slack.share_file("C1", "cat.png", PNG, "image/png", text="look")
            [message] = [m for m in slack.top_level("C1") if m.files]
            delivery = await slack.message_shortcut("sense_animate", message, user="U3")
            assert delivery.acked
            await slack.wait_for(lambda: got, what="the shortcut")
        [shortcut] = got
        assert shortcut["type"] == "message_action" and shortcut["user"]["id"] == "U3"
        assert shortcut["channel"]["id"] == "C1" and shortcut["trigger_id"] in slack.triggers
        assert shortcut["message"]["files"][0]["name"] == "cat.png"
        assert shortcut["response_url"].startswith(slack.base_url)
