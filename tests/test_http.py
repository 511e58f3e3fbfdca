"""The bot's own HTTP server: liveness and readiness as a load balancer reads them."""

from __future__ import annotations

import aiohttp

from bot.http import HttpServer


async def test_readyz_follows_the_ready_flag_and_healthz_stays_up() -> None:
    http = HttpServer(host="127.0.0.1", port=0)
    await http.start()
    try:
        async with aiohttp.ClientSession() as session:

            async def status(path: str) -> int:
                async with session.get(http.url + path) as response:
                    return response.status

            assert (await status("/readyz"), await status("/healthz")) == (503, 200)
            http.ready = True
            assert await status("/readyz") == 200
            http.ready = False  # a drain began
            assert (await status("/readyz"), await status("/healthz")) == (503, 200)
    finally:
        await http.stop()
