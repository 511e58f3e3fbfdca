"""Helpers shared by tests: waiting on conditions, and a recording Surface.

`RecordingSurface` stands in for an adapter (the far side of the `Surface` port) when a test
is about the core; adapter tests use the real adapters against the platform fakes instead.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from bot.models import MediaFile, SurfaceLimits, View


async def wait_until(
    predicate: Callable[[], Any | Awaitable[Any]], *, timeout: float = 10.0, interval: float = 0.01
) -> Any:
    """Poll `predicate` until it is truthy; fail the test with a clear message on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


@dataclass
class Upload:
    url: str
    data: bytes
    kind: str
    content_type: str


@dataclass
class RecordingSurface:
    limits: SurfaceLimits = field(
        default_factory=lambda: SurfaceLimits(
            min_edit_interval=0.01, max_text=2000, max_upload_bytes=10 * 1024 * 1024
        )
    )
    messages: dict[str, View] = field(default_factory=dict)
    calls: list[tuple[str, Any]] = field(default_factory=list)
    uploads: list[Upload] = field(default_factory=list)
    links: list[tuple[str, str, str]] = field(default_factory=list)
    finals: list[str] = field(default_factory=list)

    async def post(self, view: View) -> str:
        message_id = str(len(self.messages) + 1)
        self.messages[message_id] = view
        self.calls.append(("post", view))
        return message_id

    async def edit(self, message_id: str, view: View, *, final: bool = False) -> None:
        self.messages[message_id] = view
        self.calls.append(("edit", view))
        if final:
            self.finals.append(message_id)

    async def upload(self, media: MediaFile) -> None:
        self.uploads.append(
            Upload(media.url, media.path.read_bytes(), media.kind, media.content_type)
        )
        self.calls.append(("upload", media.url))

    async def post_link(self, url: str, *, kind: str, reason: str) -> None:
        self.links.append((url, kind, reason))
        self.calls.append(("link", url))

    def all_text(self) -> str:
        return "\n".join(f"{v.status}\n{v.text}" for v in self.messages.values())
