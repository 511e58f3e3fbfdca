"""The fake Slack, proved against slack_sdk's own AsyncWebClient (the client the bot uses).
Delivery to the app (signatures, the ack deadline, retries) is in
`test_slack_delivery_fake.py`, echoes of the bot's own messages in `test_fakes_echo.py`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.slack import Bucket, FakeSlack, Limit, slack_like_limits

TOKEN = "xoxb-test-token"


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(bot_token=TOKEN, admins={"UADMIN"}) as fake:
        yield fake


def client_for(slack: FakeSlack, token: str = TOKEN, *, retry: bool = False) -> AsyncWebClient:
    client = AsyncWebClient(token=token, base_url=slack.api_url)
    if retry:
        client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=2))
    return client


async def test_auth_test_and_bad_token(slack: FakeSlack) -> None:
    who = await client_for(slack).auth_test()
    assert who["user_id"] == "UBOT" and who["bot_id"] == "BBOT" and who["team_id"] == "T0TEAM"
    with pytest.raises(SlackApiError) as info:
        await client_for(slack, "xoxb-wrong").auth_test()
    assert info.value.response["error"] == "invalid_auth"


async def test_post_update_and_thread(slack: FakeSlack) -> None:
    client = client_for(slack)
    root = await client.chat_postMessage(channel="C1", text="root")
    reply = await client.chat_postMessage(
        channel="C1",
        thread_ts=root["ts"],
        text="fallback",
        blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}}],
    )
    await client.chat_update(channel="C1", ts=reply["ts"], text="edited")
    [message] = slack.thread("C1", root["ts"])
    assert message.text == "edited" and message.edits == 1
    assert slack.top_level("C1")[0].text == "root"
    # form-encoded parameters are understood too
    await client.api_call("chat.postMessage", data={"channel": "C2", "text": "form"})
    assert slack.top_level("C2")[0].text == "form"
    assert [c.method for c in slack.calls] == ["chat.postMessage"] * 2 + ["chat.update"] + [
        "chat.postMessage"
    ]


async def test_size_limits_are_enforced(slack: FakeSlack) -> None:
    client = client_for(slack)
    with pytest.raises(SlackApiError) as info:
        await client.chat_postMessage(channel="C1", text="x" * 4001)
    assert info.value.response["error"] == "msg_too_long"
    root = await client.chat_postMessage(channel="C1", text="ok")
    with pytest.raises(SlackApiError) as info:
        await client.chat_update(
            channel="C1",
            ts=root["ts"],
            text="t",
            blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": "y" * 3001}}],
        )
    assert info.value.response["error"] == "invalid_blocks"


async def test_files_upload_v2_stores_the_bytes(slack: FakeSlack) -> None:
    data = bytes(range(256)) * 100
    result = await client_for(slack).files_upload_v2(
        channel="C1", thread_ts="1.2", filename="a.png", content=data, title="A"
    )
    assert result["file"]["title"] == "A"
    [stored] = slack.files.values()
    assert stored.data == data and stored.thread_ts == "1.2" and stored.channel == "C1"
    assert [m.files for m in slack.thread("C1", "1.2")] == [[stored.id]]
    methods = [c.method for c in slack.calls]
    assert methods == ["files.getUploadURLExternal", "upload", "files.completeUploadExternal"]


async def test_forced_429_is_waited_out_by_the_retry_handler(slack: FakeSlack) -> None:
    slack.force_429("chat.postMessage", retry_after=0)
    result = await client_for(slack, retry=True).chat_postMessage(channel="C1", text="hi")
    assert result["ok"]
    assert [c.status for c in slack.calls] == [429, 200]
    slack.force_429("chat.postMessage")
    with pytest.raises(SlackApiError) as info:
        await client_for(slack).chat_postMessage(channel="C1", text="hi")
    assert info.value.response.status_code == 429
    assert info.value.response.headers["Retry-After"] == "1"


async def test_per_method_and_per_channel_limits() -> None:
    async with FakeSlack(
        method_limits={"chat.update": Limit(3, 60.0)}, channel_post_limit=Limit(2, 60.0)
    ) as slack:
        client = client_for(slack, slack.bot_token)
        first = await client.chat_postMessage(channel="C1", text="1")
        await client.chat_postMessage(channel="C1", text="2")
        with pytest.raises(SlackApiError):
            await client.chat_postMessage(channel="C1", text="3")
        await client.chat_postMessage(channel="C2", text="other channel is fine")
        for i in range(3):
            await client.chat_update(channel="C1", ts=first["ts"], text=str(i))
        with pytest.raises(SlackApiError) as info:
            await client.chat_update(channel="C1", ts=first["ts"], text="too many")
        assert info.value.response["error"] == "ratelimited"
        assert len(slack.ratelimited) == 2


async def test_sliding_window_frees_up() -> None:
    async with FakeSlack(method_limits={"reactions.add": Limit(1, 0.3)}) as slack:
        client = client_for(slack, slack.bot_token)
        await client.reactions_add(channel="C1", timestamp="1.1", name="eyes")
        with pytest.raises(SlackApiError):
            await client.reactions_add(channel="C1", timestamp="1.1", name="eyes")
        deadline = time.monotonic() + 0.35
        while time.monotonic() < deadline:
            await client.auth_test()  # pass time without sleeping blindly
        await client.reactions_add(channel="C1", timestamp="1.1", name="eyes")
        assert slack.reactions == [("C1", "1.1", "eyes")] * 2


async def test_native_stream_methods(slack: FakeSlack) -> None:
    client = client_for(slack)
    streamer = await client.chat_stream(
        channel="C1",
        thread_ts="9.9",
        recipient_team_id="T0TEAM",
        recipient_user_id="U1",
        buffer_size=1,
    )
    await streamer.append(markdown_text="hello ")
    await streamer.append(markdown_text="world")
    await streamer.stop()
    [message] = slack.thread("C1", "9.9")
    assert message.text == "hello world" and not message.streaming
    refusing = FakeSlack(native_streaming=False)
    async with refusing:
        with pytest.raises(SlackApiError) as info:
            await client_for(refusing, refusing.bot_token).chat_startStream(
                channel="C1", thread_ts="9.9"
            )
        assert info.value.response["error"] == "not_allowed"


async def test_users_info_admins_and_unknown_method(slack: FakeSlack) -> None:
    client = client_for(slack)
    assert (await client.users_info(user="UADMIN"))["user"]["is_admin"] is True
    assert (await client.users_info(user="U2"))["user"]["is_admin"] is False
    with pytest.raises(SlackApiError) as info:
        await client.api_call("chat.nonexistent")
    assert info.value.response["error"] == "unknown_method"


async def test_usergroups_users_list_members_unknown_and_tier_2() -> None:
    async with FakeSlack(usergroups={"S1": ["U1", "U2"], "S2": []}) as slack:
        client = client_for(slack, slack.bot_token)
        assert (await client.usergroups_users_list(usergroup="S1"))["users"] == ["U1", "U2"]
        assert (await client.usergroups_users_list(usergroup="S2"))["users"] == []
        slack.usergroups["S2"].append("U3")  # membership changes show at once
        assert (await client.usergroups_users_list(usergroup="S2"))["users"] == ["U3"]
        with pytest.raises(SlackApiError) as info:
            await client.usergroups_users_list(usergroup="S404")
        assert info.value.response["error"] == "no_such_subteam"
        # the SDK sends it as a GET with the group in the query string
        (first, *_) = slack.calls_to("usergroups.users.list")
        assert first.params["usergroup"] == "S1"
        # Tier 2: 20 in any minute for the workspace (four were made above)
        for _ in range(16):
            await client.usergroups_users_list(usergroup="S1")
        with pytest.raises(SlackApiError) as info:
            await client.usergroups_users_list(usergroup="S2")
        assert info.value.response.status_code == 429


async def test_users_info_gives_the_locale_only_when_asked() -> None:
    async with FakeSlack(locales={"UJA": "ja-JP"}) as slack:
        client = client_for(slack)
        assert "locale" not in (await client.users_info(user="UJA"))["user"]
        asked = await client.users_info(user="UJA", include_locale=True)
        assert asked["user"]["locale"] == "ja-JP"
        assert slack.calls_to("users.info")[-1].params["include_locale"] == "1"
        other = await client.users_info(user="U2", include_locale=True)
        assert other["user"]["locale"] == "en-US"


async def test_default_limits_are_slack_like() -> None:
    async with FakeSlack() as slack:
        assert (slack.method_limits, slack.channel_post_limit) == slack_like_limits()
        assert slack.method_limits == {
            "chat.update": Limit(50, 60.0),
            "usergroups.users.list": Limit(20, 60.0),
        }
        assert slack.channel_post_limit == Bucket(rate=1.0, burst=3)
        client = client_for(slack, slack.bot_token)
        # chat.postMessage: a burst of three per channel, then about one a second
        posted = [await client.chat_postMessage(channel="C1", text=str(n)) for n in range(3)]
        with pytest.raises(SlackApiError) as info:
            await client.chat_postMessage(channel="C1", text="fourth")
        assert info.value.response.status_code == 429
        assert info.value.response.headers["Retry-After"] == "1"
        await client.chat_postMessage(channel="C2", text="each channel has its own bucket")
        # chat.update: 50 in any minute for the whole workspace, whatever the channel
        other = await client.chat_postMessage(channel="C2", text="x")
        for n in range(50):
            target = posted[0] if n % 2 else other
            await client.chat_update(channel=target["channel"], ts=target["ts"], text=str(n))
        with pytest.raises(SlackApiError) as info:
            await client.chat_update(channel="C3", ts=posted[1]["ts"], text="51st")
        assert info.value.response["error"] == "ratelimited"
        assert 55 <= int(info.value.response.headers["Retry-After"]) <= 60
        assert len(slack.ratelimited) == 2
    async with FakeSlack(limits=False) as slack:
        assert slack.method_limits == {} and slack.channel_post_limit is None
        client = client_for(slack, slack.bot_token)
        for n in range(10):
            await client.chat_postMessage(channel="C1", text=str(n))
        assert not slack.ratelimited


async def test_token_bucket_refills() -> None:
    async with FakeSlack(channel_post_limit=Bucket(rate=20.0, burst=2)) as slack:
        client = client_for(slack, slack.bot_token)
        for n in range(2):
            await client.chat_postMessage(channel="C1", text=str(n))
        with pytest.raises(SlackApiError):
            await client.chat_postMessage(channel="C1", text="empty bucket")
        await asyncio.sleep(1 / 20 + 0.01)  # one token's worth of time at 20 a second
        await client.chat_postMessage(channel="C1", text="refilled")
        with pytest.raises(SlackApiError):
            await client.chat_postMessage(channel="C1", text="and empty again")
        assert [c.status for c in slack.calls_to("chat.postMessage")] == [200, 200, 429, 200, 429]
