"""A fake Discord on 127.0.0.1: REST v10 and the Gateway, enough for the real discord.py.

It exists so the adapter's tests run the real library end to end, over real sockets, with
Discord's real wire formats: login (`/users/@me`, `/oauth2/applications/@me`), the Gateway
handshake (HELLO, heartbeats, IDENTIFY → READY + GUILD_CREATE), dispatches we inject
(INTERACTION_CREATE, MESSAGE_CREATE), interaction callbacks and webhooks, channel messages
(JSON and multipart uploads), threads and command registration.

It also behaves like Discord where the bot could go wrong:
- message edits are limited per channel (5 per 5 s, sliding window) and answered with a
  proper 429 (`{message, retry_after, global}` plus a `Via` header, or discord.py would treat
  it as a Cloudflare ban); `rate_limited` counts them;
- Discord's global limit: more than `global_limit` (50) requests within `global_window` (1 s,
  sliding) from the bot get a global 429 (`"global": true`, `X-RateLimit-Global: true`,
  `X-RateLimit-Scope: global`); interaction callbacks and interaction webhooks are exempt,
  as on Discord. `global_rate_limited` counts those (`rate_limited` counts every 429);
  `global_limit=None` turns the limit off;
- `force_429(n)` answers the next `n` REST calls with a 429;
- files over the guild's upload limit get 413 / error 40005;
- `pings()` tells which sent messages would have notified someone (mentions not disabled).

Every REST call is recorded in `calls` (method, path, query, json, files with their bytes,
monotonic time).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from aiohttp import BodyPartReader, WSMsgType, web

VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
EMBED_LINKS = 1 << 14
ATTACH_FILES = 1 << 15
READ_MESSAGE_HISTORY = 1 << 16
MANAGE_CHANNELS = 1 << 4
USE_APPLICATION_COMMANDS = 1 << 31
CREATE_PUBLIC_THREADS = 1 << 35
SEND_MESSAGES_IN_THREADS = 1 << 38
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


def _json(data: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    # discord.py only parses bodies whose Content-Type is exactly `application/json`.
    out = {"Content-Type": "application/json", **(headers or {})}
    return web.Response(status=status, body=json.dumps(data).encode(), headers=out)


class FakeDiscord:
    """Start with `async with FakeDiscord() as fake:`; point discord.py at `api_url` and
    `gateway_url`. One guild (`guild_id`) with a text channel (`channel_id`), an admin member
    with Manage Channels (`admin_id`) and a plain member (`user_id`)."""

    def __init__(
        self,
        *,
        upload_limit: int = DEFAULT_UPLOAD_LIMIT,
        edit_limit: int = 5,
        edit_window: float = 5.0,
        global_limit: int | None = 50,
        global_window: float = 1.0,
    ) -> None:
        self._ids = itertools.count(1_100_000_000_000_000_000)
        self.upload_limit = upload_limit
        self.edit_limit = edit_limit
        self.edit_window = edit_window
        self.global_limit = global_limit
        self.global_window = global_window
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
        self.channels: dict[str, dict[str, Any]] = {self.channel_id: self._text_channel()}
        self.messages: dict[str, dict[str, Any]] = {}
        self.interactions: dict[str, FakeInteraction] = {}
        self.commands: dict[str | None, list[dict[str, Any]]] = {}
        self.calls: list[Call] = []
        self.rate_limited = 0
        self.global_rate_limited = 0
        self.gateway_events: list[dict[str, Any]] = []
        self.identified = asyncio.Event()
        self._force_429 = 0
        self._edits: dict[str, deque[float]] = {}
        self._global: deque[float] = deque()  # when accepted non-exempt requests arrived
        self._sockets: list[web.WebSocketResponse] = []
        self._seq = 0
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # --- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> FakeDiscord:
        app = web.Application(client_max_size=1024**3)
        app.router.add_get("/gateway", self._gateway)
        app.router.add_route("*", "/api/v10/{tail:.*}", self._rest)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])  # the real port behind port 0
        return self

    async def __aexit__(self, *exc: object) -> None:
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    def new_id(self) -> str:
        return str(next(self._ids))

    # --- test controls ---------------------------------------------------------------------

    def force_429(self, count: int) -> None:
        """Answer the next `count` REST calls with a (waitable) 429."""
        self._force_429 = count

    async def wait_for(
        self, predicate: Callable[[], Any], *, within: float = 10.0, what: str = "condition"
    ) -> Any:
        """Wait until `predicate()` is truthy (re-checked after every request the fake
        handles); return its value or fail with `what` after `within` seconds."""

        async def until() -> Any:
            async with self._changed:
                while not (value := predicate()):
                    await self._changed.wait()
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

    # --- injecting gateway events ----------------------------------------------------------

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Send a DISPATCH (op 0) to every connected client."""
        self._seq += 1
        frame = {"op": 0, "t": event, "s": self._seq, "d": data}
        self.gateway_events.append(frame)
        for ws in list(self._sockets):
            await ws.send_str(json.dumps(frame))

    def member(self, user_id: str) -> dict[str, Any]:
        roles = [self.admin_role_id] if user_id == self.admin_id else []
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

    async def slash(
        self,
        name: str,
        options: dict[str, Any] | None = None,
        *,
        user_id: str | None = None,
        channel_id: str | None = None,
        attachment_size_limit: int | None = None,
    ) -> FakeInteraction:
        """A person runs `/name` with string options."""
        opts = [{"name": k, "type": 3, "value": v} for k, v in (options or {}).items()]
        data = {"id": self.new_id(), "name": name, "type": 1, "options": opts}
        return await self._interaction(
            2, data, user_id=user_id, channel_id=channel_id, size_limit=attachment_size_limit
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

    async def click(self, custom_id: str, *, message_id: str, user_id: str | None = None) -> Any:
        """A person clicks a button (`custom_id`) on a message."""
        message = self.messages[message_id]
        data = {"custom_id": custom_id, "component_type": 2}
        return await self._interaction(
            3, data, user_id=user_id, channel_id=message["channel_id"], message=message
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
    ) -> FakeInteraction:
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
        channel = {**self.channels[cid], "permissions": str(self.permissions_of(uid))}
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
            "app_permissions": str(MEMBER_PERMISSIONS),
            "locale": "en-US",
            "guild_locale": "en-US",
            "attachment_size_limit": size_limit or self.upload_limit,
            "entitlements": [],
            "authorizing_integration_owners": {"0": self.guild_id},
            "context": 0,
        }
        if message is not None:
            payload["message"] = message
        await self.dispatch("INTERACTION_CREATE", payload)
        return inter

    async def say(self, channel_id: str, content: str, *, user_id: str | None = None) -> str:
        """A person posts `content` in a channel or thread; returns the message id."""
        uid = user_id or self.user_id
        mentions = [self.users[m] for m in re.findall(r"<@!?(\d+)>", content) if m in self.users]
        msg = self._message(channel_id, content=content, author=self.users[uid])
        msg["mentions"] = mentions
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
            "roles": [everyone, admin],
            "emojis": [],
            "stickers": [],
            "features": [],
            "channels": [c for c in self.channels.values() if c["type"] != 11],
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
            "guild_id": self.guild_id,
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
        self.messages[msg["id"]] = msg
        return msg

    def _apply(self, msg: dict[str, Any], body: dict[str, Any], files: list[FakeFile]) -> None:
        for key in ("content", "embeds", "components", "flags"):
            if key in body and body[key] is not None:
                msg[key] = body[key]
        if files:
            msg["attachments"] = [
                {
                    "id": self.new_id(),
                    "filename": f.filename,
                    "size": len(f.data),
                    "url": f"https://cdn.fake/{f.filename}",
                    "proxy_url": f"https://cdn.fake/{f.filename}",
                    "content_type": f.content_type,
                }
                for f in files
            ]

    # --- gateway ---------------------------------------------------------------------------

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        self._sockets.append(ws)
        await ws.send_str(json.dumps({"op": 10, "d": {"heartbeat_interval": 41250}}))
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                frame = json.loads(msg.data)
                if frame.get("op") == 1:
                    await ws.send_str(json.dumps({"op": 11}))
                elif frame.get("op") == 2:
                    await self._identify()
                elif frame.get("op") == 6:
                    await self.dispatch("RESUMED", {})
        finally:
            self._sockets.remove(ws)
        return ws

    async def _identify(self) -> None:
        ready = {
            "v": 10,
            "user": self.users[self.bot_id],
            "guilds": [{"id": self.guild_id, "unavailable": True}],
            "session_id": "fake-session",
            "resume_gateway_url": self.gateway_url,
            "application": {"id": self.application_id, "flags": 0},
            "private_channels": [],
            "relationships": [],
        }
        await self.dispatch("READY", ready)
        await self.dispatch("GUILD_CREATE", self._guild())
        self.identified.set()

    # --- REST ------------------------------------------------------------------------------

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["tail"]
        body, files = await self._read_body(request)
        call = Call(request.method, path, dict(request.query), body, files, 0, time.monotonic())
        self.calls.append(call)
        try:
            if self._force_429 > 0:
                self._force_429 -= 1
                response = self._too_many(0.05, bucket="forced")
            elif (wait := self._global_allowed(path, call.at)) > 0:
                self.global_rate_limited += 1
                response = self._too_many_global(wait)
            else:
                response = await self._route(request.method, path, body, files)
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

    def _too_many(self, retry_after: float, *, bucket: str) -> web.Response:
        headers = {
            "Via": "1.1 google",
            "Retry-After": str(max(1, round(retry_after))),
            "X-RateLimit-Limit": str(self.edit_limit),
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset-After": f"{retry_after:.3f}",
            "X-RateLimit-Bucket": bucket,
            "X-RateLimit-Scope": "user",
        }
        body = {"message": "You are being rate limited.", "retry_after": retry_after}
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

    def _edit_allowed(self, channel_id: str) -> float:
        """0 when an edit in this channel fits the sliding window, else seconds to wait."""
        now = time.monotonic()
        window = self._edits.setdefault(channel_id, deque())
        while window and now - window[0] >= self.edit_window:
            window.popleft()
        if len(window) >= self.edit_limit:
            return window[0] + self.edit_window - now
        window.append(now)
        return 0.0

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
        limit = {"total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1}
        return _json({"url": self.gateway_url, "shards": 1, "session_start_limit": limit})

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
        inter.callbacks.append(body)
        inter.callback_at = time.monotonic()
        kind = int(body.get("type", 0))
        data = body.get("data") or {}
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
                msg["flags"] = (data.get("flags") or 0) | 128  # LOADING
            inter.original_id = message_id = msg["id"]
            resource["message"] = msg
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
        if (too_big := self._too_big(files)) is not None:
            return too_big
        inter.followups.append(body)
        msg = self._message(inter.channel_id)
        msg["webhook_id"] = app
        self._apply(msg, body, files)
        return _json(msg)

    def _hook_message(self, token: str, mid: str) -> dict[str, Any]:
        inter = self._interaction_for(token)
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
        if (wait := self._edit_allowed(msg["channel_id"])) > 0:
            return self._too_many(wait, bucket=f"edit-{msg['channel_id']}")
        msg["flags"] = msg.get("flags", 0) & ~128
        self._apply(msg, body, files)
        msg["edits"] += 1
        return _json(msg)

    async def _delete_hook_message(
        self, app: str, token: str, mid: str, *, body: Any, files: list[FakeFile]
    ) -> web.Response:
        msg = self._hook_message(token, mid)
        self.messages.pop(msg["id"], None)
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
        msg = self._message(cid)
        self._apply(msg, body, files)
        channel["last_message_id"] = msg["id"]
        if channel["type"] == 11:
            channel["message_count"] += 1
            channel["thread_metadata"]["archived"] = False
        return _json(msg)

    async def _get_message(
        self, cid: str, mid: str, *, body: Any, files: list[FakeFile]
    ) -> web.Response:
        return _json(self._channel_message(cid, mid))

    async def _edit_message(
        self, cid: str, mid: str, *, body: Any, files: list[FakeFile]
    ) -> web.Response:
        msg = self._channel_message(cid, mid)
        if (wait := self._edit_allowed(cid)) > 0:
            return self._too_many(wait, bucket=f"edit-{cid}")
        self._apply(msg, body, files)
        msg["edits"] += 1
        msg["edited_timestamp"] = _now_iso()
        return _json(msg)

    async def _delete_message(
        self, cid: str, mid: str, *, body: Any, files: list[FakeFile]
    ) -> web.Response:
        self._channel_message(cid, mid)
        self.messages.pop(mid)
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

    async def _get_commands(
        self, app: str, *rest: str, body: Any, files: list[FakeFile]
    ) -> web.Response:
        return _json(self.commands.get(rest[0] if rest else None, []))
