"""HTTP client sessions: how the process talks to every remote service.

One pooled session serves the Eachlabs APIs, media downloads and uploads (`Core.session`):
each running turn holds one each::sense stream, so its connections are not capped. A
platform's Web API gets a session of its own with a few connections (`per_host`): every turn
calls that one host, and a connection per turn in flight (each one's transport, parser and
buffers, about 12 KB) would add up with a thousand concurrent turns, while
a few dozen connections carry thousands of calls a second, far above any platform's limits.
"""

from __future__ import annotations

import aiohttp

from bot.metrics import Metrics

PLATFORM_CONNECTIONS = 32  # per platform API host: requests in flight at once


def new_http_session(*, metrics: Metrics | None = None, per_host: int = 0) -> aiohttp.ClientSession:
    """A session with pooled connections; `per_host` caps the connections to each host
    (0: no cap)."""
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=per_host, ttl_dns_cache=300)
    traces = [metrics.trace_config()] if metrics is not None else []
    # trust_env=False: with it aiohttp looks up netrc and proxy settings in a thread on every
    # request (two thread-pool hops each); every remote base URL is a setting instead.
    return aiohttp.ClientSession(connector=connector, trust_env=False, trace_configs=traces)
