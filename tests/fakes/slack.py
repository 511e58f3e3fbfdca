"""A fake Slack Web API on 127.0.0.1 that the real `slack_sdk` and `slack_bolt` talk to.

It speaks the wire format the SDK sends: methods under `/api/<method>`, parameters in the
query string, a form body or a JSON body (all merged), the token as `Authorization: Bearer`
or a `token` parameter. It records every call, keeps the messages and files it was given,
and behaves like Slack where a bot can get it wrong. What it enforces (each proved against
the real slack_sdk / slack_bolt; the tests are named in brackets, Web API ones in
`tests/test_slack_fake.py`):

- `ok: false` with `invalid_auth` / `not_authed` for a bad or missing token
  [test_auth_test_and_bad_token];
- rate limits, Slack-like by default (`slack_like_limits()`): `chat.update` at most 50 in any
  60 s per workspace (a sliding window, so a burst of 50 is allowed) and `chat.postMessage`
  a token bucket per channel, 1 a second with bursts of 3. Over a limit: HTTP 429 with
  `Retry-After` and `{"ok": false, "error": "ratelimited"}`. `method_limits` /
  `channel_post_limit` replace them (`Limit(calls, per)` sliding windows or `Bucket(rate,
  burst)` token buckets), `limits=False` starts with none; `force_429` makes the next N calls
  of a method fail [test_default_limits_are_slack_like, test_token_bucket_refills,
  test_per_method_and_per_channel_limits, test_sliding_window_frees_up,
  test_forced_429_is_waited_out_by_the_retry_handler];
- `msg_too_long` above 4,000 characters of `text`, `invalid_blocks` for a section over 3,000
  characters or more than 50 blocks, so splitting bugs show up [test_size_limits_are_enforced];
- the three-step external upload (`files.getUploadURLExternal` → raw POST to the returned
  URL → `files.completeUploadExternal`), storing the uploaded bytes
  [test_files_upload_v2_stores_the_bytes]; the `chat.*Stream` methods
  [test_native_stream_methods];
- `users.info` answers a person's `locale` (`locales[user]`, else `default_locale`,
  `en-US`) only when asked with `include_locale=true`, as Slack does
  [test_users_info_gives_the_locale_only_when_asked].
- user groups (`usergroups`, group id → member ids): `usergroups.users.list` answers
  `{ok, users: [...]}` as Slack does, `no_such_subteam` for an unknown group, and is Tier 2
  (20 a minute per workspace) like Slack, so a bot that looks up groups per message is
  rate-limited here too [test_usergroups_users_list_members_unknown_and_tier_2].

Delivering to the app, as Slack does (`tests/test_slack_delivery_fake.py`):

- An app endpoint is either an HTTP Request URL (`connect_app(url, signing_secret)`: every
  request is signed `v0=` HMAC-SHA256 of `v0:{timestamp}:{body}`, JSON for events, a form for
  slash commands, `payload=` for interactivity) or, without one, the open Socket Mode
  connection (`slack.socket_mode`). `send_event()`, `send_command()`, `send_action()` /
  `click()` and `say()` (a person posts: stored like any message, then delivered as a
  `message` event) build Slack's payloads; each returns a `Delivery` once its first attempt
  is over (retries go on in the background: `await delivery.settled()`); `deliveries` keeps
  them all [test_deliveries_are_signed_like_slack,
  test_signature_checks_with_slack_sdks_verifier_and_no_retry_header].
- The ack deadline: an answer not back within `ack_deadline` (3 s) is a timeout; an event is
  then redelivered up to 3 times (`retry_delays`, Slack's schedule by default: at once, after
  1 min, after 5 min; pending retries are dropped when the fake stops) with
  `X-Slack-Retry-Num` and `X-Slack-Retry-Reason: http_timeout` (`http_error` after a non-2xx
  answer, e.g. bolt's 404 for an event no listener matches; in Socket Mode `retry_attempt` /
  `retry_reason: timeout` on a new envelope). An answer with `X-Slack-No-Retry: 1` stops the
  retries. Commands and actions are not redelivered (Slack shows the person an error
  instead); their timeout is recorded [test_slow_http_ack_is_redelivered_with_retry_headers,
  test_slow_command_is_a_timeout_not_a_retry,
  test_socket_mode_envelope_not_acked_in_time_is_redelivered].
- Echo (`echo=True`, the default, whenever an endpoint is there): the bot's own posts come
  back as `message` events (`user` = the bot user, `bot_id`, `app_id`, `bot_profile`,
  `parent_user_id` in threads; a file upload as subtype `file_share`) and its updates as
  `message_changed` (the new message in `message`, the old one in `previous_message`).
  `chat.startStream` is echoed as a new message and `chat.stopStream` as a change; appends
  are not echoed. `echoes` lists them (`tests/test_fakes_echo.py`:
  test_bolt_drops_its_own_echoes_but_not_a_persons_message — bolt's self-event filter drops
  them; test_bolt_sees_slacks_echo_shapes_over_http and test_bolt_sees_echoes_over_socket_mode
  — with the filter off a listener sees Slack's shapes;
  test_no_echo_without_an_endpoint_or_when_off).

Slash-command and interactivity `response_url`s can point at `respond_url()`; what is posted
there is kept in `responses`. `wait_for(predicate)` waits on the fake's own events.

The AI app surface (assistant threads: their events, `assistant.threads.setStatus` with its
2-minute lifetime, `setSuggestedPrompts`, `setTitle`), App Home (`app_home_opened`,
`views.publish`, clicks from a Home view) and `users.conversations` are in
`tests/fakes/slack_surfaces.py` (`SurfacesMixin`); `status_ttl` sets how long a status lasts.

Modals, files people share and message shortcuts, as Slack does them
(`tests/test_slack_fake_creative.py`):

- Every payload that carries a `trigger_id` (commands, block actions, shortcuts, view
  submissions) gets a fresh one; `views.open` accepts it once (`exchanged_trigger_id` after)
  and within 3 s (`expired_trigger_id`; an unknown one is `invalid_trigger_id`). The view is
  validated as Slack does (a modal, title/submit/close plain text of at most 24 characters,
  `callback_id` of at most 255, `private_metadata` of at most 3,000, at most 100 blocks, an
  input's `initial_value` within its `max_length` of at most 3,000) and answered
  `invalid_arguments` otherwise; opened views are kept in `views`. `submit_view()` delivers
  the person's `view_submission` with the typed values in `view.state.values`
  [test_views_open_takes_a_fresh_trigger_once_and_the_submission_reaches_bolt].
- `share_file()`: a person shares a file (stored with Slack's full file object) and the app
  gets the `message` event with subtype `file_share` and `files`; `stub_files=True` sends
  `file_access: check_file_info` stubs instead, which `files.info` completes. `url_private`
  serves the bytes only with `Authorization: Bearer <bot token>` and the `files:read` scope
  (`files_read=False` takes it away); otherwise Slack's sign-in page, as HTML with status 200
  [test_shared_files_arrive_as_slack_sends_them_and_need_the_token].
- `message_shortcut()`: the `message_action` payload of a message shortcut (the message with
  its files, the channel, a `trigger_id` and a `response_url`)
  [test_message_shortcuts_reach_bolt].

Socket Mode (`slack.socket_mode`, a `FakeSocketMode`; envelopes are spread among the open
connections in turn, as Slack spreads them among an app's replicas): `apps.connections.open`
with the app-level token hands out a one-time `ws://` URL; the websocket greets with `hello`,
answers pings, and the test pushes envelopes and awaits their acks (`push`), or asks the
client to reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import hmac
import itertools
import json
import math
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

import aiohttp
from aiohttp import WSMsgType, web

from tests.fakes.slack_surfaces import STATUS_TTL, SurfacesMixin

MAX_TEXT = 4000
MAX_SECTION_TEXT = 3000
MAX_BLOCKS = 50


@dataclass(frozen=True, slots=True)
class Limit:
    """At most `calls` successful calls within any `per` seconds (a sliding window)."""

    calls: int
    per: float


@dataclass(frozen=True, slots=True)
class Bucket:
    """A token bucket: up to `burst` calls at once, refilled at `rate` calls a second."""

    rate: float
    burst: int


Rule = Limit | Bucket


def slack_like_limits() -> tuple[dict[str, Rule], Rule]:
    """Limits shaped like Slack's published tiers (the fake's defaults): `chat.update` is
    Tier 3, about 50 a minute per workspace, bursts allowed (any 50 in 60 s), and
    `usergroups.users.list` Tier 2, 20 a minute; `chat.postMessage` is about one a second per
    channel with short bursts (a bucket of 3, 1 a second)."""
    methods: dict[str, Rule] = {
        "chat.update": Limit(50, 60.0),
        "usergroups.users.list": Limit(20, 60.0),
    }
    return methods, Bucket(rate=1.0, burst=3)


_SLACK_LIKE: Any = object()  # "not given": use slack_like_limits()
DEFAULT_SIGNING_SECRET = "test-signing-secret"
# Slack's redelivery schedule for events: at once, after a minute, after five minutes
SLACK_RETRY_DELAYS = (0.0, 60.0, 300.0)


@dataclass(slots=True)
class Call:
    """One request the fake answered."""

    method: str
    params: dict[str, Any]
    at: float
    status: int
    error: str | None = None


@dataclass(slots=True)
class FakeMessage:
    channel: str
    ts: str
    thread_ts: str | None
    text: str
    blocks: list[dict[str, Any]]
    user: str
    edits: int = 0
    streaming: bool = False
    files: list[str] = field(default_factory=list)
    bot_id: str | None = None  # set on the bot's own messages

    @property
    def all_text(self) -> str:
        """The fallback text plus every text found in the blocks (what a person would read)."""
        return "\n".join([self.text, *_block_texts(self.blocks)])


@dataclass(slots=True)
class FakeFile:
    id: str
    filename: str
    length: int
    data: bytes | None = None
    title: str | None = None
    channel: str | None = None
    thread_ts: str | None = None
    mimetype: str = "application/octet-stream"
    user: str | None = None  # who shared it (the bot's uploads: the bot user)


@dataclass(slots=True)
class Attempt:
    """One try at delivering a request to the app."""

    number: int  # 0 for the first delivery, then the retry number
    transport: str  # "http" or "socket"
    at: float
    outcome: str  # "acked", "timeout", "http_error" or "connection_failed"
    status: int | None = None  # the HTTP status (200 for a Socket Mode ack)
    latency: float | None = None  # seconds until the answer, None when none came in time
    retry_reason: str | None = None  # what the request said about itself on a retry
    body: str = ""  # what the app answered (HTTP body, or the ack's payload as JSON)
    headers: dict[str, str] = field(default_factory=dict)  # what was sent (HTTP)
    no_retry: bool = False  # the app answered `X-Slack-No-Retry: 1`


@dataclass(slots=True)
class Delivery:
    """A request Slack sends the app (an event, a slash command or an interaction) and every
    attempt to deliver it."""

    kind: str  # "events_api", "slash_commands" or "interactive"
    payload: dict[str, Any]
    echo: bool = False  # one of the bot's own messages coming back
    message: FakeMessage | None = None  # for `say()` and echoes: the message it is about
    attempts: list[Attempt] = field(default_factory=list)
    finished: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def event(self) -> dict[str, Any] | None:
        return self.payload.get("event") if self.kind == "events_api" else None

    @property
    def event_id(self) -> str | None:
        return self.payload.get("event_id") if self.kind == "events_api" else None

    @property
    def acked(self) -> bool:
        return any(a.outcome == "acked" for a in self.attempts)

    @property
    def ack(self) -> Attempt | None:
        """The attempt the app acknowledged in time, if any."""
        return next((a for a in self.attempts if a.outcome == "acked"), None)

    @property
    def timeouts(self) -> int:
        return sum(a.outcome == "timeout" for a in self.attempts)

    async def settled(self, timeout: float = 30.0) -> Delivery:
        """Wait until the last attempt is over (acked, or out of retries)."""
        try:
            await asyncio.wait_for(self.finished.wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"delivery of {self.kind} still retrying") from None
        return self


def _block_texts(blocks: Iterable[dict[str, Any]]) -> list[str]:
    out: list[str] = []
    for block in blocks:
        text = block.get("text")
        if isinstance(text, dict):
            out.append(str(text.get("text", "")))
        elif isinstance(text, str):
            out.append(text)
        for element in block.get("elements", []) or []:
            if isinstance(element, dict):
                inner = element.get("text")
                if isinstance(inner, dict):
                    out.append(str(inner.get("text", "")))
                elif isinstance(inner, str):
                    out.append(inner)
    return out


class FakeSlack(SurfacesMixin):
    """The fake server. Use as `async with FakeSlack() as slack:` and point clients at
    `slack.api_url` (it ends with a slash, as `AsyncWebClient` expects).

    Limits: `method_limits` (per workspace, by method) and `channel_post_limit` (per channel,
    `chat.postMessage`) default to `slack_like_limits()`; pass a dict / rule to replace them,
    `channel_post_limit=None` for no per-channel limit, or `limits=False` for none at all.
    Delivery to the app: `connect_app()` (HTTP) or a Socket Mode connection; `ack_deadline`,
    `retry_delays` and `echo` as in the module docstring."""

    def __init__(
        self,
        *,
        bot_token: str = "xoxb-test-token",
        team_id: str = "T0TEAM",
        bot_user_id: str = "UBOT",
        bot_id: str = "BBOT",
        app_id: str = "A0APP",
        admins: Iterable[str] = (),
        usergroups: dict[str, Iterable[str]] | None = None,
        locales: Mapping[str, str] | None = None,
        limits: bool = True,
        method_limits: dict[str, Rule] | None = None,
        channel_post_limit: Rule | None = _SLACK_LIKE,
        native_streaming: bool = True,
        echo: bool = True,
        ack_deadline: float = 3.0,
        retry_delays: Sequence[float] = SLACK_RETRY_DELAYS,
        status_ttl: float = STATUS_TTL,
        files_read: bool = True,
    ) -> None:
        self._init_surfaces(status_ttl=status_ttl)  # assistant threads and App Home
        self.bot_token = bot_token
        self.team_id = team_id
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.app_id = app_id
        self.admins: set[str] = set(admins)
        # user group id -> member ids (`usergroups.users.list`); a test may change it any time
        self.usergroups: dict[str, list[str]] = {
            group: list(members) for group, members in (usergroups or {}).items()
        }
        # what `users.info` says with `include_locale`: a person's Slack language
        self.locales: dict[str, str] = dict(locales or {})
        self.default_locale = "en-US"
        default_methods, default_post = slack_like_limits() if limits else ({}, None)
        self.method_limits: dict[str, Rule] = dict(
            default_methods if method_limits is None else method_limits
        )
        self.channel_post_limit: Rule | None = (
            default_post if channel_post_limit is _SLACK_LIKE else channel_post_limit
        )
        self.native_streaming = native_streaming
        self.echo = echo
        self.ack_deadline = ack_deadline
        self.retry_delays = tuple(retry_delays)
        self.files_read = files_read  # the app has the files:read scope
        self.triggers: dict[str, tuple[float, bool]] = {}  # id -> (issued at, used)
        self.trigger_lifetime = 3.0
        self.views: dict[str, dict[str, Any]] = {}
        self.file_downloads: list[tuple[str, int]] = []  # (file id, HTTP status)
        # the app's HTTP endpoint (`connect_app`); without it, Socket Mode if connected
        self.app_url: str | None = None
        self.signing_secret = DEFAULT_SIGNING_SECRET
        self.deliveries: list[Delivery] = []
        # `calls` and `messages` are the record (read them, do not modify them); the indexes
        # below make the lookups a busy benchmark does per request O(1) instead of O(calls)
        self.calls: list[Call] = []
        self._calls_by_method: dict[str, list[Call]] = {}
        self._ratelimited: list[Call] = []
        # client addresses seen: one per TCP connection, so a client that pools shows few
        self.connections: set[str] = set()
        self.messages: list[FakeMessage] = []
        self._by_ts: dict[tuple[str, str], FakeMessage] = {}
        self._by_thread: dict[tuple[str, str | None], list[FakeMessage]] = {}
        self.files: dict[str, FakeFile] = {}
        self.reactions: list[tuple[str, str, str]] = []
        self.responses: list[dict[str, Any]] = []
        self._forced: dict[str, deque[int]] = {}
        self._windows: dict[tuple[str, str], deque[float]] = {}
        self._tokens: dict[tuple[str, str], tuple[float, float]] = {}  # (tokens, at)
        self._ids = itertools.count(1)
        self._events = itertools.count(1)
        self._clock = 1_700_000_000
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._http: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Condition()
        self.socket_mode = FakeSocketMode(self)

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(client_max_size=1024**3)
        self.socket_mode.install(app)
        app.router.add_post("/api/{method}", self._api)
        app.router.add_get("/api/{method}", self._api)
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_get("/files-pri/{slug}/{name}", self._file_private)
        app.router.add_get("/files-pri/{slug}/download/{name}", self._file_private)
        app.router.add_post("/respond/{token}", self._respond)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self._port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr,attr-defined]

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.close()
            self._http = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeSlack:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/"

    def respond_url(self, token: str = "r1") -> str:
        """A `response_url` for slash commands and button clicks."""
        return f"{self.base_url}/respond/{token}"

    def block_actions(
        self, button: dict[str, Any], message: FakeMessage, *, user: str, team: str, app_id: str
    ) -> dict[str, Any]:
        """The `block_actions` payload Slack sends when `user` clicks `button` on `message`."""
        return {
            "type": "block_actions",
            "user": {"id": user, "team_id": team},
            "team": {"id": team},
            "api_app_id": app_id,
            "trigger_id": self.new_trigger(),
            "channel": {"id": message.channel},
            "container": {"type": "message", "message_ts": message.ts},
            "message": {"ts": message.ts, "thread_ts": message.thread_ts, "text": message.text},
            "response_url": self.respond_url(),
            "actions": [
                {
                    "type": "button",
                    "action_id": button["action_id"],
                    "value": button["value"],
                    "block_id": "b1",
                    "action_ts": "1",
                }
            ],
        }

    # --- delivering to the app ----------------------------------------------------------

    def connect_app(self, url: str, signing_secret: str = DEFAULT_SIGNING_SECRET) -> None:
        """Deliver events, commands and interactions to an HTTP-mode app at `url` (its
        Request URL), signed with `signing_secret`, as Slack does."""
        self.app_url = url
        self.signing_secret = signing_secret

    def disconnect_app(self) -> None:
        self.app_url = None

    @property
    def has_endpoint(self) -> bool:
        return self.app_url is not None or self.socket_mode.current is not None

    @property
    def echoes(self) -> list[Delivery]:
        """The deliveries of the bot's own messages coming back."""
        return [d for d in self.deliveries if d.echo]

    def event_callback(self, event: dict[str, Any], *, event_id: str | None = None) -> dict:
        """The Events API envelope around `event`, as Slack sends it."""
        number = next(self._events)
        return {
            "token": "legacy",
            "team_id": self.team_id,
            "api_app_id": self.app_id,
            "event": event,
            "type": "event_callback",
            "event_id": event_id or f"Ev{number:08d}",
            "event_time": int(time.time()),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": self.team_id,
                    "user_id": self.bot_user_id,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
            "event_context": f"4-fake-{number}",
        }

    def message_event(self, message: FakeMessage) -> dict[str, Any]:
        """The `message` event Slack sends for a stored message (a person's, or the bot's own
        with `bot_id`, `app_id` and `bot_profile`)."""
        event = {**_wire(message), "channel": message.channel, "event_ts": message.ts}
        event["channel_type"] = _channel_type(message.channel)
        event["team"] = self.team_id
        if message.bot_id:
            event.update(self._bot_fields())
        if message.files:
            event.update(subtype="file_share", upload=False, files=self._file_refs(message))
        if message.thread_ts and message.thread_ts != message.ts:
            root = self.message(message.channel, message.thread_ts)
            if root is not None:
                event["parent_user_id"] = root.user
        return event

    def message_changed_event(self, message: FakeMessage, previous: FakeMessage) -> dict[str, Any]:
        """The `message_changed` event Slack sends when `previous` became `message`."""
        now = self._next_ts()
        changed = {**self.message_event(message), "edited": {"user": message.user, "ts": now}}
        for key in ("channel", "event_ts", "channel_type", "parent_user_id"):
            changed.pop(key, None)
        old = self.message_event(previous)
        for key in ("channel", "event_ts", "channel_type", "parent_user_id"):
            old.pop(key, None)
        return {
            "type": "message",
            "subtype": "message_changed",
            "hidden": True,
            "message": changed,
            "previous_message": old,
            "channel": message.channel,
            "channel_type": _channel_type(message.channel),
            "ts": now,
            "event_ts": now,
        }

    def _bot_fields(self) -> dict[str, Any]:
        return {
            "bot_id": self.bot_id,
            "app_id": self.app_id,
            "bot_profile": {
                "id": self.bot_id,
                "app_id": self.app_id,
                "name": "sense",
                "team_id": self.team_id,
                "deleted": False,
            },
        }

    def _file_refs(self, message: FakeMessage, *, stubs: bool = False) -> list[dict[str, Any]]:
        """The `files` of a message event: Slack's file objects (or, as Slack sometimes
        sends them, stubs to complete with `files.info`)."""
        refs = []
        for file_id in message.files:
            file = self.files.get(file_id)
            if file is None:
                refs.append({"id": file_id, "name": file_id, "title": file_id})
            elif stubs:
                refs.append(
                    {"id": file_id, "mode": "file_access", "file_access": "check_file_info"}
                )
            else:
                refs.append(self.file_object(file))
        return refs

    def file_object(self, file: FakeFile) -> dict[str, Any]:
        """A file as Slack describes it (`files.info`, a `file_share` event's `files`)."""
        slug = f"{self.team_id}-{file.id}"
        kind = file.filename.rsplit(".", 1)[-1].lower() if "." in file.filename else "binary"
        wire: dict[str, Any] = {
            "id": file.id,
            "created": self._clock,
            "timestamp": self._clock,
            "name": file.filename,
            "title": file.title or file.filename,
            "mimetype": file.mimetype,
            "filetype": kind,
            "pretty_type": kind.upper(),
            "user": file.user or self.bot_user_id,
            "user_team": self.team_id,
            "editable": False,
            "size": file.length,
            "mode": "hosted",
            "is_external": False,
            "external_type": "",
            "is_public": True,
            "public_url_shared": False,
            "display_as_bot": False,
            "username": "",
            "url_private": f"{self.base_url}/files-pri/{slug}/{file.filename}",
            "url_private_download": f"{self.base_url}/files-pri/{slug}/download/{file.filename}",
            "permalink": f"https://fake.slack.test/files/{file.user}/{file.id}/{file.filename}",
            "has_rich_preview": False,
            "file_access": "visible",
        }
        if file.mimetype.startswith("image/"):
            wire.update(original_w=96, original_h=96)
        return wire

    def new_trigger(self) -> str:
        """A `trigger_id` for a payload: `views.open` takes it once, within 3 s."""
        trigger = f"{next(self._ids)}.{self._clock}.{uuid_hex()}"
        self.triggers[trigger] = (time.monotonic(), False)
        return trigger

    async def send_event(self, event: dict[str, Any], *, event_id: str | None = None) -> Delivery:
        """Deliver an Events API event (wrapped in its `event_callback`); returns once the
        first attempt is over, retries go on in the background (`Delivery.settled()`)."""
        body = self.event_callback(event, event_id=event_id)
        return await self._deliver(Delivery("events_api", body))

    async def send_command(
        self,
        command: str,
        text: str = "",
        *,
        user: str = "U1",
        channel: str = "C1",
        **extra: str,
    ) -> Delivery:
        """Deliver a slash command as Slack sends it (`response_url` is `respond_url()`)."""
        payload = {
            "token": "legacy",
            "team_id": self.team_id,
            "team_domain": "fake",
            "channel_id": channel,
            "channel_name": "general",
            "user_id": user,
            "user_name": user.lower(),
            "command": command,
            "text": text,
            "api_app_id": self.app_id,
            "is_enterprise_install": "false",
            "response_url": self.respond_url(),
            "trigger_id": self.new_trigger(),
            **extra,
        }
        return await self._deliver(Delivery("slash_commands", payload))

    async def send_action(self, payload: dict[str, Any]) -> Delivery:
        """Deliver an interactivity payload (`block_actions`, `view_submission`, ...)."""
        return await self._deliver(Delivery("interactive", payload))

    async def click(
        self, button: dict[str, Any], message: FakeMessage, *, user: str = "U1"
    ) -> Delivery:
        """A person clicks `button` on `message`."""
        payload = self.block_actions(
            button, message, user=user, team=self.team_id, app_id=self.app_id
        )
        return await self.send_action(payload)

    async def share_file(
        self,
        channel: str,
        filename: str,
        data: bytes,
        mimetype: str,
        *,
        text: str = "",
        user: str = "U1",
        thread_ts: str | None = None,
        stub_files: bool = False,
        more: Sequence[tuple[str, bytes, str]] = (),
    ) -> Delivery:
        """A person shares a file (and `more` files) in a message: the files are stored
        like uploads, the message too, and the app gets its `file_share` message event."""
        ids = []
        for name, blob, mime in ((filename, data, mimetype), *more):
            file_id = f"F{next(self._ids):06d}"
            self.files[file_id] = FakeFile(
                id=file_id,
                filename=name,
                length=len(blob),
                data=blob,
                channel=channel,
                thread_ts=thread_ts,
                mimetype=mime,
                user=user,
            )
            ids.append(file_id)
        message = FakeMessage(
            channel=channel,
            ts=self._next_ts(),
            thread_ts=thread_ts,
            text=text,
            blocks=[],
            user=user,
            files=ids,
        )
        self._keep(message)
        event = self.message_event(message)
        if stub_files:
            event["files"] = self._file_refs(message, stubs=True)
        body = self.event_callback(event)
        return await self._deliver(Delivery("events_api", body, message=message))

    async def message_shortcut(
        self, callback_id: str, message: FakeMessage, *, user: str = "U1"
    ) -> Delivery:
        """A person runs the message shortcut `callback_id` on `message`."""
        wire = (
            {**_wire(message), "files": self._file_refs(message)}
            if message.files
            else _wire(message)
        )
        payload = {
            "type": "message_action",
            "token": "legacy",
            "action_ts": self._next_ts(),
            "team": {"id": self.team_id, "domain": "fake"},
            "user": {"id": user, "username": user.lower(), "team_id": self.team_id},
            "channel": {"id": message.channel, "name": "general"},
            "is_enterprise_install": False,
            "enterprise": None,
            "callback_id": callback_id,
            "trigger_id": self.new_trigger(),
            "response_url": self.respond_url(),
            "message_ts": message.ts,
            "message": wire,
        }
        return await self.send_action(payload)

    async def submit_view(
        self, view_id: str, values: dict[str, str], *, user: str = "U1"
    ) -> Delivery:
        """The person sends the modal `view_id` with `values` typed into its inputs
        (`{action_id: text}`): Slack's `view_submission`."""
        view = copy.deepcopy(self.views[view_id])
        state: dict[str, dict[str, Any]] = {}
        for block in view.get("blocks") or []:
            element = block.get("element") or {}
            if block.get("type") == "input" and element.get("action_id") in values:
                typed = {"type": element.get("type"), "value": values[element["action_id"]]}
                state.setdefault(block["block_id"], {})[element["action_id"]] = typed
        view["state"] = {"values": state}
        payload = {
            "type": "view_submission",
            "team": {"id": self.team_id, "domain": "fake"},
            "user": {
                "id": user,
                "username": user.lower(),
                "name": user.lower(),
                "team_id": self.team_id,
            },
            "api_app_id": self.app_id,
            "token": "legacy",
            "trigger_id": self.new_trigger(),
            "view": view,
            "response_urls": [],
            "is_enterprise_install": False,
            "enterprise": None,
        }
        return await self.send_action(payload)

    async def say(
        self,
        channel: str,
        text: str,
        *,
        user: str = "U1",
        thread_ts: str | None = None,
        event_id: str | None = None,
    ) -> Delivery:
        """A person posts `text` (in a thread when `thread_ts` is given): the message is
        stored like any other and delivered to the app as a `message` event."""
        message = FakeMessage(
            channel=channel,
            ts=self._next_ts(),
            thread_ts=thread_ts,
            text=text,
            blocks=[],
            user=user,
        )
        self._keep(message)
        body = self.event_callback(self.message_event(message), event_id=event_id)
        return await self._deliver(Delivery("events_api", body, message=message))

    def _echo(self, event: dict[str, Any], message: FakeMessage) -> None:
        """The bot's own message (or change) back to the app, in the background."""
        if not self.echo or not self.has_endpoint:
            return
        delivery = Delivery("events_api", self.event_callback(event), echo=True, message=message)
        self.deliveries.append(delivery)  # recorded now, delivered in the background
        self._spawn(self._run(delivery))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, delivery: Delivery) -> Delivery:
        if not self.has_endpoint:
            raise AssertionError("no app endpoint: connect_app() or open Socket Mode first")
        self.deliveries.append(delivery)
        return await self._run(delivery)

    async def _run(self, delivery: Delivery) -> Delivery:
        """Run the first attempt now and any retries in the background."""
        first = await self._attempt(delivery, 0, None)
        if first.outcome == "acked" or not self._retryable(delivery, first):
            delivery.finished.set()
        else:
            self._spawn(self._retry(delivery, first))
        await self._notify()
        return delivery

    def _retryable(self, delivery: Delivery, attempt: Attempt) -> bool:
        return delivery.kind == "events_api" and not attempt.no_retry

    async def _retry(self, delivery: Delivery, last: Attempt) -> None:
        try:
            for number, delay in enumerate(self.retry_delays, start=1):
                await asyncio.sleep(delay)
                reason = _retry_reason(last)
                last = await self._attempt(delivery, number, reason)
                await self._notify()
                if last.outcome == "acked" or not self._retryable(delivery, last):
                    break
        finally:
            delivery.finished.set()
            await self._notify()

    async def _attempt(self, delivery: Delivery, number: int, reason: str | None) -> Attempt:
        if self.app_url is not None:
            attempt = await self._attempt_http(delivery, number, reason)
        else:
            attempt = await self.socket_mode.attempt(delivery, number, reason)
        delivery.attempts.append(attempt)
        return attempt

    def sign(self, body: str, timestamp: str) -> str:
        """Slack's request signature: `v0=` HMAC-SHA256 of `v0:{timestamp}:{body}`."""
        base = f"v0:{timestamp}:{body}".encode()
        return "v0=" + hmac.new(self.signing_secret.encode(), base, hashlib.sha256).hexdigest()

    async def _attempt_http(self, delivery: Delivery, number: int, reason: str | None) -> Attempt:
        assert self.app_url is not None
        if delivery.kind == "events_api":
            body, ctype = json.dumps(delivery.payload), "application/json"
        elif delivery.kind == "slash_commands":
            body, ctype = urlencode(delivery.payload), "application/x-www-form-urlencoded"
        else:
            body = urlencode({"payload": json.dumps(delivery.payload)})
            ctype = "application/x-www-form-urlencoded"
        stamp = str(int(time.time()))
        headers = {
            "Content-Type": ctype,
            "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": self.sign(body, stamp),
        }
        if number:
            headers["X-Slack-Retry-Num"] = str(number)
            headers["X-Slack-Retry-Reason"] = reason or "http_timeout"
        if self._http is None:
            self._http = aiohttp.ClientSession()
        at = time.monotonic()
        attempt = Attempt(number, "http", at, "connection_failed", retry_reason=reason)
        attempt.headers = dict(headers)
        timeout = aiohttp.ClientTimeout(total=self.ack_deadline)
        try:
            async with self._http.post(
                self.app_url, data=body.encode(), headers=headers, timeout=timeout
            ) as response:
                attempt.body = await response.text()
                attempt.status = response.status
                attempt.latency = time.monotonic() - at
                attempt.outcome = "acked" if 200 <= response.status < 300 else "http_error"
                attempt.no_retry = response.headers.get("X-Slack-No-Retry") == "1"
        except TimeoutError:
            attempt.outcome = "timeout"
        except aiohttp.ClientError:
            attempt.outcome = "connection_failed"
        return attempt

    async def wait_for(
        self, predicate: Callable[[], Any], *, within: float = 10.0, what: str = "condition"
    ) -> Any:
        """Wait until `predicate()` is truthy (re-checked whenever the fake answers a call or a
        delivery attempt ends, and every 50 ms for state on the client's side); return its
        value or fail with `what` after `within` seconds."""

        async def until() -> Any:
            async with self._changed:
                while not (value := predicate()):
                    # woken by the fake's own events; the short timeout re-checks conditions
                    # on the client's side too (what it cached from a dispatch, say)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._changed.wait(), 0.05)
                return value

        try:
            return await asyncio.wait_for(until(), within)
        except TimeoutError:
            raise AssertionError(f"timed out waiting for {what}") from None

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # --- test controls and queries -------------------------------------------------------

    def force_429(self, method: str, *, times: int = 1, retry_after: int = 1) -> None:
        """Answer the next `times` calls of `method` with HTTP 429."""
        self._forced.setdefault(method, deque()).extend([retry_after] * times)

    def calls_to(self, method: str, *, ok: bool | None = None) -> list[Call]:
        calls = self._calls_by_method.get(method, [])
        if ok is None:
            return list(calls)
        return [c for c in calls if (c.status == 200 and c.error is None) == ok]

    @property
    def ratelimited(self) -> list[Call]:
        return list(self._ratelimited)

    def thread(self, channel: str, thread_ts: str) -> list[FakeMessage]:
        """The replies in a thread (not the root), oldest first."""
        return list(self._by_thread.get((channel, thread_ts), []))

    def top_level(self, channel: str) -> list[FakeMessage]:
        return list(self._by_thread.get((channel, None), []))

    def message(self, channel: str, ts: str) -> FakeMessage | None:
        return self._by_ts.get((channel, ts))

    def _record(self, call: Call) -> None:
        self.calls.append(call)
        self._calls_by_method.setdefault(call.method, []).append(call)
        if call.status == 429:
            self._ratelimited.append(call)

    def _keep(self, message: FakeMessage) -> None:
        self.messages.append(message)
        self._by_ts.setdefault((message.channel, message.ts), message)
        self._by_thread.setdefault((message.channel, message.thread_ts), []).append(message)
        self._replied(message)

    # --- HTTP handlers -------------------------------------------------------------------

    async def _params(self, request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query)
        body = await request.read()
        ctype = request.content_type
        if body and ctype == "application/json":
            loaded = json.loads(body)
            if isinstance(loaded, dict):
                params.update(loaded)
        elif body and ctype in ("application/x-www-form-urlencoded", ""):
            params.update(parse_qsl(body.decode(), keep_blank_values=True))
        elif body and ctype.startswith("multipart/"):
            form = await request.post()
            params.update({k: v for k, v in form.items() if isinstance(v, str)})
        return params

    async def _api(self, request: web.Request) -> web.Response:
        response = await self._api_answer(request)
        await self._notify()
        return response

    async def _api_answer(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.connections.add(str(peer))
        params = await self._params(request)
        token = params.pop("token", None)
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            token = auth.removeprefix("Bearer ")
        now = time.monotonic()
        if not token:
            return self._answer(method, params, now, {"ok": False, "error": "not_authed"})
        if token != self.bot_token:
            return self._answer(method, params, now, {"ok": False, "error": "invalid_auth"})
        retry_after = self._rate_check(method, params, now)
        if retry_after is not None:
            return self._answer_429(method, params, now, retry_after)
        handler = getattr(self, "_m_" + method.replace(".", "_"), None)
        if handler is None:
            return self._answer(method, params, now, {"ok": False, "error": "unknown_method"})
        return self._answer(method, params, now, handler(params))

    def _answer(
        self, method: str, params: dict[str, Any], now: float, body: dict[str, Any]
    ) -> web.Response:
        self._record(Call(method, params, now, 200, None if body["ok"] else body["error"]))
        return web.json_response(body)

    def _answer_429(
        self, method: str, params: dict[str, Any], now: float, retry_after: int
    ) -> web.Response:
        """Slack's 429: `Retry-After` in seconds and `ratelimited` in the body."""
        self._record(Call(method, params, now, 429, "ratelimited"))
        return web.json_response(
            {"ok": False, "error": "ratelimited"},
            status=429,
            headers={"Retry-After": str(retry_after)},
        )

    def _rate_check(self, method: str, params: dict[str, Any], now: float) -> int | None:
        forced = self._forced.get(method)
        if forced:
            return forced.popleft()
        checks: list[tuple[tuple[str, str], Rule]] = []
        if method in self.method_limits:
            checks.append(((method, "*"), self.method_limits[method]))
        if method == "chat.postMessage" and self.channel_post_limit is not None:
            checks.append(((method, str(params.get("channel"))), self.channel_post_limit))
        for key, rule in checks:
            wait = self._wait(key, rule, now)
            if wait > 0:
                return max(1, math.ceil(wait))
        for key, rule in checks:  # every check passed: the call counts against each
            if isinstance(rule, Limit):
                self._windows[key].append(now)
            else:
                tokens, _ = self._tokens[key]
                self._tokens[key] = (tokens - 1, now)
        return None

    def _wait(self, key: tuple[str, str], rule: Rule, now: float) -> float:
        """Seconds until `rule` allows one more call under `key` (0: now)."""
        if isinstance(rule, Limit):
            window = self._windows.setdefault(key, deque())
            while window and now - window[0] >= rule.per:
                window.popleft()
            return rule.per - (now - window[0]) if len(window) >= rule.calls else 0.0
        tokens, at = self._tokens.get(key, (float(rule.burst), now))
        tokens = min(float(rule.burst), tokens + (now - at) * rule.rate)
        self._tokens[key] = (tokens, now)
        return 0.0 if tokens >= 1 else (1 - tokens) / rule.rate

    async def _upload(self, request: web.Request) -> web.Response:
        file = self.files.get(request.match_info["file_id"])
        data = await request.read()
        self._record(
            Call("upload", {"file_id": request.match_info["file_id"]}, time.monotonic(), 200)
        )
        if file is None:
            return web.Response(status=404, text="file not found", content_type="text/plain")
        file.data = data
        file.mimetype = _sniff_mimetype(data)  # Slack sees what the bytes are
        await self._notify()
        return web.Response(text=f"OK - {len(data)}", content_type="text/plain")

    async def _file_private(self, request: web.Request) -> web.Response:
        """`url_private`: the bytes for the bot token with `files:read`, else the sign-in
        page Slack serves (HTML, status 200)."""
        slug = request.match_info["slug"]
        file = self.files.get(slug.rsplit("-", 1)[-1])
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if file is None or file.data is None:
            self.file_downloads.append((slug, 404))
            return web.Response(status=404, text="file not found", content_type="text/plain")
        if token != self.bot_token or not self.files_read:
            self.file_downloads.append((file.id, 200))
            page = (
                "<!DOCTYPE html><html><head><title>Slack</title></head><body>Sign in</body></html>"
            )
            return web.Response(text=page, content_type="text/html")
        self.file_downloads.append((file.id, 200))
        return web.Response(body=file.data, content_type=file.mimetype)

    async def _respond(self, request: web.Request) -> web.Response:
        body = await request.json()
        self._record(Call("response_url", body, time.monotonic(), 200))
        self.responses.append(body)
        await self._notify()
        return web.Response(text="ok", content_type="text/plain")

    # --- methods -------------------------------------------------------------------------

    def _next_ts(self) -> str:
        return f"{self._clock + next(self._ids)}.000100"

    def _check_content(self, params: dict[str, Any]) -> str | None:
        text = params.get("text") or ""
        blocks = _loads(params.get("blocks")) or []
        if not text and not blocks:
            return "no_text"
        if len(text) > MAX_TEXT:
            return "msg_too_long"
        if len(blocks) > MAX_BLOCKS:
            return "invalid_blocks"
        for block in blocks:
            inner = block.get("text")
            if block.get("type") == "section" and isinstance(inner, dict):
                if len(inner.get("text", "")) > MAX_SECTION_TEXT:
                    return "invalid_blocks"
        return None

    def _m_auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://fake.slack.test/",
            "team": "Fake Team",
            "user": "sense",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _m_chat_postMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        error = self._check_content(params)
        channel = params.get("channel")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        if error:
            return {"ok": False, "error": error}
        message = FakeMessage(
            channel=str(channel),
            ts=self._next_ts(),
            thread_ts=params.get("thread_ts") or None,
            text=params.get("text") or "",
            blocks=_loads(params.get("blocks")) or [],
            user=self.bot_user_id,
            bot_id=self.bot_id,
        )
        self._keep(message)
        self._echo(self.message_event(message), message)
        return {"ok": True, "channel": channel, "ts": message.ts, "message": _wire(message)}

    def _m_chat_postEphemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        self.responses.append(dict(params))
        return {"ok": True, "message_ts": self._next_ts()}

    def _m_chat_update(self, params: dict[str, Any]) -> dict[str, Any]:
        message = self.message(str(params.get("channel")), str(params.get("ts")))
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        error = self._check_content(params)
        if error:
            return {"ok": False, "error": error}
        previous = copy.deepcopy(message)
        message.text = params.get("text") or ""
        message.blocks = _loads(params.get("blocks")) or []
        message.edits += 1
        self._echo(self.message_changed_event(message, previous), message)
        return {"ok": True, "channel": message.channel, "ts": message.ts, "text": message.text}

    def _m_chat_startStream(self, params: dict[str, Any]) -> dict[str, Any]:
        if not self.native_streaming:
            return {"ok": False, "error": "not_allowed"}
        if not params.get("channel") or not params.get("thread_ts"):
            return {"ok": False, "error": "invalid_arguments"}
        message = FakeMessage(
            channel=str(params["channel"]),
            ts=self._next_ts(),
            thread_ts=str(params["thread_ts"]),
            text=_stream_text(params),
            blocks=[],
            user=self.bot_user_id,
            streaming=True,
            bot_id=self.bot_id,
        )
        self._keep(message)
        self._echo(self.message_event(message), message)
        return {"ok": True, "channel": message.channel, "ts": message.ts}

    def _stream(self, params: dict[str, Any]) -> FakeMessage | None:
        message = self.message(str(params.get("channel")), str(params.get("ts")))
        return message if message is not None and message.streaming else None

    def _m_chat_appendStream(self, params: dict[str, Any]) -> dict[str, Any]:
        message = self._stream(params)
        if message is None:
            return {"ok": False, "error": "message_not_in_streaming_state"}
        message.text += _stream_text(params)
        return {"ok": True, "channel": message.channel, "ts": message.ts}

    def _m_chat_stopStream(self, params: dict[str, Any]) -> dict[str, Any]:
        message = self._stream(params)
        if message is None:
            return {"ok": False, "error": "message_not_in_streaming_state"}
        previous = copy.deepcopy(message)
        message.text += _stream_text(params)
        message.blocks = _loads(params.get("blocks")) or []
        message.streaming = False
        self._echo(self.message_changed_event(message, previous), message)
        return {"ok": True, "channel": message.channel, "ts": message.ts, "message": _wire(message)}

    def _m_files_getUploadURLExternal(self, params: dict[str, Any]) -> dict[str, Any]:
        filename = params.get("filename")
        length = params.get("length")
        if not filename or length is None:
            return {"ok": False, "error": "invalid_arguments"}
        file_id = f"F{next(self._ids):06d}"
        self.files[file_id] = FakeFile(id=file_id, filename=str(filename), length=int(length))
        return {"ok": True, "upload_url": f"{self.base_url}/upload/{file_id}", "file_id": file_id}

    def _m_files_completeUploadExternal(self, params: dict[str, Any]) -> dict[str, Any]:
        entries = _loads(params.get("files")) or []
        done: list[dict[str, Any]] = []
        for entry in entries:
            file = self.files.get(str(entry.get("id")))
            if file is None or file.data is None:
                return {"ok": False, "error": "file_not_found"}
            file.title = entry.get("title") or file.filename
            file.channel = params.get("channel_id")
            file.thread_ts = params.get("thread_ts")
            done.append({"id": file.id, "name": file.filename, "title": file.title})
        if params.get("channel_id") and done:
            message = FakeMessage(
                channel=str(params["channel_id"]),
                ts=self._next_ts(),
                thread_ts=params.get("thread_ts") or None,
                text=params.get("initial_comment") or "",
                blocks=[],
                user=self.bot_user_id,
                files=[f["id"] for f in done],
                bot_id=self.bot_id,
            )
            self._keep(message)
            self._echo(self.message_event(message), message)
        return {"ok": True, "files": done}

    def _m_users_info(self, params: dict[str, Any]) -> dict[str, Any]:
        user = params.get("user")
        if not user:
            return {"ok": False, "error": "user_not_found"}
        admin = user in self.admins
        info: dict[str, Any] = {
            "id": user,
            "team_id": self.team_id,
            "name": str(user).lower(),
            "is_bot": False,
            "is_admin": admin,
            "is_owner": False,
            "is_primary_owner": False,
        }
        # Slack sends `locale` only to a caller that asks (slack_sdk sends a bool as "1")
        if str(params.get("include_locale", "")).lower() in ("1", "true"):
            info["locale"] = self.locales.get(str(user), self.default_locale)
        return {"ok": True, "user": info}

    def _m_usergroups_users_list(self, params: dict[str, Any]) -> dict[str, Any]:
        group = params.get("usergroup")
        if not group:
            return {"ok": False, "error": "invalid_arguments"}
        if group not in self.usergroups:
            return {"ok": False, "error": "no_such_subteam"}
        return {"ok": True, "users": list(self.usergroups[group])}

    def _m_files_info(self, params: dict[str, Any]) -> dict[str, Any]:
        file = self.files.get(str(params.get("file")))
        if file is None:
            return {"ok": False, "error": "file_not_found"}
        if not self.files_read:
            return {"ok": False, "error": "missing_scope", "needed": "files:read"}
        return {"ok": True, "file": self.file_object(file)}

    def _m_views_open(self, params: dict[str, Any]) -> dict[str, Any]:
        trigger = str(params.get("trigger_id") or "")
        issued = self.triggers.get(trigger)
        if issued is None:
            return {"ok": False, "error": "invalid_trigger_id"}
        at, used = issued
        if used:
            return {"ok": False, "error": "exchanged_trigger_id"}
        if time.monotonic() - at > self.trigger_lifetime:
            return {"ok": False, "error": "expired_trigger_id"}
        view = _loads(params.get("view"))
        problem = _invalid_view(view)
        if problem is not None:
            return {
                "ok": False,
                "error": "invalid_arguments",
                "response_metadata": {"messages": [problem]},
            }
        self.triggers[trigger] = (at, True)
        view_id = f"V{next(self._ids):08d}"
        blocks = [
            {**block, "block_id": block.get("block_id") or f"b{n}"}
            for n, block in enumerate(view.get("blocks") or [])
        ]
        stored = {
            "id": view_id,
            "team_id": self.team_id,
            "type": "modal",
            "blocks": blocks,
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "state": {"values": {}},
            "hash": f"{self._clock}.{uuid_hex()[:8]}",
            "title": view.get("title"),
            "clear_on_close": False,
            "notify_on_close": False,
            "close": view.get("close"),
            "submit": view.get("submit"),
            "previous_view_id": None,
            "root_view_id": view_id,
            "app_id": self.app_id,
            "external_id": "",
            "app_installed_team_id": self.team_id,
            "bot_id": self.bot_id,
        }
        self.views[view_id] = stored
        return {"ok": True, "view": stored}

    def _m_reactions_add(self, params: dict[str, Any]) -> dict[str, Any]:
        self.reactions.append(
            (str(params.get("channel")), str(params.get("timestamp")), str(params.get("name")))
        )
        return {"ok": True}

    def _m_conversations_replies(self, params: dict[str, Any]) -> dict[str, Any]:
        channel, ts = str(params.get("channel")), str(params.get("ts"))
        root = self._by_ts.get((channel, ts))
        found = ([root] if root is not None else []) + [
            m for m in self._by_thread.get((channel, ts), []) if m is not root
        ]
        return {"ok": True, "messages": [_wire(m) for m in found], "has_more": False}


def _loads(value: Any) -> Any:
    """Form bodies carry JSON-valued parameters (blocks, files) as strings."""
    if isinstance(value, str):
        return json.loads(value) if value else None
    return value


def _sniff_mimetype(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[4:8] == b"ftyp":
        return "video/mp4"
    if data.startswith(b"ID3"):
        return "audio/mpeg"
    return "application/octet-stream"


def uuid_hex() -> str:
    return uuid.uuid4().hex


def _invalid_view(view: Any) -> str | None:
    """What Slack's `views.open` refuses (`invalid_arguments`), as its message says it."""
    if not isinstance(view, dict) or view.get("type") != "modal":
        return "[ERROR] must be a modal [json-pointer:/view/type]"
    for key in ("title", "submit", "close"):
        part = view.get(key)
        if key == "title" and part is None:
            return "[ERROR] missing required field: title [json-pointer:/view/title]"
        if part is not None and (
            not isinstance(part, dict)
            or part.get("type") != "plain_text"
            or not 1 <= len(str(part.get("text") or "")) <= 24
        ):
            return f"[ERROR] must be less than 25 characters [json-pointer:/view/{key}/text]"
    if len(str(view.get("callback_id") or "")) > 255:
        return "[ERROR] must be less than 256 characters [json-pointer:/view/callback_id]"
    if len(str(view.get("private_metadata") or "")) > 3000:
        return "[ERROR] must be less than 3001 characters [json-pointer:/view/private_metadata]"
    blocks = view.get("blocks") or []
    if len(blocks) > 100:
        return "[ERROR] must be less than 101 items [json-pointer:/view/blocks]"
    for n, block in enumerate(blocks):
        element = block.get("element") or {}
        if block.get("type") != "input" or element.get("type") != "plain_text_input":
            continue
        limit = element.get("max_length", 3000)
        if not isinstance(limit, int) or limit > 3000:
            return (
                f"[ERROR] must be at most 3000 [json-pointer:/view/blocks/{n}/element/max_length]"
            )
        if len(str(element.get("initial_value") or "")) > limit:
            return (
                "[ERROR] must be less than max_length "
                f"[json-pointer:/view/blocks/{n}/element/initial_value]"
            )
    return None


def _channel_type(channel: str) -> str:
    """What Slack's `channel_type` says for a conversation id."""
    return {"D": "im", "G": "group"}.get(channel[:1], "channel")


def _retry_reason(last: Attempt) -> str:
    """`X-Slack-Retry-Reason` (or Socket Mode's `retry_reason`) after a failed attempt."""
    if last.transport == "socket":
        return "timeout"
    return {"timeout": "http_timeout", "http_error": "http_error"}.get(
        last.outcome, "connection_failed"
    )


def _stream_text(params: dict[str, Any]) -> str:
    """The text a stream call adds: `markdown_text` and/or `markdown_text` chunks (newer
    slack_sdk versions send chunks)."""
    text = params.get("markdown_text") or ""
    for chunk in _loads(params.get("chunks")) or []:
        if isinstance(chunk, dict) and chunk.get("type") == "markdown_text":
            text += str(chunk.get("text", ""))
    return text


def _wire(message: FakeMessage) -> dict[str, Any]:
    wire: dict[str, Any] = {
        "type": "message",
        "ts": message.ts,
        "text": message.text,
        "user": message.user,
        "blocks": message.blocks,
    }
    if message.thread_ts:
        wire["thread_ts"] = message.thread_ts
    return wire


# --- Socket Mode -------------------------------------------------------------------------

DEFAULT_APP_TOKEN = "xapp-1-A0APP-1-test"


@dataclass(slots=True)
class Ack:
    """An envelope acknowledgement the client sent back on the websocket."""

    envelope_id: str
    payload: dict[str, Any] | None
    connection: int
    latency: float | None = None  # seconds from `push` to the ack; None if nobody awaited it


@dataclass(slots=True)
class SocketConnection:
    """One accepted websocket (numbered from 1 in the order they were opened)."""

    number: int
    ws: web.WebSocketResponse
    pings: int = 0
    received: list[dict[str, Any]] = field(default_factory=list)

    @property
    def closed(self) -> bool:
        return self.ws.closed


class FakeSocketMode:
    """Slack's Socket Mode side of the fake: `apps.connections.open` and the websocket.

    Like Slack, a URL from `apps.connections.open` is good for one connection, the server
    speaks first (`hello`), every envelope must be acked with its `envelope_id` on the same
    socket, and `disconnect` asks the client to fetch a new URL and reconnect. Pings are
    answered with the same payload (slack_sdk matches its `sdk-ping-pong:<time>` pongs to
    decide whether the link is stale)."""

    def __init__(self, slack: FakeSlack) -> None:
        self.slack = slack
        self.app_token = DEFAULT_APP_TOKEN
        self.app_id = "A0APP"
        self.connections: list[SocketConnection] = []
        self.acks: list[Ack] = []
        self.sent: list[dict[str, Any]] = []
        self._tickets: set[str] = set()
        self._ids = itertools.count(1)
        self._turns = itertools.count()
        self._waiting: dict[str, tuple[asyncio.Future[Ack], float]] = {}
        self._changed = asyncio.Condition()

    def install(self, app: web.Application) -> None:
        """Routes on the fake's server; the exact method path wins over `/api/{method}`."""
        app.router.add_post("/api/apps.connections.open", self._open)
        app.router.add_get("/socket-mode/link/", self._websocket)
        app.on_shutdown.append(self._shutdown)

    # --- queries -------------------------------------------------------------------------

    @property
    def opens(self) -> int:
        """Successful `apps.connections.open` calls so far."""
        return len(self.slack.calls_to("apps.connections.open", ok=True))

    def pick(self) -> SocketConnection | None:
        """The connection the next envelope goes on: Slack spreads envelopes among an app's
        open connections (up to 10, one per replica), here in turn."""
        open_ = [c for c in self.connections if not c.closed]
        if not open_:
            return None
        return open_[next(self._turns) % len(open_)]

    @property
    def current(self) -> SocketConnection | None:
        """The newest connection that is still open."""
        for connection in reversed(self.connections):
            if not connection.closed:
                return connection
        return None

    async def wait_connected(self, count: int = 1, *, timeout: float = 5.0) -> SocketConnection:
        """Wait until `count` websockets have been accepted and one is open; returns it."""

        def ready() -> bool:
            return len(self.connections) >= count and self.current is not None

        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(ready), timeout)
        current = self.current
        assert current is not None
        return current

    # --- pushing -------------------------------------------------------------------------

    async def push(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        envelope_id: str | None = None,
        accepts_response_payload: bool | None = None,
        retry_attempt: int = 0,
        retry_reason: str = "",
        timeout: float = 3.0,
    ) -> Ack:
        """Send one envelope (`slash_commands`, `events_api` or `interactive`) on the current
        connection and wait for its ack; fails the test after `timeout` seconds (Slack's ack
        deadline is three)."""
        connection = self.pick()
        if connection is None:
            raise AssertionError("no open Socket Mode connection")
        envelope_id = envelope_id or f"env-{next(self._ids):04d}"
        if accepts_response_payload is None:
            accepts_response_payload = kind == "slash_commands"
        envelope: dict[str, Any] = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": accepts_response_payload,
        }
        if kind == "events_api":
            envelope["retry_attempt"] = retry_attempt
            envelope["retry_reason"] = retry_reason
        future: asyncio.Future[Ack] = asyncio.get_running_loop().create_future()
        self._waiting[envelope_id] = (future, time.monotonic())
        try:
            await self._send(connection, envelope)
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise AssertionError(
                f"no ack for {kind} envelope {envelope_id} in {timeout}s"
            ) from None
        finally:
            self._waiting.pop(envelope_id, None)

    async def attempt(self, delivery: Delivery, number: int, reason: str | None) -> Attempt:
        """One try at delivering `delivery` as an envelope on the current connection: acked
        within the fake Slack's `ack_deadline`, or a timeout (a retry of an event is a new
        envelope with `retry_attempt` and `retry_reason`, as Slack sends it)."""
        at = time.monotonic()
        connection = self.pick()
        if connection is None:
            return Attempt(number, "socket", at, "connection_failed", retry_reason=reason)
        envelope_id = f"env-{next(self._ids):04d}"
        envelope: dict[str, Any] = {
            "envelope_id": envelope_id,
            "type": delivery.kind,
            "payload": delivery.payload,
            "accepts_response_payload": delivery.kind != "events_api",
        }
        if delivery.kind == "events_api":
            envelope["retry_attempt"] = number
            envelope["retry_reason"] = reason or ""
        future: asyncio.Future[Ack] = asyncio.get_running_loop().create_future()
        self._waiting[envelope_id] = (future, at)
        attempt = Attempt(number, "socket", at, "timeout", retry_reason=reason)
        try:
            await self._send(connection, envelope)
            ack = await asyncio.wait_for(future, self.slack.ack_deadline)
        except TimeoutError:
            return attempt
        except ConnectionError:
            attempt.outcome = "connection_failed"
            return attempt
        finally:
            self._waiting.pop(envelope_id, None)
        attempt.outcome, attempt.status, attempt.latency = "acked", 200, ack.latency
        attempt.body = json.dumps(ack.payload) if ack.payload is not None else ""
        return attempt

    async def request_reconnect(self, reason: str = "refresh_requested") -> None:
        """Send `disconnect` on the current connection, as Slack does before it rotates a
        socket; the client should open a new URL and drop this one."""
        connection = self.current
        if connection is None:
            raise AssertionError("no open Socket Mode connection")
        await self._send(
            connection, {"type": "disconnect", "reason": reason, "debug_info": {"host": "fake"}}
        )

    async def drop(self) -> None:
        """Close the current connection from the server side without warning."""
        connection = self.current
        if connection is not None:
            await connection.ws.close(code=1001, message=b"server restart")

    async def _send(self, connection: SocketConnection, message: dict[str, Any]) -> None:
        self.sent.append(message)
        await connection.ws.send_str(json.dumps(message))

    # --- handlers ------------------------------------------------------------------------

    async def _open(self, request: web.Request) -> web.Response:
        slack = self.slack
        method = "apps.connections.open"
        params = await slack._params(request)
        token = params.pop("token", None)
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            token = auth.removeprefix("Bearer ")
        now = time.monotonic()
        if not token:
            return slack._answer(method, params, now, {"ok": False, "error": "not_authed"})
        if not token.startswith("xapp-"):
            body = {"ok": False, "error": "not_allowed_token_type"}
            return slack._answer(method, params, now, body)
        if token != self.app_token:
            return slack._answer(method, params, now, {"ok": False, "error": "invalid_auth"})
        retry_after = slack._rate_check(method, params, now)
        if retry_after is not None:
            return slack._answer_429(method, params, now, retry_after)
        ticket = f"ticket-{next(self._ids):04d}"
        self._tickets.add(ticket)
        url = f"ws://127.0.0.1:{slack._port}/socket-mode/link/?ticket={ticket}&app_id={self.app_id}"
        return slack._answer(method, params, now, {"ok": True, "url": url})

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        if ticket not in self._tickets:
            return web.Response(
                status=401, text="invalid or used ticket", content_type="text/plain"
            )
        self._tickets.discard(ticket)
        ws = web.WebSocketResponse(autoping=False)
        await ws.prepare(request)
        connection = SocketConnection(number=len(self.connections) + 1, ws=ws)
        self.connections.append(connection)
        hello = {
            "type": "hello",
            "num_connections": sum(1 for c in self.connections if not c.closed),
            "debug_info": {"host": "fake", "approximate_connection_time": 18060},
            "connection_info": {"app_id": self.app_id},
        }
        await self._send(connection, hello)
        await self._notify()
        try:
            async for message in ws:
                if message.type == WSMsgType.PING:
                    connection.pings += 1
                    await ws.pong(message.data)
                elif message.type == WSMsgType.TEXT:
                    self._received(connection, json.loads(message.data))
        finally:
            await self._notify()
        return ws

    def _received(self, connection: SocketConnection, data: dict[str, Any]) -> None:
        connection.received.append(data)
        envelope_id = data.get("envelope_id")
        if not envelope_id:
            return
        waiting = self._waiting.get(str(envelope_id))
        latency = time.monotonic() - waiting[1] if waiting else None
        ack = Ack(str(envelope_id), data.get("payload"), connection.number, latency)
        self.acks.append(ack)
        if waiting and not waiting[0].done():
            waiting[0].set_result(ack)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()
        await self.slack._notify()

    async def _shutdown(self, app: web.Application) -> None:
        for connection in self.connections:
            if not connection.closed:
                await connection.ws.close(code=1001, message=b"server shutdown")
