"""The fake Discord's DMs, user installs and interaction token lifetime, mixed into
`FakeDiscord`.

What Discord does there, as the fake does it (each proved against the real discord.py in
`tests/test_discord_surfaces_fake.py`; the bot's own tests are `tests/test_discord_dms.py`):

- Where a command is used decides the interaction's shape. In the bot's guild: `context` 0,
  `guild_id`, `member`. In a DM with the bot (`open_dm()`): `context` 1, no guild, `user`
  instead of `member`. In a group DM the bot is not in (`open_group_dm()`): `context` 2, no
  guild, `user`. In a channel of a server the bot is not in (`add_foreign_channel()`, a
  user-installed app there): `context` 0 with that server's `guild_id` and `member`, a
  channel discord.py never got in GUILD_CREATE. `authorizing_integration_owners` says which
  installs allowed it: `{"0": guild id}` for the server install ("0" in a bot DM), `{"1": user
  id}` for the person's own install (`user_install=True`, and always where the bot is not
  present) [test_interaction_contexts_read_as_discord_py_reads_them].
- The bot cannot write where it is not: REST writes to a foreign channel or a group DM get
  403 `{code: 50001, message: "Missing Access"}`, and nothing said there reaches the bot over
  the Gateway (no echo). The interaction's own response and followups work there
  [test_where_the_bot_is_not_only_the_interaction_answers].
- `POST /users/@me/channels {recipient_id}` opens (or returns) the DM with a person; the bot
  posts there like in any channel [test_the_bot_opens_a_dm_and_posts_there].
- An interaction token lives `token_lifetime` seconds (Discord: 15 minutes): after that every
  followup and `@original` call (post, edit, get, delete) is 401 `{code: 50027, message:
  "Invalid Webhook Token"}` [test_followups_end_with_the_token].
- Commands keep what `PUT .../commands` sent, `integration_types` and `contexts` included.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from tests.fakes.discord import FakeFile, FakeInteraction

TOKEN_LIFETIME = 15 * 60.0  # seconds an interaction token works (followups, @original)
MISSING_ACCESS = 50001
INVALID_WEBHOOK_TOKEN = 50027
# what a user-installed app may do where the bot is not (Discord sends a reduced set)
USER_INSTALL_APP_PERMISSIONS = (1 << 14) | (1 << 15)  # Embed Links, Attach Files


class Refused(Exception):
    """A REST refusal with Discord's JSON error (`FakeDiscord._rest` answers it)."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class SurfacesMixin:
    """DMs, group DMs, foreign servers and token lifetimes for `FakeDiscord` (see above)."""

    channels: dict[str, dict[str, Any]]
    users: dict[str, dict[str, Any]]
    guild_id: str
    bot_id: str

    def _init_surfaces(self, *, token_lifetime: float = TOKEN_LIFETIME) -> None:
        self.token_lifetime = token_lifetime
        self.foreign_guild_id = self.new_id()  # type: ignore[attr-defined]
        self.inaccessible: set[str] = set()  # channels the bot is not in

    # --- places -----------------------------------------------------------------------------

    def add_foreign_channel(self, name: str = "elsewhere") -> str:
        """A text channel in a server the bot is not in (a user-installed app is used there)."""
        channel_id = self.new_id()  # type: ignore[attr-defined]
        self.channels[channel_id] = {
            "id": channel_id,
            "type": 0,
            "guild_id": self.foreign_guild_id,
            "name": name,
            "position": 0,
            "permission_overwrites": [],
            "nsfw": False,
            "parent_id": None,
            "last_message_id": None,
        }
        self.inaccessible.add(channel_id)
        return channel_id

    def open_group_dm(self, *user_ids: str) -> str:
        """A group DM of people (not the bot): context 2 for a user-installed app."""
        channel_id = self.new_id()  # type: ignore[attr-defined]
        self.channels[channel_id] = {
            "id": channel_id,
            "type": 3,
            "recipients": [self.users[u] for u in user_ids],
            "owner_id": user_ids[0] if user_ids else None,
            "name": None,
            "icon": None,
            "last_message_id": None,
            "flags": 0,
        }
        self.inaccessible.add(channel_id)
        return channel_id

    def dm_of(self, user_id: str) -> str | None:
        """The bot's DM channel with a person, if one is open."""
        for channel in self.channels.values():
            recipients = channel.get("recipients") or []
            if channel.get("type") == 1 and [r["id"] for r in recipients] == [user_id]:
                return str(channel["id"])
        return None

    def bot_can_see(self, channel_id: str) -> bool:
        return channel_id not in self.inaccessible

    def is_bot_dm(self, channel_id: str) -> bool:
        channel = self.channels.get(channel_id, {})
        return channel.get("type") == 1 and channel_id not in self.inaccessible

    # --- what interactions look like where they are used ------------------------------------

    def context_fields(
        self, user_id: str, channel_id: str, *, user_install: bool
    ) -> dict[str, Any]:
        """The payload fields that depend on where the interaction happened (None: absent)."""
        channel = self.channels[channel_id]
        user_owner = {"1": user_id}
        if self.is_bot_dm(channel_id):
            owners = {**({"1": user_id} if user_install else {}), "0": "0"}
            return self._private(user_id, 1, owners, app_permissions=None)
        if channel.get("type") in (1, 3):
            return self._private(
                user_id, 2, user_owner, app_permissions=USER_INSTALL_APP_PERMISSIONS
            )
        if channel.get("guild_id") == self.foreign_guild_id:
            return {
                "guild_id": self.foreign_guild_id,
                "context": 0,
                "authorizing_integration_owners": user_owner,
                "app_permissions": str(USER_INSTALL_APP_PERMISSIONS),
            }
        if user_install:
            return {"authorizing_integration_owners": {"0": self.guild_id, **user_owner}}
        return {}

    def _private(
        self, user_id: str, context: int, owners: dict[str, str], *, app_permissions: int | None
    ) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "guild_id": None,
            "member": None,
            "user": self.users[user_id],
            "context": context,
            "authorizing_integration_owners": owners,
        }
        if app_permissions is not None:
            fields["app_permissions"] = str(app_permissions)
        return fields

    # --- REST -------------------------------------------------------------------------------

    def check_write(self, method: str, path: str) -> None:
        """Writes to a channel the bot is not in: 403 Missing Access."""
        if method == "GET" or not path.startswith("/channels/"):
            return
        channel_id = path.split("/")[2]
        if channel_id in self.inaccessible:
            raise Refused(403, MISSING_ACCESS, "Missing Access")

    def check_token(self, inter: FakeInteraction) -> None:
        """Followups and @original work for `token_lifetime` after the interaction."""
        if time.monotonic() - inter.injected_at >= self.token_lifetime:
            raise Refused(401, INVALID_WEBHOOK_TOKEN, "Invalid Webhook Token")

    async def _create_dm(self, *, body: Any, files: list[FakeFile]) -> web.Response:
        from tests.fakes.discord import _json

        recipient = str((body or {}).get("recipient_id", ""))
        if recipient not in self.users:
            raise Refused(400, 50035, "Invalid Form Body")
        channel_id = self.dm_of(recipient) or self.open_dm(recipient)  # type: ignore[attr-defined]
        return _json(self.channels[channel_id])
