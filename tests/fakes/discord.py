"""A fake Discord on 127.0.0.1: REST v10 and the Gateway, enough for the real discord.py.

It exists so the adapter's tests run the real library end to end, over real sockets, with
Discord's real wire formats: login (`/users/@me`, `/oauth2/applications/@me`), the Gateway
handshake (HELLO, heartbeats, IDENTIFY → READY + GUILD_CREATE), dispatches we inject
(INTERACTION_CREATE, MESSAGE_CREATE), interaction callbacks and webhooks, channel messages
(JSON and multipart uploads), threads and command registration.

What it enforces, as Discord does (each proved against the real discord.py; the tests are
named in brackets: REST in `tests/test_discord_fake.py`, the Gateway in
`tests/test_discord_gateway_fake.py`, echoes in `tests/test_fakes_echo.py`):

REST
- Edits are limited per channel (`edit_limit` 5 per `edit_window` 5 s, a sliding window) and
  answered with a proper 429 (`{message, retry_after, global}` plus a `Via` header, or
  discord.py treats it as a Cloudflare ban) [test_edit_limit_per_channel].
- Every response of a limited route carries Discord's bucket headers (`X-RateLimit-Limit`,
  `-Remaining`, `-Reset`, `-Reset-After`, `-Bucket`), so discord.py waits *before* the 429
  comes, as it does against Discord; `Reset-After` is when the whole window is free again
  (discord.py refills the bucket to `Limit` then). `ratelimit_headers=False` leaves them out
  (a sub-limit Discord does not announce) [test_ratelimit_headers_make_discord_py_wait_first].
- The global limit: more than `global_limit` (50) requests within `global_window` (1 s,
  sliding) get a global 429 (`"global": true`, `X-RateLimit-Global`, `X-RateLimit-Scope:
  global`); interaction callbacks and interaction webhooks are exempt, as on Discord.
  `global_limit=None` turns it off [test_global_limit_answers_discord_global_429,
  test_global_429_is_waited_out_by_discord_py].
- `force_429(n)` answers the next `n` REST calls with a 429 [test_429_is_waited_out_by_discord_py].
- Message bodies are validated like Discord's form validation (`validate=False` turns it off):
  content over 2,000 characters, more than 10 embeds, an embed title over 256 or description
  over 4,096, more than 5 action rows, a row without 1–5 components, a `custom_id` over 100
  characters or missing on a non-link button, a button label over 80, or a `custom_id` used
  twice in one message → 400 `{code: 50035, message: "Invalid Form Body", errors: {...}}`
  in Discord's nested `_errors` shape (discord.py turns it into "In content: Must be 2000 or
  fewer in length."); a new message with no content, embeds, files or components → 400
  code 50006 [test_invalid_form_body_is_discord_50035, test_component_limits_are_50035].
- Channels listed in `forbidden_channels` (or denied later with `deny()`, which also sends
  CHANNEL_UPDATE with a member overwrite) answer writes with 403 `{code: 50013, message:
  "Missing Permissions"}`; threads inherit their parent's; interactions still work there
  (their `app_permissions` say what is missing) [test_missing_permissions_is_403_50013,
  test_forbidden_channel_known_at_start_is_in_guild_create].
- Files over the guild's upload limit get 413 / error 40005 [test_upload_over_limit_is_413].
- Interactions carry the person's client language in `locale` (`slash(..., locale="fr")`,
  `click(..., locale=...)`; `en-US` by default) and the guild's in `guild_locale`
  [test_interactions_carry_the_persons_locale].
- Commands registered with PUT `/applications/{id}[/guilds/{id}]/commands` are validated like
  Discord's: `name_localizations` / `description_localizations` (on commands and options) may
  only use Discord's locale codes (`fr`, `ja`, `en-US`; never `fr-FR`), and a description is 1
  to 100 characters in every language, or 400 code 50035 [test_command_localizations_are_checked].
- `pings()` tells which sent messages would have notified someone (mentions not disabled).
- Modals (callback type 9): the modal is validated like Discord's form validation (a title of
  1–45 characters, a `custom_id` of at most 100, 1–5 components, each an action row holding one
  text input or a label (type 18) wrapping one, a label of at most 45, `max_length` at most
  4,000 and a default no longer than it) and kept on the interaction (`FakeInteraction.modal`);
  only as the first response, within 3 s. `submit_modal()` sends the person's MODAL_SUBMIT
  (type 5) back with the values in the shape the modal was sent in
  [test_a_modal_is_a_response_and_its_submission_reaches_discord_py].
- Attachments people send (`say(attachments=...)`, attachment options of `slash()`) are
  served like Discord's CDN: signed links (`?ex=&is=&hm=`) that answer 404 once
  `expire_attachments()` ran, or without their signature; the bot's own uploads are served the
  same way. Attachment options (type 11) come with `resolved.attachments`, booleans as type 5
  [test_attachment_options_and_links_reach_discord_py_as_discord_sends_them].
- Message context menus (`message_command()`): INTERACTION_CREATE type 2 with `data.type` 3,
  `target_id` and the message in `resolved.messages` [test_message_context_menus_reach_the_tree].
- Channels may be age-restricted (`add_text_channel(nsfw=True)`): `nsfw` in GUILD_CREATE and
  in interactions' channel.

Gateway
- HELLO carries `heartbeat_interval` (constructor, seconds); every op 1 is answered with op
  11; a connection that sends no heartbeat for `heartbeat_interval * heartbeat_grace` is
  closed with 4009 (Session timed out) and its session invalidated, so discord.py's RESUME is
  refused and it identifies again [test_heartbeats_are_checked_and_a_silent_client_is_dropped].
- Sessions: IDENTIFY opens one (token checked: 4004; `message_content_allowed=False` and the
  MESSAGE_CONTENT intent → 4014, discord.py's PrivilegedIntentsRequired
  [test_message_content_intent_not_enabled_is_4014]); every dispatch has
  the session's own sequence number and is kept, so after `request_reconnect()` (op 7) or a
  dropped socket, RESUME (op 6, at READY's `resume_gateway_url`) replays what the client
  missed and ends with RESUMED; a RESUME of an unknown or invalidated session gets op 9
  `false`. `invalidate_session(resumable=...)` sends op 9. `hold_connections()` keeps new
  connections waiting before HELLO, so a test can dispatch while the client is away
  [test_reconnect_resumes_and_replays_missed_dispatches,
  test_invalid_session_makes_discord_py_identify_again].
- Intents: guild MESSAGE_* dispatches need GUILD_MESSAGES (1 << 9), DM ones DIRECT_MESSAGES
  (1 << 12), guild/channel/thread events GUILDS (1 << 0) [test_intents_decide_which_events_arrive];
  IDENTIFY without `intents` gets everything. Without MESSAGE_CONTENT (1 << 15)
  MESSAGE_CREATE / MESSAGE_UPDATE arrive with empty `content`, `embeds`, `attachments` and
  `components` unless the message is the bot's own, a DM, or mentions the bot
  [test_without_message_content_intent_only_mentions_and_dms_have_content].
- Echo (`echo=True`, the default): the bot's own messages come back as MESSAGE_CREATE (posts,
  interaction responses and followups that are not ephemeral), MESSAGE_UPDATE (edits) and
  MESSAGE_DELETE, author = the bot user with `bot: true`; `echoes` records them
  [test_own_messages_are_echoed_over_the_gateway, test_discord_echo_can_be_turned_off].

Members and roles: a member's role ids travel in every interaction's `member.roles` and every
guild message's `member.roles`, as on Discord; `add_role()` makes a role (in GUILD_CREATE for
clients that connect later, GUILD_ROLE_CREATE for those connected, so discord.py knows it),
`give_role()` gives one to a person, `add_member()` adds a person to the guild
[test_member_roles_reach_discord_py_in_interactions_and_messages].

DMs with the bot, group DMs and servers the bot is not in (user installs), with the
interaction shapes Discord sends from each and the 15-minute interaction token, are in
`tests/fakes/discord_surfaces.py` (`SurfacesMixin`; `token_lifetime` sets the token's life).

Helpers: `say()` (a person posts, mentions parsed), `open_dm()`, `slash()`, `autocomplete()`,
`click()`, `dispatch()`, `add_text_channel()`, `deny()` / `allow()`, `wait_for()`,
`wait_connected()`, `request_reconnect()`, `invalidate_session()`, `drop_gateway()`,
`hold_connections()`. Every REST call is recorded in `calls` (method, path, query, json,
files with their bytes, status, monotonic time); Gateway connections in `connections`,
sessions in `sessions`.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import json
import re
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from aiohttp import BodyPartReader, WSMsgType, web

from tests.fakes.discord_surfaces import TOKEN_LIFETIME, Refused, SurfacesMixin

VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
EMBED_LINKS = 1 << 14
ATTACH_FILES = 1 << 15
READ_MESSAGE_HISTORY = 1 << 16
MANAGE_CHANNELS = 1 << 4
USE_APPLICATION_COMMANDS = 1 << 31
CREATE_PUBLIC_THREADS = 1 << 35
SEND_MESSAGES_IN_THREADS = 1 << 38
# what a channel in `forbidden_channels` takes from the bot (a member overwrite)
DENIED_WHEN_FORBIDDEN = SEND_MESSAGES | CREATE_PUBLIC_THREADS | SEND_MESSAGES_IN_THREADS
MEMBER_PERMISSIONS = (
    VIEW_CHANNEL
    | SEND_MESSAGES
    | EMBED_LINKS
    | ATTACH_FILES
    | READ_MESSAGE_HISTORY
    | USE_APPLICATION_COMMANDS
    | CREATE_PUBLIC_THREADS
    | SEND_MESSAGES_IN_THREADS
)
DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024
EPHEMERAL = 1 << 6
LOADING = 1 << 7

# Gateway intents (IDENTIFY `intents`)
GUILDS_INTENT = 1 << 0
GUILD_MESSAGES_INTENT = 1 << 9
DIRECT_MESSAGES_INTENT = 1 << 12
MESSAGE_CONTENT_INTENT = 1 << 15

# Discord's message limits (what form validation refuses with 50035)
MAX_CONTENT = 2000
MAX_EMBEDS = 10
MAX_EMBED_TITLE = 256
MAX_EMBED_DESCRIPTION = 4096
MAX_ACTION_ROWS = 5
MAX_ROW_COMPONENTS = 5
MAX_CUSTOM_ID = 100
MAX_BUTTON_LABEL = 80
MAX_MODAL_TITLE = 45
MAX_INPUT_LABEL = 45
MAX_INPUT_LENGTH = 4000
MAX_COMMAND_DESCRIPTION = 100
# The locales Discord knows (what `*_localizations` keys and an interaction's `locale` may be)
DISCORD_LOCALES = frozenset(
    "id da de en-GB en-US es-ES es-419 fr hr it lt hu nl no pl pt-BR ro fi sv-SE vi tr cs el "
    "bg ru uk hi th zh-CN ja zh-TW ko".split()
)

# The bucket hashes discord.py keys its rate limits by (one per route, as on Discord)
EDIT_BUCKET = "f4ke0ed17bucket0"
HOOK_EDIT_BUCKET = "f4ke0hook0ed17b0"


@dataclass
class FakeFile:
    """One multipart file part as Discord received it."""

    field: str
    filename: str
    content_type: str
    data: bytes


@dataclass
class Call:
    """One REST request the fake answered."""

    method: str
    path: str
    query: dict[str, str]
    json: Any
    files: list[FakeFile]
    status: int
    at: float


@dataclass
class FakeInteraction:
    """An interaction we injected, and how the bot answered it."""

    id: str
    token: str
    type: int
    channel_id: str
    user_id: str
    injected_at: float
    callbacks: list[dict[str, Any]] = field(default_factory=list)
    callback_at: float | None = None
    original_id: str | None = None
    followups: list[dict[str, Any]] = field(default_factory=list)
    modal: dict[str, Any] | None = None  # the modal the bot answered with (callback type 9)

    @property
    def reply(self) -> dict[str, Any] | None:
        """What the person was told: the callback's message, or after a deferred callback
        (type 5) the first followup."""
        if not self.callbacks:
            return None
        first = self.callbacks[0]
        if int(first.get("type", 0)) == 5:
            return self.followups[0] if self.followups else None
        return first.get("data") or {}


@dataclass
class GatewaySession:
    """One Gateway session: what IDENTIFY opened and RESUME continues. `frames` are every
    dispatch sent in it (with this session's sequence numbers), kept for replay."""

    id: str
    intents: int | None
    shard: list[int] | None = None
    seq: int = 0
    frames: list[dict[str, Any]] = field(default_factory=list)
    connection: GatewayConnection | None = None
    valid: bool = True
    resumes: int = 0
    replayed: int = 0

    def has(self, intent: int) -> bool:
        """Whether IDENTIFY asked for `intent` (no `intents` at all counts as every one)."""
        return self.intents is None or bool(self.intents & intent)


@dataclass
class GatewayConnection:
    """One accepted Gateway websocket (numbered from 1 in the order they were opened)."""

    number: int
    ws: web.WebSocketResponse
    path: str
    opened_at: float
    session: GatewaySession | None = None
    heartbeats: int = 0
    last_heartbeat: float = 0.0
    received: list[dict[str, Any]] = field(default_factory=list)
    close_code: int | None = None  # set when the fake closed it

    @property
    def closed(self) -> bool:
        return self.ws.closed

    @property
    def ops(self) -> list[int]:
        """The opcodes the client sent, in order."""
        return [int(frame.get("op", -1)) for frame in self.received]


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


def _user(uid: str, name: str, *, bot: bool = False) -> dict[str, Any]:
    return {
        "id": uid,
        "username": name,
        "discriminator": "0",
        "global_name": name,
        "avatar": None,
        "bot": bot,
    }


def _guess_type(file: FakeFile) -> str | None:
    """What Discord would say a bot's upload is: from its bytes, then its name."""
    head = file.data[:16]
    if head.startswith(b"\x89PNG"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[4:8] == b"ftyp":
        return "video/mp4"
    if head.startswith(b"ID3") or head[:2] == b"\xff\xfb":
        return "audio/mpeg"
    if file.content_type and file.content_type != "application/octet-stream":
        return file.content_type
    return None


def _json(data: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    # discord.py only parses bodies whose Content-Type is exactly `application/json`.
    out = {"Content-Type": "application/json", **(headers or {})}
    return web.Response(status=status, body=json.dumps(data).encode(), headers=out)


class FakeDiscord(SurfacesMixin):
    """Start with `async with FakeDiscord() as fake:`; point discord.py at `api_url` and
    `gateway_url`. One guild (`guild_id`) with a text channel (`channel_id`), an admin member
    with Manage Channels (`admin_id`) and a plain member (`user_id`).

    Every limit is Discord's by default; the constructor flags (also plain attributes, so a
    test may change them on a running fake) turn them down or off:
    `edit_limit`/`edit_window`, `global_limit`/`global_window`, `ratelimit_headers`,
    `validate`, `forbidden_channels`, `echo`, `heartbeat_interval`/`heartbeat_grace`,
    `message_content_allowed` (the developer portal's switch for the privileged intent)."""

    def __init__(
        self,
        *,
        upload_limit: int = DEFAULT_UPLOAD_LIMIT,
        edit_limit: int = 5,
        edit_window: float = 5.0,
        global_limit: int | None = 50,
        global_window: float = 1.0,
        ratelimit_headers: bool = True,
        validate: bool = True,
        forbidden_channels: Iterable[str] = (),
        echo: bool = True,
        heartbeat_interval: float = 41.25,
        heartbeat_grace: float = 1.5,
        message_content_allowed: bool = True,
        token_lifetime: float = TOKEN_LIFETIME,
    ) -> None:
        self._ids = itertools.count(1_100_000_000_000_000_000)
        self.upload_limit = upload_limit
        self.edit_limit = edit_limit
        self.edit_window = edit_window
        self.global_limit = global_limit
        self.global_window = global_window
        self.ratelimit_headers = ratelimit_headers
        self.validate = validate
        self.forbidden_channels: set[str] = set(forbidden_channels)
        self.echo = echo
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_grace = heartbeat_grace
        self.message_content_allowed = message_content_allowed
        # Discord forgets an interaction not answered within 3 s (error 10062).
        self.ack_deadline = 3.0
        self.token = "fake-bot-token"
        self.bot_id = self.new_id()
        self.application_id = self.new_id()
        self.guild_id = self.new_id()
        self.channel_id = self.new_id()
        self.admin_role_id = self.new_id()
        self.admin_id = self.new_id()
        self.user_id = self.new_id()
        self.users = {
            self.bot_id: _user(self.bot_id, "eachsense", bot=True),
            self.admin_id: _user(self.admin_id, "admin"),
            self.user_id: _user(self.user_id, "alice"),
        }
        self.roles: dict[str, dict[str, Any]] = {}  # roles besides @everyone and the admin's
        self.member_roles: dict[str, list[str]] = {}  # user id -> the roles `give_role` gave
        self.channels: dict[str, dict[str, Any]] = {self.channel_id: self._text_channel()}
        # attachment id -> (bytes, content type): what the CDN serves
        self.attachments: dict[str, tuple[bytes, str]] = {}
        self.attachments_expired = False
        self.messages: dict[str, dict[str, Any]] = {}
        self.interactions: dict[str, FakeInteraction] = {}
        self.commands: dict[str | None, list[dict[str, Any]]] = {}
        self.calls: list[Call] = []
        self.rate_limited = 0
        self.global_rate_limited = 0
        # every dispatch, as injected (before intents shape it per session)
        self.gateway_events: list[dict[str, Any]] = []
        # the bot's own messages sent back over the Gateway: {"t": event, "d": data}
        self.echoes: list[dict[str, Any]] = []
        self.connections: list[GatewayConnection] = []
        self.recommended_shards = 1  # what `GET /gateway/bot` tells an AutoShardedClient
        self.sessions: list[GatewaySession] = []
        self.identified = asyncio.Event()
        self._force_429 = 0
        self._edits: dict[str, deque[float]] = {}  # accepted edits per channel
        self._hook_edits: dict[str, deque[float]] = {}  # ... per interaction token
        self._global: deque[float] = deque()  # when accepted non-exempt requests arrived
        self._gate: asyncio.Event | None = None
        self._watchdogs: set[asyncio.Task[None]] = set()
        self._seq = 0
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._init_surfaces(token_lifetime=token_lifetime)  # DMs, user installs, tokens

    # --- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> FakeDiscord:
        app = web.Application(client_max_size=1024**3)
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get("/gateway/resume", self._gateway)
        app.router.add_route("*", "/api/v10/{tail:.*}", self._rest)
        app.router.add_get("/attachments/{channel}/{attachment}/{filename}", self._cdn)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])  # the real port behind port 0
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._gate is not None:
            self._gate.set()
        for task in list(self._watchdogs):
            task.cancel()
        for connection in list(self.connections):
            if not connection.closed:
                await connection.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    @property
    def resume_gateway_url(self) -> str:
        """What READY names for resuming (a different path, so a test can see it was used)."""
        return f"ws://127.0.0.1:{self.port}/gateway/resume"

    def new_id(self) -> str:
        return str(next(self._ids))

    # --- test controls ---------------------------------------------------------------------

    def force_429(self, count: int) -> None:
        """Answer the next `count` REST calls with a (waitable) 429."""
        self._force_429 = count

    async def wait_for(
        self, predicate: Callable[[], Any], *, within: float = 10.0, what: str = "condition"
    ) -> Any:
        """Wait until `predicate()` is truthy (re-checked after every request and Gateway
        event the fake handles, and every 50 ms for state on the client's side); return its
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

    async def _touch(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def channel_messages(self, channel_id: str) -> list[dict[str, Any]]:
        """The messages currently in a channel, oldest first (ephemeral ones excluded)."""
        return [
            m
            for m in self.messages.values()
            if m["channel_id"] == channel_id and not (m.get("flags", 0) & EPHEMERAL)
        ]

    def threads(self) -> list[dict[str, Any]]:
        return [c for c in self.channels.values() if c["type"] == 11]

    def calls_to(self, method: str, pattern: str) -> list[Call]:
        rx = re.compile(pattern)
        return [c for c in self.calls if c.method == method and rx.search(c.path)]

    def pings(self) -> list[Call]:
        """Message sends/edits that would have notified someone: content with a mention while
        `allowed_mentions` allowed it (Discord's default, when absent, allows all)."""
        out = []
        for call in self.calls:
            body = call.json if isinstance(call.json, dict) else None
            if call.method not in ("POST", "PATCH") or not body or not body.get("content"):
                continue
            content = str(body["content"])
            if not re.search(r"@everyone|@here|<@[!&]?\d+>", content):
                continue
            allowed = body.get("allowed_mentions")
            if allowed is None or allowed.get("parse") or allowed.get("users"):
                out.append(call)
            elif allowed.get("roles") or allowed.get("replied_user"):
                out.append(call)
        return out

    def add_text_channel(self, name: str, *, nsfw: bool = False) -> str:
        """Another text channel in the guild (`nsfw`: age-restricted). Add channels before
        the bot connects so they arrive in GUILD_CREATE (afterwards discord.py would not
        know them)."""
        channel_id = self.new_id()
        self.channels[channel_id] = {
            **self._text_channel(),
            "id": channel_id,
            "name": name,
            "position": len(self.channels),
            "nsfw": nsfw,
        }
        return channel_id

    def attachment(
        self, channel_id: str, filename: str, data: bytes, content_type: str | None
    ) -> dict[str, Any]:
        """An attachment as Discord describes it (in a message or `resolved`), its bytes
        served at a signed CDN link."""
        attachment_id = self.new_id()
        self.attachments[attachment_id] = (data, content_type or "application/octet-stream")
        url = (
            f"http://127.0.0.1:{self.port}/attachments/{channel_id}/{attachment_id}/{filename}"
            f"?ex={int(time.time()) + 86400:x}&is={int(time.time()):x}&hm={uuid.uuid4().hex}&"
        )
        wire: dict[str, Any] = {
            "id": attachment_id,
            "filename": filename,
            "size": len(data),
            "url": url,
            "proxy_url": url.replace("/attachments/", "/media-proxy/attachments/", 1),
        }
        if content_type:
            wire["content_type"] = content_type
        if content_type and content_type.startswith("image/"):
            wire.update(width=96, height=96)
        return wire

    def expire_attachments(self) -> None:
        """Every CDN link expires (Discord's are signed for about a day)."""
        self.attachments_expired = True

    def open_dm(self, user_id: str | None = None) -> str:
        """A DM channel between the bot and a person; `say()` in it is a direct message."""
        uid = user_id or self.user_id
        channel_id = self.new_id()
        self.channels[channel_id] = {
            "id": channel_id,
            "type": 1,
            "recipients": [self.users[uid]],
            "last_message_id": None,
            "flags": 0,
        }
        return channel_id

    def is_forbidden(self, channel_id: str) -> bool:
        """Whether the bot lacks permissions in a channel (a thread inherits its parent's)."""
        if channel_id in self.forbidden_channels:
            return True
        parent = self.channels.get(channel_id, {}).get("parent_id")
        return parent is not None and parent in self.forbidden_channels

    async def deny(self, channel_id: str) -> None:
        """Take the bot's send/thread permissions away in a channel: writes there get 403
        50013 from now on, and connected clients get CHANNEL_UPDATE with the overwrite."""
        self.forbidden_channels.add(channel_id)
        await self._channel_changed(channel_id)

    async def allow(self, channel_id: str) -> None:
        """Give the permissions `deny()` took back."""
        self.forbidden_channels.discard(channel_id)
        await self._channel_changed(channel_id)

    async def _channel_changed(self, channel_id: str) -> None:
        channel = self.channels[channel_id]
        if channel.get("type") in (0, 5):
            await self.dispatch("CHANNEL_UPDATE", self._wire_channel(channel))

    # --- the Gateway: controls and queries -------------------------------------------------

    @property
    def session(self) -> GatewaySession | None:
        """The newest session that is still valid (resumable)."""
        for session in reversed(self.sessions):
            if session.valid:
                return session
        return None

    @property
    def connection(self) -> GatewayConnection | None:
        """The newest Gateway connection that is still open."""
        for connection in reversed(self.connections):
            if not connection.closed:
                return connection
        return None

    async def wait_connected(self, count: int = 1, *, within: float = 10.0) -> GatewaySession:
        """Wait until `count` connections were opened and the newest one carries a session
        (READY or RESUMED sent); returns that session."""

        def ready() -> GatewaySession | None:
            current = self.connection
            if len(self.connections) < count or current is None or current.session is None:
                return None
            return current.session if current.session.connection is current else None

        return cast(
            GatewaySession,
            await self.wait_for(ready, within=within, what=f"gateway connection {count}"),
        )

    async def request_reconnect(self) -> None:
        """Send op 7 RECONNECT, as Discord does before it moves a session: the client closes
        and RESUMEs at `resume_gateway_url`. Dispatches from now until the RESUME are kept
        for the session and replayed then."""
        connection = self._current_connection()
        session = connection.session
        await self._send(connection, {"op": 7, "d": None})
        if session is not None and session.connection is connection:
            session.connection = None  # nothing more on this socket: it is going away
        await self._touch()

    async def invalidate_session(self, *, resumable: bool = False) -> None:
        """Send op 9 INVALID_SESSION. Not resumable: the session ends and the client must
        IDENTIFY again (discord.py waits in `before_identify_hook` first, 5 s by default)."""
        connection = self._current_connection()
        session = connection.session
        if session is not None and not resumable:
            session.valid = False
        if session is not None and session.connection is connection:
            session.connection = None
        await self._send(connection, {"op": 9, "d": resumable})
        await self._touch()

    async def drop_gateway(self, code: int = 1001) -> None:
        """Close the current Gateway connection from the server side without warning (the
        session stays resumable)."""
        connection = self._current_connection()
        connection.close_code = code
        await connection.ws.close(code=code, message=b"going away")

    @contextlib.asynccontextmanager
    async def hold_connections(self) -> AsyncIterator[None]:
        """While inside, new Gateway connections are accepted but get no HELLO: a test can
        dispatch while the client is away and see them replayed when it RESUMEs."""
        self._gate = asyncio.Event()
        try:
            yield
        finally:
            self._gate.set()
            self._gate = None

    def _current_connection(self) -> GatewayConnection:
        connection = self.connection
        if connection is None:
            raise AssertionError("no open Gateway connection")
        return connection

    # --- injecting gateway events ----------------------------------------------------------

    async def dispatch(
        self, event: str, data: dict[str, Any], *, session: GatewaySession | None = None
    ) -> None:
        """Send a DISPATCH (op 0) in every valid session (or only `session`), shaped by each
        session's intents and numbered with its own sequence. A session whose client is
        away keeps it for the RESUME."""
        self._seq += 1
        self.gateway_events.append({"op": 0, "t": event, "s": self._seq, "d": data})
        targets = [session] if session is not None else [s for s in self.sessions if s.valid]
        for target in targets:
            if not self._wants(target, event, data):
                continue
            target.seq += 1
            frame = {"op": 0, "t": event, "s": target.seq, "d": self._shaped(target, event, data)}
            target.frames.append(frame)
            connection = target.connection
            if connection is not None and not connection.closed:
                await self._send(connection, frame)

    def on_shard(self, session: GatewaySession, guild_id: object) -> bool:
        """Whether a guild's events go to this session: guild `g` lives on shard
        `(g >> 22) % count` (a session without a shard gets every guild)."""
        shard = session.shard
        if not shard or guild_id is None:
            return True
        shard_id, count = int(shard[0]), int(shard[1])
        return (int(str(guild_id)) >> 22) % count == shard_id

    def _wants(self, session: GatewaySession, event: str, data: dict[str, Any]) -> bool:
        """Whether the session's intents (and its shard) subscribe it to `event`, as Discord
        filters."""
        guild_id = data.get("guild_id") or (data.get("id") if event == "GUILD_CREATE" else None)
        if not self.on_shard(session, guild_id):
            return False
        if event.startswith("MESSAGE_"):
            intent = GUILD_MESSAGES_INTENT if data.get("guild_id") else DIRECT_MESSAGES_INTENT
            return session.has(intent)
        if event.startswith(("GUILD_", "CHANNEL_", "THREAD_")):
            return session.has(GUILDS_INTENT)
        return True

    def _shaped(self, session: GatewaySession, event: str, data: dict[str, Any]) -> Any:
        """Without the MESSAGE_CONTENT intent a message's content fields are empty, except in
        the bot's own messages, DMs and messages that mention the bot."""
        if event not in ("MESSAGE_CREATE", "MESSAGE_UPDATE") or session.has(MESSAGE_CONTENT_INTENT):
            return data
        author = (data.get("author") or {}).get("id")
        mentioned = any(str(u.get("id")) == self.bot_id for u in data.get("mentions") or [])
        if author == self.bot_id or not data.get("guild_id") or mentioned:
            return data
        hidden = {**data, "content": "", "embeds": [], "attachments": [], "components": []}
        hidden.pop("poll", None)
        return hidden

    async def _echo(self, event: str, msg: dict[str, Any]) -> None:
        """The bot's own message back over the Gateway, as Discord sends it."""
        if (
            not self.echo
            or msg.get("flags", 0) & EPHEMERAL
            or not self.bot_can_see(str(msg.get("channel_id")))
        ):
            return
        if event == "MESSAGE_DELETE":
            data = {"id": msg["id"], "channel_id": msg["channel_id"]}
            if msg.get("guild_id"):
                data["guild_id"] = msg["guild_id"]
        else:
            data = copy.deepcopy(msg)
            if msg.get("guild_id") and msg["author"].get("id") in self.users:
                member = self.member(msg["author"]["id"])
                data["member"] = {k: v for k, v in member.items() if k != "user"}
        self.echoes.append({"t": event, "d": data})
        await self.dispatch(event, data)

    async def add_role(self, name: str) -> str:
        """A role in the guild with no permissions of its own; returns its id."""
        role = {
            "id": self.new_id(),
            "name": name,
            "permissions": "0",
            "position": 2 + len(self.roles),
            "color": 0,
            "hoist": False,
            "managed": False,
            "mentionable": True,
            "flags": 0,
        }
        self.roles[role["id"]] = role
        await self.dispatch("GUILD_ROLE_CREATE", {"guild_id": self.guild_id, "role": role})
        return str(role["id"])

    def give_role(self, user_id: str, role_id: str) -> None:
        """The person has the role from now on (in the payloads of their interactions and
        messages)."""
        self.member_roles.setdefault(user_id, []).append(role_id)

    def add_member(self, name: str) -> str:
        """Another person in the guild; returns their id."""
        user_id = self.new_id()
        self.users[user_id] = _user(user_id, name)
        return user_id

    def member(self, user_id: str) -> dict[str, Any]:
        roles = [self.admin_role_id] if user_id == self.admin_id else []
        roles += self.member_roles.get(user_id, [])
        return {
            "user": self.users[user_id],
            "roles": roles,
            "joined_at": _now_iso(),
            "deaf": False,
            "mute": False,
            "flags": 0,
            "nick": None,
        }

    def permissions_of(self, user_id: str) -> int:
        base = MEMBER_PERMISSIONS
        return base | MANAGE_CHANNELS if user_id == self.admin_id else base

    def bot_permissions_in(self, channel_id: str) -> int:
        """The bot's permissions in a channel (what interactions carry as `app_permissions`)."""
        if self.is_forbidden(channel_id):
            return MEMBER_PERMISSIONS & ~DENIED_WHEN_FORBIDDEN
        return MEMBER_PERMISSIONS

    async def slash(
        self,
        name: str,
        options: dict[str, Any] | None = None,
        *,
        user_id: str | None = None,
        channel_id: str | None = None,
        attachment_size_limit: int | None = None,
        user_install: bool = False,
        locale: str = "en-US",
        attachments: dict[str, tuple[str, bytes, str | None]] | None = None,
    ) -> FakeInteraction:
        """A person runs `/name` with options: strings (type 3), booleans (type 5), and
        `attachments` (`{option: (filename, bytes, content type)}`, type 11, with the
        attachments in `resolved` as Discord sends them); in a DM, a group DM or a foreign
        server as `channel_id` says; `user_install`: through their own install; the
        person's Discord client in `locale`."""
        opts: list[dict[str, Any]] = []
        for key, value in (options or {}).items():
            kind = 5 if isinstance(value, bool) else 4 if isinstance(value, int) else 3
            opts.append({"name": key, "type": kind, "value": value})
        data: dict[str, Any] = {"id": self.new_id(), "name": name, "type": 1, "options": opts}
        cid = channel_id or self.channel_id
        for key, (filename, blob, content_type) in (attachments or {}).items():
            wire = self.attachment(cid, filename, blob, content_type)
            wire["ephemeral"] = True  # an option's upload is not a message of its own
            opts.append({"name": key, "type": 11, "value": wire["id"]})
            data.setdefault("resolved", {}).setdefault("attachments", {})[wire["id"]] = wire
        return await self._interaction(
            2,
            data,
            user_id=user_id,
            channel_id=channel_id,
            size_limit=attachment_size_limit,
            user_install=user_install,
            locale=locale,
        )

    async def message_command(
        self, name: str, message_id: str, *, user_id: str | None = None
    ) -> FakeInteraction:
        """A person picks a message context menu (`name`) on a message."""
        message = copy.deepcopy(self.messages[message_id])
        message.pop("edits", None)
        data = {
            "id": self.new_id(),
            "name": name,
            "type": 3,
            "target_id": message_id,
            "resolved": {"messages": {message_id: message}},
        }
        return await self._interaction(2, data, user_id=user_id, channel_id=message["channel_id"])

    async def submit_modal(
        self, inter: FakeInteraction, values: dict[str, str], *, user_id: str | None = None
    ) -> FakeInteraction:
        """The person fills in the modal the bot answered `inter` with and sends it: a
        MODAL_SUBMIT whose components mirror the modal's (action rows or labels)."""
        modal = inter.modal
        if modal is None:
            raise AssertionError("the bot did not answer that interaction with a modal")
        components: list[dict[str, Any]] = []
        for component in modal["components"]:
            if component.get("type") == 18:
                inner = component["component"]
                value = {"type": 4, "custom_id": inner["custom_id"]}
                value["value"] = values.get(inner["custom_id"], inner.get("value") or "")
                components.append({"type": 18, "id": component.get("id", 1), "component": value})
            else:
                inner = component["components"][0]
                value = {"type": 4, "custom_id": inner["custom_id"]}
                value["value"] = values.get(inner["custom_id"], inner.get("value") or "")
                components.append({"type": 1, "components": [value]})
        data = {"custom_id": modal["custom_id"], "components": components}
        return await self._interaction(
            5, data, user_id=user_id or inter.user_id, channel_id=inter.channel_id
        )

    async def autocomplete(
        self, name: str, options: dict[str, Any], *, focused: str, user_id: str | None = None
    ) -> FakeInteraction:
        """Discord asks for choices while the person types `focused`."""
        opts = [
            {"name": k, "type": 3, "value": v, **({"focused": True} if k == focused else {})}
            for k, v in options.items()
        ]
        data = {"id": self.new_id(), "name": name, "type": 1, "options": opts}
        return await self._interaction(4, data, user_id=user_id)

    async def click(
        self,
        custom_id: str,
        *,
        message_id: str,
        user_id: str | None = None,
        user_install: bool = False,
        locale: str = "en-US",
    ) -> Any:
        """A person clicks a button (`custom_id`) on a message."""
        message = self.messages[message_id]
        data = {"custom_id": custom_id, "component_type": 2}
        return await self._interaction(
            3,
            data,
            user_id=user_id,
            channel_id=message["channel_id"],
            message=message,
            user_install=user_install,
            locale=locale,
        )

    async def _interaction(
        self,
        itype: int,
        data: dict[str, Any],
        *,
        user_id: str | None,
        channel_id: str | None = None,
        message: dict[str, Any] | None = None,
        size_limit: int | None = None,
        user_install: bool = False,
        locale: str = "en-US",
    ) -> FakeInteraction:
        if locale not in DISCORD_LOCALES:
            raise ValueError(f"Discord has no locale {locale!r}")
        uid = user_id or self.user_id
        cid = channel_id or self.channel_id
        inter = FakeInteraction(
            id=self.new_id(),
            token=f"itoken-{self.new_id()}",
            type=itype,
            channel_id=cid,
            user_id=uid,
            injected_at=time.monotonic(),
        )
        self.interactions[inter.token] = inter
        channel = {
            **self._wire_channel(self.channels[cid]),
            "permissions": str(self.permissions_of(uid)),
        }
        payload: dict[str, Any] = {
            "id": inter.id,
            "application_id": self.application_id,
            "type": itype,
            "token": inter.token,
            "version": 1,
            "guild_id": self.guild_id,
            "channel_id": cid,
            "channel": channel,
            "member": {**self.member(uid), "permissions": str(self.permissions_of(uid))},
            "data": data,
            "app_permissions": str(self.bot_permissions_in(cid)),
            "locale": locale,
            "guild_locale": "en-US",
            "attachment_size_limit": size_limit or self.upload_limit,
            "entitlements": [],
            "authorizing_integration_owners": {"0": self.guild_id},
            "context": 0,
        }
        for key, value in self.context_fields(uid, cid, user_install=user_install).items():
            if value is None:
                payload.pop(key, None)
            else:
                payload[key] = value
        if message is not None:
            payload["message"] = message
        await self.dispatch("INTERACTION_CREATE", payload)
        return inter

    async def say(
        self,
        channel_id: str,
        content: str,
        *,
        user_id: str | None = None,
        embeds: list[dict[str, Any]] | None = None,
        attachments: list[tuple[str, bytes, str | None]] | None = None,
    ) -> str:
        """A person posts `content` in a channel, thread or DM (`open_dm()`); returns the
        message id. Mentions (`<@id>`) are parsed into `mentions`, as Discord does;
        `attachments` are `(filename, bytes, content type)`, served at signed CDN links."""
        uid = user_id or self.user_id
        mentions = [self.users[m] for m in re.findall(r"<@!?(\d+)>", content) if m in self.users]
        msg = self._message(channel_id, content=content, author=self.users[uid])
        msg["mentions"] = mentions
        if embeds:
            msg["embeds"] = embeds
        if attachments:
            msg["attachments"] = [self.attachment(channel_id, *a) for a in attachments]
        if msg.get("guild_id"):
            msg["member"] = {k: v for k, v in self.member(uid).items() if k != "user"}
        await self.dispatch("MESSAGE_CREATE", msg)
        return str(msg["id"])

    # --- model ------------------------------------------------------------------------------

    def _text_channel(self) -> dict[str, Any]:
        return {
            "id": self.channel_id,
            "type": 0,
            "guild_id": self.guild_id,
            "name": "general",
            "position": 0,
            "permission_overwrites": [],
            "nsfw": False,
            "parent_id": None,
            "topic": None,
            "rate_limit_per_user": 0,
            "last_message_id": None,
        }

    def _thread(self, thread_id: str, parent_id: str, name: str) -> dict[str, Any]:
        return {
            "id": thread_id,
            "type": 11,
            "guild_id": self.guild_id,
            "parent_id": parent_id,
            "owner_id": self.bot_id,
            "name": name,
            "last_message_id": None,
            "rate_limit_per_user": 0,
            "message_count": 0,
            "member_count": 1,
            "flags": 0,
            "thread_metadata": {
                "archived": False,
                "auto_archive_duration": 1440,
                "archive_timestamp": _now_iso(),
                "locked": False,
            },
        }

    def _wire_channel(self, channel: dict[str, Any]) -> dict[str, Any]:
        """A channel as the Gateway sends it: a forbidden one carries a member overwrite that
        denies the bot what `forbidden_channels` takes, so discord.py's
        `permissions_for(guild.me)` agrees with the 403s."""
        if channel.get("type") not in (0, 5) or channel["id"] not in self.forbidden_channels:
            return channel
        deny = {"id": self.bot_id, "type": 1, "allow": "0", "deny": str(DENIED_WHEN_FORBIDDEN)}
        overwrites = [*channel.get("permission_overwrites", []), deny]
        return {**channel, "permission_overwrites": overwrites}

    def _guild(self) -> dict[str, Any]:
        everyone = {
            "id": self.guild_id,
            "name": "@everyone",
            "permissions": str(MEMBER_PERMISSIONS),
            "position": 0,
            "color": 0,
            "hoist": False,
            "managed": False,
            "mentionable": False,
            "flags": 0,
        }
        admin = {**everyone, "id": self.admin_role_id, "name": "mods", "position": 1}
        admin["permissions"] = str(MEMBER_PERMISSIONS | MANAGE_CHANNELS)
        return {
            "id": self.guild_id,
            "name": "Test guild",
            "owner_id": self.admin_id,
            "unavailable": False,
            "member_count": 3,
            "large": False,
            "premium_tier": 0,
            "roles": [everyone, admin, *self.roles.values()],
            "emojis": [],
            "stickers": [],
            "features": [],
            "channels": [
                self._wire_channel(c)
                for c in self.channels.values()
                if c["type"] in (0, 2, 4, 5) and c.get("guild_id") == self.guild_id
            ],
            "threads": self.threads(),
            "members": [self.member(uid) for uid in self.users],
            "voice_states": [],
            "presences": [],
            "joined_at": _now_iso(),
        }

    def _message(
        self, channel_id: str, *, content: str = "", author: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        msg: dict[str, Any] = {
            "id": self.new_id(),
            "channel_id": channel_id,
            "author": author or self.users[self.bot_id],
            "content": content,
            "timestamp": _now_iso(),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [],
            "embeds": [],
            "components": [],
            "pinned": False,
            "type": 0,
            "flags": 0,
            "edits": 0,
        }
        channel = self.channels.get(channel_id)
        guild = self.guild_id if channel is None else channel.get("guild_id")
        if guild:  # DMs and group DMs have none
            msg["guild_id"] = guild
        self.messages[msg["id"]] = msg
        return msg

    def _apply(self, msg: dict[str, Any], body: dict[str, Any], files: list[FakeFile]) -> None:
        for key in ("content", "embeds", "components", "flags"):
            if key in body and body[key] is not None:
                msg[key] = body[key]
        if files:
            msg["attachments"] = [
                self.attachment(msg["channel_id"], f.filename, f.data, _guess_type(f))
                for f in files
            ]

    # --- gateway ---------------------------------------------------------------------------

    async def _send(self, connection: GatewayConnection, frame: dict[str, Any]) -> None:
        if connection.closed:
            return
        with contextlib.suppress(ConnectionError, RuntimeError):
            await connection.ws.send_str(json.dumps(frame))

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        now = time.monotonic()
        connection = GatewayConnection(len(self.connections) + 1, ws, request.path, now)
        self.connections.append(connection)
        await self._touch()
        watchdog: asyncio.Task[None] | None = None
        try:
            if self._gate is not None:
                await self._gate.wait()
            hello = {"op": 10, "d": {"heartbeat_interval": round(self.heartbeat_interval * 1000)}}
            connection.last_heartbeat = time.monotonic()
            await self._send(connection, hello)
            watchdog = asyncio.create_task(self._watch_heartbeats(connection))
            self._watchdogs.add(watchdog)
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                frame = json.loads(msg.data)
                connection.received.append(frame)
                op = frame.get("op")
                if op == 1:
                    connection.heartbeats += 1
                    connection.last_heartbeat = time.monotonic()
                    await self._send(connection, {"op": 11})
                elif op == 2:
                    await self._identify(connection, frame.get("d") or {})
                elif op == 6:
                    await self._resume(connection, frame.get("d") or {})
                await self._touch()
        finally:
            if watchdog is not None:
                watchdog.cancel()
                self._watchdogs.discard(watchdog)
            session = connection.session
            if session is not None and session.connection is connection:
                session.connection = None
            await self._touch()
        return ws

    async def _watch_heartbeats(self, connection: GatewayConnection) -> None:
        """Close a connection that stopped heartbeating (4009, session timed out)."""
        while not connection.closed:
            allowed = self.heartbeat_interval * self.heartbeat_grace
            late = connection.last_heartbeat + allowed - time.monotonic()
            if late > 0:
                await asyncio.sleep(late)
                continue
            if connection.session is not None:
                connection.session.valid = False
            connection.close_code = 4009
            await connection.ws.close(code=4009, message=b"Session timed out")
            await self._touch()
            return

    async def _close(self, connection: GatewayConnection, code: int, reason: str) -> None:
        connection.close_code = code
        await connection.ws.close(code=code, message=reason.encode())

    async def _identify(self, connection: GatewayConnection, data: dict[str, Any]) -> None:
        if data.get("token") != self.token:
            await self._close(connection, 4004, "Authentication failed.")
            return
        intents = data.get("intents")
        if (
            intents is not None
            and intents & MESSAGE_CONTENT_INTENT
            and not self.message_content_allowed
        ):
            await self._close(connection, 4014, "Disallowed intent(s).")
            return
        shard = data.get("shard")
        for old in self.sessions:  # one session per shard: a new IDENTIFY ends the old one
            if old.shard == shard:
                old.valid = False
        session = GatewaySession(uuid.uuid4().hex, intents, shard, connection=connection)
        self.sessions.append(session)
        connection.session = session
        on_shard = self.on_shard(session, self.guild_id)
        ready: dict[str, Any] = {
            "v": 10,
            "user": self.users[self.bot_id],
            "guilds": [{"id": self.guild_id, "unavailable": True}] if on_shard else [],
            "session_id": session.id,
            "resume_gateway_url": self.resume_gateway_url,
            "application": {"id": self.application_id, "flags": 0},
            "private_channels": [],
            "relationships": [],
        }
        if shard is not None:
            ready["shard"] = shard
        await self.dispatch("READY", ready, session=session)
        if on_shard:
            await self.dispatch("GUILD_CREATE", self._guild(), session=session)
        self.identified.set()

    async def _resume(self, connection: GatewayConnection, data: dict[str, Any]) -> None:
        """Replay what the session missed, then RESUMED; op 9 for a session that is gone."""
        session = next((s for s in self.sessions if s.id == data.get("session_id")), None)
        if session is None or not session.valid or data.get("token") != self.token:
            await self._send(connection, {"op": 9, "d": False})
            return
        old = session.connection
        if old is not None and old is not connection and not old.closed:
            await self._close(old, 4000, "resumed elsewhere")
        connection.session = session
        sent = data.get("seq") or 0
        replayed = 0
        # replay until caught up (a dispatch may land while we send), then attach: no await
        # between the last check and the attach, so nothing is lost or sent out of order
        while missed := [f for f in session.frames if f["s"] > sent]:
            for frame in missed:
                await self._send(connection, frame)
                sent = frame["s"]
                replayed += 1
        session.connection = connection
        session.resumes += 1
        session.replayed += replayed
        await self.dispatch("RESUMED", {}, session=session)

    # --- REST ------------------------------------------------------------------------------

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["tail"]
        body, files = await self._read_body(request)
        call = Call(request.method, path, dict(request.query), body, files, 0, time.monotonic())
        self.calls.append(call)
        try:
            if self._force_429 > 0:
                self._force_429 -= 1
                response = self._too_many(0.05, bucket="forced0bucket000")
            elif (wait := self._global_allowed(path, call.at)) > 0:
                self.global_rate_limited += 1
                response = self._too_many_global(wait)
            elif request.method != "GET" and self._forbidden_path(path):
                response = _json({"message": "Missing Permissions", "code": 50013}, status=403)
            else:
                self.check_write(request.method, path)
                response = await self._route(request.method, path, body, files)
        except Refused as refused:
            error = {"message": refused.message, "code": refused.code}
            response = _json(error, status=refused.status)
        except web.HTTPException as exc:
            response = _json({"message": exc.reason, "code": 0}, status=exc.status)
        call.status = response.status
        if response.status == 429:
            self.rate_limited += 1
        await self._touch()
        return response

    async def _read_body(self, request: web.Request) -> tuple[Any, list[FakeFile]]:
        if request.content_type.startswith("multipart/"):
            body: Any = None
            files: list[FakeFile] = []
            reader = await request.multipart()
            async for item in reader:
                part = cast(BodyPartReader, item)
                if part.name == "payload_json":
                    body = json.loads(await part.text())
                else:
                    data = await part.read(decode=False)
                    ctype = part.headers.get("Content-Type", "application/octet-stream")
                    files.append(FakeFile(part.name or "", part.filename or "", ctype, data))
            return body, files
        raw = await request.read()
        return (json.loads(raw) if raw else None), []

    def _forbidden_path(self, path: str) -> bool:
        match = re.match(r"/channels/(\d+)", path)
        return match is not None and self.is_forbidden(match.group(1))

    def _bucket_headers(self, *, remaining: int, reset_after: float, bucket: str) -> dict[str, str]:
        """Discord's per-route rate limit headers (what discord.py's `Ratelimit.update`
        reads): `Reset` is epoch seconds, `Reset-After` seconds from now."""
        return {
            "X-RateLimit-Limit": str(self.edit_limit),
            "X-RateLimit-Remaining": str(max(0, remaining)),
            "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": bucket,
        }

    def _too_many(
        self, retry_after: float, *, bucket: str, reset_after: float | None = None
    ) -> web.Response:
        headers = {
            "Via": "1.1 google",
            "Retry-After": str(max(1, round(retry_after))),
            **self._bucket_headers(
                remaining=0,
                reset_after=retry_after if reset_after is None else reset_after,
                bucket=bucket,
            ),
            "X-RateLimit-Scope": "user",
        }
        body = {"message": "You are being rate limited.", "retry_after": round(retry_after, 3)}
        return _json({**body, "global": False}, status=429, headers=headers)

    def _too_many_global(self, retry_after: float) -> web.Response:
        headers = {
            "Via": "1.1 google",
            "Retry-After": str(max(1, round(retry_after))),
            "X-RateLimit-Global": "true",
            "X-RateLimit-Scope": "global",
        }
        body = {"message": "You are being rate limited.", "retry_after": round(retry_after, 3)}
        return _json({**body, "global": True}, status=429, headers=headers)

    def _global_allowed(self, path: str, now: float) -> float:
        """0 when a request fits Discord's global window (or is exempt from it), else
        seconds to wait. Only accepted requests count, as with the edit limit."""
        if self.global_limit is None or path.startswith(("/interactions/", "/webhooks/")):
            return 0.0
        window = self._global
        while window and now - window[0] >= self.global_window:
            window.popleft()
        if len(window) >= self.global_limit:
            return window[0] + self.global_window - now
        window.append(now)
        return 0.0

    def _window(self, windows: dict[str, deque[float]], key: str, now: float) -> deque[float]:
        window = windows.setdefault(key, deque())
        while window and now - window[0] >= self.edit_window:
            window.popleft()
        return window

    def _edit(
        self, channel_id: str, *, token: str | None = None
    ) -> tuple[web.Response | None, dict[str, str]]:
        """Take a slot in the channel's edit window: (None, headers for the answer) when the
        edit fits, else (the 429, {}).

        The headers describe the bucket discord.py keys the route by: the channel for
        channel message edits; for interaction webhook edits (`token`) the interaction's
        own token, as on Discord, so the channel window those edits also count in is a
        limit the headers do not announce. `Remaining` is exact for the sliding window;
        `Reset-After` is when the window is empty again, so a client that refills its
        bucket then (as discord.py does) does not meet the 429."""
        now = time.monotonic()
        window = self._window(self._edits, channel_id, now)
        bucket = EDIT_BUCKET if token is None else HOOK_EDIT_BUCKET
        if len(window) >= self.edit_limit:
            retry = window[0] + self.edit_window - now
            empty = window[-1] + self.edit_window - now
            return self._too_many(retry, bucket=bucket, reset_after=empty), {}
        window.append(now)
        if token is not None:
            window = self._window(self._hook_edits, token, now)
            window.append(now)
        if not self.ratelimit_headers:
            return None, {}
        headers = self._bucket_headers(
            remaining=self.edit_limit - len(window),
            reset_after=window[-1] + self.edit_window - now,
            bucket=bucket,
        )
        return None, headers

    def _invalid(
        self, body: dict[str, Any], files: list[FakeFile], *, creating: bool
    ) -> web.Response | None:
        """Discord's form validation of a message body: 400 with code 50035 and the nested
        `errors` (`{"content": {"_errors": [...]}}`), or 50006 for an empty new message."""
        if not self.validate:
            return None
        errors: dict[str, Any] = {}

        def refuse(where: tuple[Any, ...], code: str, message: str) -> None:
            node = errors
            for key in where:
                node = node.setdefault(str(key), {})
            node.setdefault("_errors", []).append({"code": code, "message": message})

        def too_long(where: tuple[Any, ...], value: Any, limit: int) -> None:
            if isinstance(value, str) and len(value) > limit:
                refuse(where, "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")

        content = body.get("content")
        too_long(("content",), content, MAX_CONTENT)
        embeds = body.get("embeds") or []
        if len(embeds) > MAX_EMBEDS:
            refuse(("embeds",), "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_EMBEDS} or fewer in length.")
        for n, embed in enumerate(embeds):
            too_long(("embeds", n, "title"), embed.get("title"), MAX_EMBED_TITLE)
            too_long(("embeds", n, "description"), embed.get("description"), MAX_EMBED_DESCRIPTION)
        components = body.get("components") or []
        if len(components) > MAX_ACTION_ROWS:
            message = f"Must be {MAX_ACTION_ROWS} or fewer in length."
            refuse(("components",), "BASE_TYPE_MAX_LENGTH", message)
        seen: set[str] = set()
        for r, row in enumerate(components):
            if row.get("type") != 1:  # only action rows are checked
                continue
            children = row.get("components") or []
            if not 1 <= len(children) <= MAX_ROW_COMPONENTS:
                message = f"Must be between 1 and {MAX_ROW_COMPONENTS} in length."
                refuse(("components", r, "components"), "BASE_TYPE_BAD_LENGTH", message)
            for c, child in enumerate(children):
                where = ("components", r, "components", c)
                custom_id = child.get("custom_id")
                is_button = child.get("type") == 2
                if is_button and child.get("style") not in (5, 6) and not custom_id:
                    refuse((*where, "custom_id"), "BASE_TYPE_REQUIRED", "This field is required")
                if isinstance(custom_id, str):
                    too_long((*where, "custom_id"), custom_id, MAX_CUSTOM_ID)
                    if custom_id in seen:
                        message = "Component custom id cannot be duplicated"
                        refuse((*where, "custom_id"), "COMPONENT_CUSTOM_ID_DUPLICATED", message)
                    seen.add(custom_id)
                if is_button:
                    too_long((*where, "label"), child.get("label"), MAX_BUTTON_LABEL)
        if errors:
            invalid = {"message": "Invalid Form Body", "code": 50035, "errors": errors}
            return _json(invalid, status=400)
        has_body = content or embeds or files or components or body.get("sticker_ids")
        if creating and not (has_body or body.get("poll") or body.get("attachments")):
            return _json({"message": "Cannot send an empty message", "code": 50006}, status=400)
        return None

    def _invalid_modal(self, data: dict[str, Any]) -> web.Response | None:
        """Discord's checks of a modal (callback type 9): 400 code 50035 when one fails."""
        if not self.validate:
            return None
        errors: list[str] = []
        title = data.get("title")
        if not isinstance(title, str) or not 1 <= len(title) <= MAX_MODAL_TITLE:
            errors.append("title")
        custom_id = data.get("custom_id")
        if not isinstance(custom_id, str) or not 1 <= len(custom_id) <= MAX_CUSTOM_ID:
            errors.append("custom_id")
        components = data.get("components") or []
        if not 1 <= len(components) <= MAX_ACTION_ROWS:
            errors.append("components")
        for n, component in enumerate(components):
            if component.get("type") == 18:
                inner, label = component.get("component") or {}, component.get("label")
            elif component.get("type") == 1 and len(component.get("components") or []) == 1:
                inner = component["components"][0]
                label = inner.get("label")
            else:
                errors.append(f"components.{n}")
                continue
            limit = inner.get("max_length") or MAX_INPUT_LENGTH
            default = inner.get("value") or ""
            if (
                inner.get("type") != 4
                or not inner.get("custom_id")
                or not isinstance(label, str)
                or not 1 <= len(label) <= MAX_INPUT_LABEL
                or limit > MAX_INPUT_LENGTH
                or len(default) > limit
            ):
                errors.append(f"components.{n}")
        if not errors:
            return None
        detail = {key: {"_errors": [{"code": "INVALID", "message": "Invalid"}]} for key in errors}
        return _json(
            {"message": "Invalid Form Body", "code": 50035, "errors": {"data": detail}}, status=400
        )

    async def _cdn(self, request: web.Request) -> web.Response:
        """An attachment link: the bytes while it is valid and signed, else Discord's 404."""
        found = self.attachments.get(request.match_info["attachment"])
        signed = all(request.query.get(key) for key in ("ex", "is", "hm"))
        if found is None or self.attachments_expired or not signed:
            return web.Response(
                status=404, text="This content is no longer available.", content_type="text/plain"
            )
        data, content_type = found
        return web.Response(body=data, content_type=content_type)

    async def _route(
        self, method: str, path: str, body: Any, files: list[FakeFile]
    ) -> web.Response:
        for rx_method, rx, handler in self._routes():
            if rx_method != method:
                continue
            match = re.fullmatch(rx, path)
            if match:
                return await handler(*match.groups(), body=body or {}, files=files)
        return _json({"message": f"404: Not Found ({method} {path})", "code": 0}, status=404)

    def _routes(self) -> list[tuple[str, str, Callable[..., Awaitable[web.Response]]]]:
        ch = r"/channels/(\d+)"
        hook = r"/webhooks/(\d+)/([^/]+)"
        return [
            ("GET", r"/users/@me", self._me),
            ("POST", r"/users/@me/channels", self._create_dm),
            ("GET", r"/oauth2/applications/@me", self._app),
            ("GET", r"/gateway", self._gateway_info),
            ("GET", r"/gateway/bot", self._gateway_info),
            ("POST", r"/interactions/(\d+)/([^/]+)/callback", self._callback),
            ("POST", hook, self._followup),
            ("GET", hook + r"/messages/([^/]+)", self._get_hook_message),
            ("PATCH", hook + r"/messages/([^/]+)", self._edit_hook_message),
            ("DELETE", hook + r"/messages/([^/]+)", self._delete_hook_message),
            ("GET", ch, self._get_channel),
            ("POST", ch + r"/messages", self._create_message),
            ("GET", ch + r"/messages/(\d+)", self._get_message),
            ("PATCH", ch + r"/messages/(\d+)", self._edit_message),
            ("DELETE", ch + r"/messages/(\d+)", self._delete_message),
            ("POST", ch + r"/messages/(\d+)/threads", self._thread_from_message),
            ("POST", ch + r"/threads", self._thread_alone),
            ("POST", ch + r"/typing", self._no_content),
            ("PUT", ch + r"/thread-members/@me", self._no_content),
            ("PUT", r"/applications/(\d+)/commands", self._put_commands),
            ("PUT", r"/applications/(\d+)/guilds/(\d+)/commands", self._put_commands),
            ("GET", r"/applications/(\d+)/commands", self._get_commands),
            ("GET", r"/applications/(\d+)/guilds/(\d+)/commands", self._get_commands),
        ]

    async def _no_content(self, *_: str, body: Any, files: list[FakeFile]) -> web.Response:
        return web.Response(status=204)

    async def _me(self, *, body: Any, files: list[FakeFile]) -> web.Response:
        return _json(self.users[self.bot_id])

    async def _app(self, *, body: Any, files: list[FakeFile]) -> web.Response:
        return _json(
            {
                "id": self.application_id,
                "name": "eachsense",
                "description": "",
                "icon": None,
                "bot_public": True,
                "bot_require_code_grant": False,
                "owner": self.users[self.admin_id],
                "verify_key": "0" * 64,
                "flags": 0,
            }
        )

    async def _gateway_info(self, *, body: Any, files: list[FakeFile]) -> web.Response:
        limit = {"total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 16}
        shards = self.recommended_shards
        return _json({"url": self.gateway_url, "shards": shards, "session_start_limit": limit})

    # interactions and webhooks

    def _interaction_for(self, token: str) -> FakeInteraction:
        inter = self.interactions.get(token)
        if inter is None:
            raise web.HTTPNotFound(reason="Unknown interaction")
        return inter

    def _too_big(self, files: list[FakeFile]) -> web.Response | None:
        if any(len(f.data) > self.upload_limit for f in files):
            return _json({"message": "Request entity too large", "code": 40005}, status=413)
        return None

    async def _callback(
        self, iid: str, token: str, *, body: Any, files: list[FakeFile]
    ) -> web.Response:
        inter = self._interaction_for(token)
        if time.monotonic() - inter.injected_at > self.ack_deadline:
            return _json({"message": "Unknown interaction", "code": 10062}, status=404)
        if inter.callbacks:
            return _json(
                {"message": "Interaction has already been acknowledged.", "code": 40060}, status=400
            )
        if (too_big := self._too_big(files)) is not None:
            return too_big
        kind = int(body.get("type", 0))
        data = body.get("data") or {}
        if kind in (4, 7) and (invalid := self._invalid(data, files, creating=kind == 4)):
            return invalid  # not acknowledged: the person still waits
        if kind == 9:  # a modal answers only a command or a component
            if inter.type not in (2, 3):
                refused = {"message": "Interaction type cannot open a modal", "code": 50035}
                return _json(refused, status=400)
            if (invalid := self._invalid_modal(data)) is not None:
                return invalid
            inter.modal = data
        inter.callbacks.append(body)
        inter.callback_at = time.monotonic()
        resource: dict[str, Any] = {"type": kind}
        message_id = None
        if kind in (4, 5):
            msg = self._message(inter.channel_id)
            msg["interaction_metadata"] = {
                "id": inter.id,
                "type": inter.type,
                "user": self.users[inter.user_id],
                "authorizing_integration_owners": {"0": self.guild_id},
            }
            msg["application_id"] = self.application_id
            self._apply(msg, data, files)
            if kind == 5:
                msg["flags"] = (data.get("flags") or 0) | LOADING
            inter.original_id = message_id = msg["id"]
            resource["message"] = msg
            await self._echo("MESSAGE_CREATE", msg)
        interaction = {
            "id": inter.id,
            "type": inter.type,
            "response_message_id": message_id,
            "response_message_loading": kind == 5,
            "response_message_ephemeral": bool((data.get("flags") or 0) & EPHEMERAL),
        }
        return _json({"interaction": interaction, "resource": resource})

    async def _followup(
        self, app: str, token: str, *, body: Any, files: list[FakeFile]
    ) -> web.Response:
        inter = self._interaction_for(token)
        self.check_token(inter)
        if (too_big := self._too_big(files)) is not None:
            return too_big
        if (invalid := self._invalid(body, files, creating=True)) is not None:
            return invalid
        inter.followups.append(body)
        msg = self._message(inter.channel_id)
        msg["webhook_id"] = app
        self._apply(msg, body, files)
        await self._echo("MESSAGE_CREATE", msg)
        return _json(msg)

    def _hook_message(self, token: str, mid: str) -> dict[str, Any]:
        inter = self._interaction_for(token)
        self.check_token(inter)
        if mid == "@original":
            mid = inter.original_id or ""
        msg = self.messages.get(mid)
        if msg is None:
            raise web.HTTPNotFound(reason="Unknown Message")
        return msg

    async def _get_hook_message(
        self, app: str, token: str, mid: str, *, body: Any, files: list[FakeFile]
    ) -> web.Response:
        return _json(self._hook_message(token, mid))

    async def _edit_hook_message(
        self, app: str, token: str, mid: str, *, body: Any, files: list[FakeFile]
    ) -> web.Response:
        msg = self._hook_message(token, mid)
        if (invalid := self._invalid(body, files, creating=False)) is not None:
            return invalid
        limited, headers = self._edit(msg["channel_id"], token=token)
        if limited is not None:
            return limited
        msg["flags"] = msg.get("flags", 0) & ~LOADING
        self._apply(msg, body, files)
        msg["edits"] += 1
        msg["edited_timestamp"] = _now_iso()
        await self._echo("MESSAGE_UPDATE", msg)
        return _json(msg, headers=headers)

    async def _delete_hook_message(
        self, app: str, token: str, mid: str, *, body: Any, files: list[FakeFile]
    ) -> web.Response:
        msg = self._hook_message(token, mid)
        self.messages.pop(msg["id"], None)
        await self._echo("MESSAGE_DELETE", msg)
        return web.Response(status=204)

    # channels and messages

    def _channel(self, cid: str) -> dict[str, Any]:
        channel = self.channels.get(cid)
        if channel is None:
            raise web.HTTPNotFound(reason="Unknown Channel")
        return channel

    def _channel_message(self, cid: str, mid: str) -> dict[str, Any]:
        msg = self.messages.get(mid)
        if msg is None or msg["channel_id"] != cid:
            raise web.HTTPNotFound(reason="Unknown Message")
        return msg

    async def _get_channel(self, cid: str, *, body: Any, files: list[FakeFile]) -> web.Response:
        return _json(self._channel(cid))

    async def _create_message(self, cid: str, *, body: Any, files: list[FakeFile]) -> web.Response:
        channel = self._channel(cid)
        if (too_big := self._too_big(files)) is not None:
            return too_big
        if (invalid := self._invalid(body, files, creating=True)) is not None:
            return invalid
        msg = self._message(cid)
        self._apply(msg, body, files)
        channel["last_message_id"] = msg["id"]
        if channel["type"] == 11:
            channel["message_count"] += 1
            channel["thread_metadata"]["archived"] = False
        await self._echo("MESSAGE_CREATE", msg)
        return _json(msg)

    async def _get_message(
        self, cid: str, mid: str, *, body: Any, files: list[FakeFile]
    ) -> web.Response:
        return _json(self._channel_message(cid, mid))

    async def _edit_message(
        self, cid: str, mid: str, *, body: Any, files: list[FakeFile]
    ) -> web.Response:
        msg = self._channel_message(cid, mid)
        if (invalid := self._invalid(body, files, creating=False)) is not None:
            return invalid
        limited, headers = self._edit(cid)
        if limited is not None:
            return limited
        self._apply(msg, body, files)
        msg["edits"] += 1
        msg["edited_timestamp"] = _now_iso()
        await self._echo("MESSAGE_UPDATE", msg)
        return _json(msg, headers=headers)

    async def _delete_message(
        self, cid: str, mid: str, *, body: Any, files: list[FakeFile]
    ) -> web.Response:
        msg = self._channel_message(cid, mid)
        self.messages.pop(mid)
        await self._echo("MESSAGE_DELETE", msg)
        return web.Response(status=204)

    async def _thread_from_message(
        self, cid: str, mid: str, *, body: Any, files: list[FakeFile]
    ) -> web.Response:
        self._channel(cid)
        msg = self._channel_message(cid, mid)
        # Like Discord: a thread started from a message has that message's id.
        thread = self._thread(mid, cid, str(body.get("name", ""))[:100])
        self.channels[mid] = thread
        msg["thread"] = thread
        await self.dispatch("THREAD_CREATE", {**thread, "newly_created": True})
        return _json(thread, status=201)

    async def _thread_alone(self, cid: str, *, body: Any, files: list[FakeFile]) -> web.Response:
        self._channel(cid)
        thread = self._thread(self.new_id(), cid, str(body.get("name", ""))[:100])
        self.channels[thread["id"]] = thread
        await self.dispatch("THREAD_CREATE", {**thread, "newly_created": True})
        return _json(thread, status=201)

    # application commands

    async def _put_commands(
        self, app: str, *rest: str, body: Any, files: list[FakeFile]
    ) -> web.Response:
        guild = rest[0] if rest else None
        refused = self._invalid_commands(body or [])
        if refused is not None:
            return refused
        stored = []
        for command in body or []:
            item = {
                "id": self.new_id(),
                "application_id": self.application_id,
                "version": self.new_id(),
                "type": 1,
                "description": "",
                "options": [],
                "default_member_permissions": None,
                "nsfw": False,
                **command,
            }
            if guild:
                item["guild_id"] = guild
            stored.append(item)
        self.commands[guild] = stored
        return _json(stored)

    def _invalid_commands(self, commands: list[dict[str, Any]]) -> web.Response | None:
        """Discord's checks of a command list's languages: localization keys must be Discord
        locales, descriptions 1 to 100 characters in each (400, 50035, nested `_errors`)."""
        errors: dict[str, Any] = {}

        def refuse(where: tuple[Any, ...], code: str, message: str) -> None:
            node = errors
            for key in where:
                node = node.setdefault(str(key), {})
            node.setdefault("_errors", []).append({"code": code, "message": message})

        def check(where: tuple[Any, ...], item: dict[str, Any]) -> None:
            for field_name in ("name_localizations", "description_localizations"):
                for locale, text in (item.get(field_name) or {}).items():
                    if locale not in DISCORD_LOCALES:
                        refuse((*where, field_name, locale), "LOCALE_INVALID", "Invalid locale")
                    elif field_name == "description_localizations" and not (
                        isinstance(text, str) and 1 <= len(text) <= MAX_COMMAND_DESCRIPTION
                    ):
                        message = f"Must be between 1 and {MAX_COMMAND_DESCRIPTION} in length."
                        refuse((*where, field_name, locale), "BASE_TYPE_BAD_LENGTH", message)

        for n, command in enumerate(commands):
            check((n,), command)
            for o, option in enumerate(command.get("options") or []):
                check((n, "options", o), option)
        if not errors:
            return None
        return _json({"message": "Invalid Form Body", "code": 50035, "errors": errors}, status=400)

    async def _get_commands(
        self, app: str, *rest: str, body: Any, files: list[FakeFile]
    ) -> web.Response:
        return _json(self.commands.get(rest[0] if rest else None, []))
