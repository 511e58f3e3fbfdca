"""Prometheus metrics: what an operator watches (`/metrics`, `prometheus-client`'s format).

One `Metrics` per core, on its own registry (not the library's global one), so every test
and every embedded core starts from zero. Platform calls are counted where they leave the
process: an aiohttp `TraceConfig` on the HTTP sessions the adapters use, with each adapter
naming the base URL it owns (`watch`), so the count includes the SDKs' own retries and every
429 the platforms answer, whatever the SDK does with it.
"""

from __future__ import annotations

import re
from types import SimpleNamespace

import aiohttp
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

# seconds: fast text turns at the low end, video turns (minutes) at the high end
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)
_ID = re.compile(r"/\d{5,}|/[A-Z][A-Z0-9]{8,}")  # snowflakes and Slack ids: one label each


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.turns = Counter("eachsense_turns", "Turns by outcome.", ["outcome"], registry=r)
        self.agent_errors = Counter(
            "eachsense_agent_errors", "each::sense errors by code.", ["code"], registry=r
        )
        self.first_update = Histogram(
            "eachsense_first_update_seconds",
            "From a message reaching the core to the first visible update of its answer.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.final_edit = Histogram(
            "eachsense_final_edit_seconds",
            "From the last event of a stream to its final edit on the platform.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_wait = Histogram(
            "eachsense_queue_wait_seconds",
            "Time a turn waited for its thread or a global slot.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.running = Gauge("eachsense_running_turns", "Turns running now.", registry=r)
        self.jobs = Counter(
            "eachsense_jobs", "Direct runs by kind and outcome.", ["kind", "outcome"], registry=r
        )
        self.platform_calls = Counter(
            "eachsense_platform_calls",
            "Calls to a chat platform's API by method.",
            ["platform", "method"],
            registry=r,
        )
        self.platform_429s = Counter(
            "eachsense_platform_rate_limited",
            "Platform answers 429 by method.",
            ["platform", "method"],
            registry=r,
        )
        self._watched: list[tuple[str, str]] = []

    # --- platform calls ----------------------------------------------------------------

    def watch(self, base_url: str, *, platform: str) -> None:
        """Count requests under `base_url` as calls to `platform`."""
        self._watched.append((base_url.rstrip("/"), platform))

    def trace_config(self) -> aiohttp.TraceConfig:
        """Hook for an aiohttp session: every response under a watched URL is counted."""
        trace = aiohttp.TraceConfig()
        trace.on_request_end.append(self._on_request_end)
        return trace

    async def _on_request_end(
        self,
        _session: aiohttp.ClientSession,
        _context: SimpleNamespace,
        params: aiohttp.TraceRequestEndParams,
    ) -> None:
        url = str(params.url.with_query(None))
        for base, platform in self._watched:
            if url.startswith(base):
                method = _ID.sub("/:id", url[len(base) :]).lstrip("/") or "/"
                self.platform_calls.labels(platform, method).inc()
                if params.response.status == 429:
                    self.platform_429s.labels(platform, method).inc()
                return

    # --- exposition --------------------------------------------------------------------

    def render(self) -> tuple[bytes, str]:
        """The text exposition format and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
