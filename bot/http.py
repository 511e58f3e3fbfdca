"""The bot's own aiohttp server: platform events, Eachlabs webhooks, `/healthz`, `/readyz`.

`/healthz` says the process lives (200 while it runs); `/readyz` says it takes new work:
200 once started, 503 from the moment a drain begins, so a load balancer stops sending it
requests while its running answers finish.

One server for everything so a deployment exposes a single port (`HTTP_PORT`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable

from aiohttp import web

log = logging.getLogger(__name__)


async def _healthz(_request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


class HttpServer:
    def __init__(self, *, host: str, port: int) -> None:
        self.host = host
        self._port = port
        self.app = web.Application(client_max_size=2 * 1024 * 1024)
        self.app.router.add_get("/healthz", _healthz)
        self.app.router.add_get("/readyz", self._readyz)
        self.ready = False
        self.checks: list[Callable[[], Awaitable[str | None]]] = []  # None = fine, else why not
        self.metrics: Callable[[], tuple[bytes, str]] | None = None
        self.app.router.add_get("/metrics", self._metrics)
        self._runner: web.AppRunner | None = None

    async def _readyz(self, _request: web.Request) -> web.Response:
        problems = [] if self.ready else ["not started or draining"]
        for check in self.checks:
            try:
                why = await check()
            except Exception as err:  # a check that fails is a reason, not a crash
                why = f"check failed: {type(err).__name__}"
            if why:
                problems.append(why)
        body = {"ready": not problems, "problems": problems}
        return web.json_response(body, status=503 if problems else 200)

    async def _metrics(self, _request: web.Request) -> web.Response:
        if self.metrics is None:
            raise web.HTTPNotFound()
        body, content_type = self.metrics()
        response = web.Response(body=body)
        response.headers["Content-Type"] = content_type
        return response

    def add_routes(self, routes: Iterable[web.AbstractRouteDef]) -> None:
        """Mount routes; only before `start()` (aiohttp freezes the router then)."""
        self.app.add_routes(list(routes))

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self._port}"

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self._port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        if sockets:
            self._port = sockets[0].getsockname()[1]
        log.info("HTTP server listening on %s:%d", self.host, self._port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
