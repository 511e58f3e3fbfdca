"""The fake Slack's AI app surface (assistant threads) and App Home, mixed into `FakeSlack`.

What Slack does there, as the fake does it (each proved against the real slack_sdk and
slack_bolt in `tests/test_slack_surfaces_fake.py`; the bot's own tests are
`tests/test_slack_assistant.py` and `tests/test_slack_home.py`):

Assistant threads
- `start_assistant_thread(user, context_channel)`: a person opens the assistant (side panel or
  the app's Messages tab). Slack makes the thread's parent message in the person's DM with
  the app (subtype `assistant_app_thread`, by the bot user) and sends
  `assistant_thread_started` with `assistant_thread: {user_id, context: {channel_id, team_id,
  enterprise_id}, channel_id, thread_ts}`. `change_assistant_context()` sends
  `assistant_thread_context_changed` the same way. A person's message in the thread is
  `say(thread.channel, text, thread_ts=thread.thread_ts)`: a `message` event with
  `channel_type: im` and `parent_user_id` (the bot), which bolt's `Assistant` takes as a user
  message [test_assistant_events_reach_bolts_assistant_listeners].
- `assistant.threads.setStatus(channel_id, thread_ts, status, loading_messages?)`: the status
  is shown until the app replies in the thread (any post, stream or file share of the bot's
  there) or `status_ttl` seconds pass (Slack: 2 minutes), whichever is first; "" clears it.
  Each thread keeps its `statuses` (what was set, when, how it ended) and `lapses` (statuses
  Slack dropped by time while the app still had them set, i.e. the app did not refresh in
  time). `loading_messages` over 10 → `invalid_arguments`; an unknown thread →
  `channel_not_found` [test_set_status_lasts_until_a_reply_or_the_ttl].
- `assistant.threads.setSuggestedPrompts(channel_id, thread_ts, prompts, title?)`: 1 to 4
  prompts, each `{title, message}` (`invalid_arguments` otherwise); kept on the thread.
- `assistant.threads.setTitle(channel_id, thread_ts, title)`: kept on the thread and on its
  parent message, which Slack then announces as a `message_changed` of the
  `assistant_app_thread` message (bolt's Assistant acks that itself)
  [test_suggested_prompts_and_title_as_slack_keeps_them].

App Home
- `open_home(user, tab="home")`: `app_home_opened` (`user`, `channel` = the person's DM with
  the app, `tab`, `event_ts`, and `view` once one was published for them).
- `views.publish(user_id, view, hash?)`: a `home` view of at most 100 blocks (section text at
  most 3,000, action ids at most 255 and unique in the view) replaces the person's Home; the
  answer carries the stored view with its `id` and `hash`; a stale `hash` → `hash_conflict`
  [test_views_publish_keeps_a_home_per_person].
- `click_home(button, user)`: a `block_actions` payload from a Home view (`container.type:
  view`, `view`, no channel, no `response_url`), as Slack sends it.
- `users.conversations`: the channels the bot is a member of (`member_channels`), paginated
  with `limit` / `cursor` [test_users_conversations_pages_the_bots_channels].
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.fakes.slack import Delivery, FakeMessage

STATUS_TTL = 120.0  # Slack drops an assistant status after two minutes
MAX_PROMPTS = 4
MAX_LOADING_MESSAGES = 10
MAX_HOME_BLOCKS = 100
MAX_SECTION_TEXT = 3000
MAX_ACTION_ID = 255


@dataclass(slots=True)
class StatusShown:
    """One status the app set in an assistant thread, and how it ended."""

    text: str
    at: float  # monotonic
    loading_messages: list[str] | None = None
    ended_at: float | None = None
    ended_by: str | None = None  # "replaced", "cleared", "reply" or "ttl"


@dataclass(slots=True)
class AssistantThread:
    """An assistant thread: the person's DM with the app (`channel`) and its `thread_ts`."""

    user: str
    channel: str
    thread_ts: str
    context: dict[str, Any]
    title: str | None = None
    prompts: list[dict[str, str]] = field(default_factory=list)
    prompts_title: str | None = None
    statuses: list[StatusShown] = field(default_factory=list)
    lapses: list[StatusShown] = field(default_factory=list)

    def status_at(self, now: float, ttl: float) -> str:
        """What the thread shows as its status at `now` ("" for nothing)."""
        last = self.statuses[-1] if self.statuses else None
        if last is None or last.ended_at is not None or not last.text:
            return ""
        return last.text if now - last.at < ttl else ""


