"""Where discord.py sends its REST calls and opens its Gateway connection.

discord.py keeps both as class attributes (`discord.http.Route.BASE` and
`discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY`, present through all of 2.x), so pointing
the bot at a proxy or a local fake means setting them. They are process-wide: we set them
once, when a bot starts (never at import), from `DISCORD_API_URL` / `DISCORD_GATEWAY_URL`.
"""

from __future__ import annotations

import logging

import discord
import discord.gateway
import discord.http
import yarl

log = logging.getLogger(__name__)


def use_endpoints(*, api_url: str, gateway_url: str) -> None:
    """Point discord.py's REST base (`.../api/v10`) and Gateway URL at the given addresses.

    The Gateway URL is used as given for the first connection; on a resume discord.py uses the
    `resume_gateway_url` the Gateway itself sent in READY.
    """
    api = api_url.rstrip("/")
    discord.http.Route.BASE = api
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)
    log.debug("discord endpoints: api=%s gateway=%s", api, gateway_url)
