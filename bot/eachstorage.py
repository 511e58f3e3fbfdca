"""each::storage: turn a local file into a durable public URL.

each::sense fetches reference images itself, possibly minutes later and again in later
turns, so it must get a URL that stays valid: a platform's attachment link (signed,
expiring) or private file URL (needs the bot token) will not do. Uploading is two steps
(see the protocol note):

1. `POST {EACHLABS_API_URL}/upload/presign` `{content_type, file_type, expires_in_seconds}`
   → `{id, presigned_url, public_url, expires_at, required_headers}`;
2. `PUT` the bytes to `presigned_url` with `Content-Type` and every `required_headers` header
   exactly as returned, streamed from disk with a `Content-Length` (storage services refuse
   chunked uploads).

The presigned URL is a credential for 15 minutes: it never reaches a log (only its redacted
form does). Errors are the bot's (`bot.errors`), with a sentence for the person.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import aiohttp
from multidict import CIMultiDict

from bot.eachlabs import error_for
from bot.errors import ConnectError, ServerError
from bot.media import redact_url

log = logging.getLogger(__name__)

FileType = Literal["image", "video", "audio", "other"]
MIN_TTL, MAX_TTL = 60, 31_536_000  # what the presign endpoint accepts for expires_in_seconds
STORE_FAILED = "I could not store the image for each::sense. Please try again."


@dataclass(frozen=True, slots=True)
class Presigned:
    """One presign answer. `upload_url` is a secret (signed) until it expires."""

    id: str
    upload_url: str
    public_url: str
    headers: tuple[tuple[str, str], ...] = ()

    def __repr__(self) -> str:  # the signed URL must not reach a log through a repr
        return f"Presigned(id={self.id!r}, public_url={self.public_url!r})"


def parse_presign(body: object) -> Presigned:
    """A presign answer, tolerantly: `presigned_url` (or `upload_url`), `public_url` (or
    `url`), `required_headers` as an object (or a list of `{name, value}`)."""
    data = body if isinstance(body, Mapping) else {}
    upload = data.get("presigned_url") or data.get("upload_url")
    public = data.get("public_url") or data.get("url")
    if not isinstance(upload, str) or not isinstance(public, str) or not upload or not public:
        raise ServerError(STORE_FAILED, detail="presign answer without presigned_url/public_url")
    return Presigned(
        id=str(data.get("id") or ""),
        upload_url=upload,
        public_url=public,
        headers=_headers(data.get("required_headers")),
    )


def _headers(value: object) -> tuple[tuple[str, str], ...]:
    if isinstance(value, Mapping):
        return tuple((str(k), str(v)) for k, v in value.items() if v is not None)
    if isinstance(value, list):
        pairs = [item for item in value if isinstance(item, Mapping)]
        return tuple((str(p.get("name")), str(p.get("value"))) for p in pairs if p.get("name"))
    return ()


class StorageClient:
    """One per process, on the process's shared session."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        api_key: str | None,
        base_url: str,
        timeout: float = 30.0,
        upload_timeout: float = 300.0,
    ) -> None:
        self._session = session
        self._api_key = api_key
        self._url = base_url.rstrip("/") + "/upload/presign"
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        # an upload of a large file may take a while: only silence counts as failure
        self._upload_timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=30.0, sock_read=upload_timeout
        )

    async def upload(
        self, path: Path, *, content_type: str, file_type: FileType, expires_in: int
    ) -> str:
        """Store the file at `path`; its public URL."""
        presigned = await self.presign(
            content_type=content_type, file_type=file_type, expires_in=expires_in
        )
        await self.put(presigned, path, content_type=content_type)
        log.info("stored %s as %s", content_type, presigned.public_url)
        return presigned.public_url

    async def presign(
        self, *, content_type: str, file_type: FileType, expires_in: int
    ) -> Presigned:
        body = {
            "content_type": content_type,
            "file_type": file_type,
            "expires_in_seconds": max(MIN_TTL, min(MAX_TTL, int(expires_in))),
        }
        try:
            async with self._session.post(
                self._url, json=body, headers=self._auth(), timeout=self._timeout
            ) as resp:
                text = await resp.text()
                answer = _loads(text)
                if resp.status >= 400:
                    raise error_for(resp.status, answer, text, what="upload")
        except (TimeoutError, aiohttp.ClientConnectionError) as exc:
            raise ConnectError(
                "I could not reach Eachlabs to store the image. Please try again shortly.",
                detail=f"presign: {type(exc).__name__}: {exc}",
            ) from exc
        return parse_presign(answer)

    async def put(self, presigned: Presigned, path: Path, *, content_type: str) -> None:
        """PUT the file's bytes, streamed from disk, with exactly the headers asked for."""
        headers: CIMultiDict[str] = CIMultiDict({"Content-Type": content_type})
        for name, value in presigned.headers:
            headers[name] = value  # case-insensitive: a required Content-Type replaces ours
        shown = redact_url(presigned.upload_url)
        handle = await asyncio.to_thread(path.open, "rb")
        try:
            # an open file: aiohttp streams it and sends its size as Content-Length
            async with self._session.put(
                presigned.upload_url, data=handle, headers=headers, timeout=self._upload_timeout
            ) as resp:
                if not 200 <= resp.status < 300:
                    raise ServerError(STORE_FAILED, detail=f"PUT {shown}: HTTP {resp.status}")
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise ConnectError(STORE_FAILED, detail=f"PUT {shown}: {type(exc).__name__}") from exc
        finally:
            await asyncio.to_thread(handle.close)

    def _auth(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self._api_key:
            headers["X-API-Key"] = self._api_key
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers


def _loads(text: str) -> Any:
    try:
        return json.loads(text) if text.strip() else None
    except ValueError:
        return None