class SurfacesMixin:
    """Assistant threads, App Home and `users.conversations` for `FakeSlack` (see above)."""

    status_ttl: float
    team_id: str
    bot_user_id: str

    def _init_surfaces(self, *, status_ttl: float = STATUS_TTL) -> None:
        self.status_ttl = status_ttl
        self.assistant_threads: dict[tuple[str, str], AssistantThread] = {}
        self.home_views: dict[str, dict[str, Any]] = {}  # user id -> the published view
        self.member_channels: list[dict[str, Any]] = [{"id": "C1", "name": "general"}]
        self._view_ids = itertools.count(1)

    # --- assistant threads: what a person does -------------------------------------------

    def dm_channel(self, user: str) -> str:
        """The person's DM channel with the app (one per person)."""
        return f"D{user.removeprefix('U')}"

    async def start_assistant_thread(
        self, *, user: str = "U1", context_channel: str | None = "C1"
    ) -> tuple[AssistantThread, Delivery]:
        """A person opens the assistant: the thread's parent message, then
        `assistant_thread_started`."""
        from tests.fakes.slack import FakeMessage

        channel = self.dm_channel(user)
        parent = FakeMessage(
            channel=channel,
            ts=self._next_ts(),  # type: ignore[attr-defined]
            thread_ts=None,
            text="",
            blocks=[],
            user=self.bot_user_id,
        )
        self._keep(parent)  # type: ignore[attr-defined]
        thread = AssistantThread(user, channel, parent.ts, self._context(context_channel))
        self.assistant_threads[(channel, parent.ts)] = thread
        delivery = await self.send_event(self._assistant_event("assistant_thread_started", thread))  # type: ignore[attr-defined]
        return thread, delivery

    async def change_assistant_context(
        self, thread: AssistantThread, *, context_channel: str | None
    ) -> Delivery:
        """The person moved to another channel with the side panel open."""
        thread.context = self._context(context_channel)
        event = self._assistant_event("assistant_thread_context_changed", thread)
        return await self.send_event(event)  # type: ignore[attr-defined,no-any-return]

    def assistant_thread(self, channel: str, thread_ts: str) -> AssistantThread | None:
        return self.assistant_threads.get((channel, thread_ts))

    def status_now(self, thread: AssistantThread) -> str:
        return thread.status_at(time.monotonic(), self.status_ttl)

    def _context(self, channel: str | None) -> dict[str, Any]:
        context: dict[str, Any] = {"team_id": self.team_id, "enterprise_id": None}
        if channel:
            context["channel_id"] = channel
        return context

    def _assistant_event(self, kind: str, thread: AssistantThread) -> dict[str, Any]:
        return {
            "type": kind,
            "assistant_thread": {
                "user_id": thread.user,
                "context": dict(thread.context),
                "channel_id": thread.channel,
                "thread_ts": thread.thread_ts,
            },
            "event_ts": f"{time.time():.6f}",
        }

    def _replied(self, message: FakeMessage) -> None:
        """The app posted in an assistant thread: Slack clears the thread's status."""
        thread = self.assistant_threads.get((message.channel, message.thread_ts or ""))
        if thread is not None and message.bot_id:
            self._end_status(thread, time.monotonic(), "reply")

    def _end_status(self, thread: AssistantThread, now: float, how: str) -> None:
        last = thread.statuses[-1] if thread.statuses else None
        if last is None or last.ended_at is not None:
            return
        if last.text and now - last.at >= self.status_ttl:  # it had lapsed by itself
            last.ended_at, last.ended_by = last.at + self.status_ttl, "ttl"
            thread.lapses.append(last)
            return
        last.ended_at, last.ended_by = now, how

    def _thread_for(self, params: dict[str, Any]) -> AssistantThread | None:
        return self.assistant_threads.get(
            (str(params.get("channel_id")), str(params.get("thread_ts")))
        )

    # --- assistant methods -----------------------------------------------------------------

    def _m_assistant_threads_setStatus(self, params: dict[str, Any]) -> dict[str, Any]:
        if not params.get("channel_id") or not params.get("thread_ts") or "status" not in params:
            return {"ok": False, "error": "invalid_arguments"}
        thread = self._thread_for(params)
        if thread is None:
            return {"ok": False, "error": "channel_not_found"}
        loading = _loads(params.get("loading_messages"))
        if loading is not None and (
            not isinstance(loading, list) or len(loading) > MAX_LOADING_MESSAGES
        ):
            return {"ok": False, "error": "invalid_arguments"}
        now = time.monotonic()
        text = str(params.get("status") or "")
        self._end_status(thread, now, "replaced" if text else "cleared")
        thread.statuses.append(StatusShown(text, now, loading))
        return {"ok": True}

    def _m_assistant_threads_setSuggestedPrompts(self, params: dict[str, Any]) -> dict[str, Any]:
        thread = self._thread_for(params)
        if thread is None:
            return {"ok": False, "error": "channel_not_found"}
        prompts = _loads(params.get("prompts"))
        if (
            not isinstance(prompts, list)
            or not 1 <= len(prompts) <= MAX_PROMPTS
            or not all(isinstance(p, dict) and p.get("title") and p.get("message") for p in prompts)
        ):
            return {"ok": False, "error": "invalid_arguments"}
        thread.prompts = [{"title": p["title"], "message": p["message"]} for p in prompts]
        thread.prompts_title = params.get("title") or None
        return {"ok": True}

    def _m_assistant_threads_setTitle(self, params: dict[str, Any]) -> dict[str, Any]:
        thread = self._thread_for(params)
        if thread is None:
            return {"ok": False, "error": "channel_not_found"}
        title = str(params.get("title") or "")
        if not title:
            return {"ok": False, "error": "invalid_arguments"}
        thread.title = title
        parent = self.message(thread.channel, thread.thread_ts)  # type: ignore[attr-defined]
        if parent is not None:
            event = self._title_changed(thread, parent)
            self._echo(event, parent)  # type: ignore[attr-defined]
        return {"ok": True}

    def _title_changed(self, thread: AssistantThread, parent: FakeMessage) -> dict[str, Any]:
        """Slack's `message_changed` for the thread's parent after a new title."""
        base = {
            "type": "message",
            "subtype": "assistant_app_thread",
            "user": parent.user,
            "ts": parent.ts,
            "text": "",
            "assistant_app_thread": {"title": thread.title, "title_blocks": [], "artifacts": []},
        }
        now = self._next_ts()  # type: ignore[attr-defined]
        return {
            "type": "message",
            "subtype": "message_changed",
            "hidden": True,
            "message": base,
            "previous_message": {**base, "assistant_app_thread": {"title": ""}},
            "channel": thread.channel,
            "channel_type": "im",
            "ts": now,
            "event_ts": now,
        }

    # --- App Home --------------------------------------------------------------------------

    async def open_home(self, user: str = "U1", *, tab: str = "home") -> Delivery:
        """A person opens the app's Home (or Messages) tab."""
        event: dict[str, Any] = {
            "type": "app_home_opened",
            "user": user,
            "channel": self.dm_channel(user),
            "tab": tab,
            "event_ts": f"{time.time():.6f}",
        }
        if tab == "home" and user in self.home_views:
            event["view"] = self.home_views[user]
        return await self.send_event(event)  # type: ignore[attr-defined,no-any-return]

    def home_blocks(self, user: str) -> list[dict[str, Any]]:
        return list((self.home_views.get(user) or {}).get("blocks") or [])

    def home_text(self, user: str) -> str:
        """Everything the person's Home shows, as text."""
        from tests.fakes.slack import _block_texts

        return "\n".join(_block_texts(self.home_blocks(user)))

    def home_buttons(self, user: str) -> list[dict[str, Any]]:
        return [
            element
            for block in self.home_blocks(user)
            for element in [*block.get("elements", []), block.get("accessory") or {}]
            if element.get("type") == "button"
        ]

    async def click_home(self, button: dict[str, Any], *, user: str = "U1") -> Delivery:
        """A person clicks `button` on their Home: `block_actions` from a view."""
        view = self.home_views[user]
        payload = {
            "type": "block_actions",
            "user": {"id": user, "team_id": self.team_id},
            "api_app_id": self.app_id,  # type: ignore[attr-defined]
            "token": "legacy",
            "container": {"type": "view", "view_id": view["id"]},
            "trigger_id": f"trigger-{next(self._view_ids)}",
            "team": {"id": self.team_id},
            "is_enterprise_install": False,
            "view": view,
            "actions": [
                {
                    "type": "button",
                    "action_id": button["action_id"],
                    "block_id": "home",
                    "value": button.get("value", ""),
                    "action_ts": f"{time.time():.6f}",
                }
            ],
        }
        return await self.send_action(payload)  # type: ignore[attr-defined,no-any-return]

    def _m_views_publish(self, params: dict[str, Any]) -> dict[str, Any]:
        user = params.get("user_id")
        view = _loads(params.get("view"))
        if not user or not isinstance(view, dict) or view.get("type") != "home":
            return {"ok": False, "error": "invalid_arguments"}
        old = self.home_views.get(str(user))
        if params.get("hash") and old is not None and params["hash"] != old["hash"]:
            return {"ok": False, "error": "hash_conflict"}
        error = _check_home_blocks(view.get("blocks") or [])
        if error:
            return {"ok": False, "error": error}
        number = next(self._view_ids)
        stored = {
            "id": f"V{number:08d}",
            "team_id": self.team_id,
            "type": "home",
            "blocks": view.get("blocks") or [],
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "external_id": view.get("external_id", ""),
            "state": {"values": {}},
            "hash": f"{time.time():.6f}.{number:08x}",
            "title": {"type": "plain_text", "text": "View Title", "emoji": True},
            "clear_on_close": False,
            "notify_on_close": False,
            "close": None,
            "submit": None,
            "previous_view_id": None,
            "root_view_id": f"V{number:08d}",
            "app_id": self.app_id,  # type: ignore[attr-defined]
            "app_installed_team_id": self.team_id,
            "bot_id": self.bot_id,  # type: ignore[attr-defined]
        }
        self.home_views[str(user)] = stored
        return {"ok": True, "view": stored}

    def _m_users_conversations(self, params: dict[str, Any]) -> dict[str, Any]:
        limit = int(params.get("limit") or 100)
        start = int(params.get("cursor") or 0)
        page = self.member_channels[start : start + limit]
        following = start + limit
        more = following < len(self.member_channels)
        channels = [
            {
                "id": c["id"],
                "name": c.get("name", c["id"].lower()),
                "is_channel": True,
                "is_private": bool(c.get("is_private")),
                "is_member": True,
                "is_archived": False,
            }
            for c in page
        ]
        return {
            "ok": True,
            "channels": channels,
            "response_metadata": {"next_cursor": str(following) if more else ""},
        }


def _loads(value: Any) -> Any:
    """Form bodies carry JSON-valued parameters as strings."""
    if isinstance(value, str):
        return json.loads(value) if value else None
    return value


def _check_home_blocks(blocks: list[dict[str, Any]]) -> str | None:
    if len(blocks) > MAX_HOME_BLOCKS:
        return "invalid_blocks"
    seen: set[str] = set()
    for block in blocks:
        text = block.get("text")
        if isinstance(text, dict) and len(str(text.get("text", ""))) > MAX_SECTION_TEXT:
            return "invalid_blocks"
        elements = [*(block.get("elements") or []), block.get("accessory") or {}]
        for element in elements:
            action_id = element.get("action_id")
            if action_id is None:
                continue
            if len(str(action_id)) > MAX_ACTION_ID or action_id in seen:
                return "invalid_blocks"
            seen.add(str(action_id))
    return None
