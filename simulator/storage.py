"""each::storage for the offline simulator: presign, PUT, and the public URL serving it.

`simulator.Simulator` calls `add_routes` while it builds its application. Paths, under the
same `/eachlabs/v1` base as each::api (so `EACHLABS_API_URL = <sim>/eachlabs/v1`):

- `POST /eachlabs/v1/upload/presign` `{content_type, file_type, expires_in_seconds}` →
  `{id, presigned_url, public_url, expires_at, required_headers}` (422 for a missing
  content type, an unknown file type or a lifetime outside 60..31536000 s);
- `PUT /storage/put/{id}?X-Amz-Signature=...` with the bytes: refused like a storage service
  refuses it (403 when the signature, the `Content-Type` or a required header is not exactly
  what was presigned, 403 after the 15 minutes the URL is valid, 411 without a
  `Content-Length`: chunked uploads are not accepted, 400 above 100 MB);
- `GET /storage/uploads/{id}.{ext}`: what was uploaded, with its content type, to anyone.

What it keeps is bounded (the newest uploads up to `max_bytes` in all): it also serves a
keyless bot on real platforms for as long as that runs.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

UPLOAD_URL_SECONDS = 15 * 60
MAX_FILE_BYTES = 100 * 1024 * 1024
MAX_STORED_BYTES = 256 * 1024 * 1024
FILE_TYPES = ("image", "video", "audio", "other")
REQUIRED = {"x-amz-acl": "public-read"}  # what a real presign asks to be sent back
_EXTENSIONS = {
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/webp": "webp",
    "image/gif": "gif",
    "video/mp4": "mp4",
    "audio/mpeg": "mp3",
}


@dataclass(slots=True)
class Upload:
    """One presigned upload and, once PUT, its bytes."""

    id: str
    content_type: str
    file_type: str
    signature: str
    issued: float
    expires_at: float
    data: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)  # what the PUT carried

    @property
    def name(self) -> str:
        return f"{self.id}.{_EXTENSIONS.get(self.content_type, 'bin')}"


class SimStorage:
    """The simulator's uploads (`sim.app[STORAGE_KEY]`), for tests to inspect."""

    def __init__(self, *, max_bytes: int = MAX_STORED_BYTES) -> None:
        self.uploads: OrderedDict[str, Upload] = OrderedDict()
        self.presigns: list[dict[str, Any]] = []  # every presign request body
        self.refused: list[tuple[int, str]] = []  # (status, reason) of refused PUTs
        self.max_bytes = max_bytes

    def stored(self) -> list[Upload]:
        return [u for u in self.uploads.values() if u.data is not None]

    def by_url(self, url: str) -> Upload | None:
        name = url.rsplit("/", 1)[-1]
        return next((u for u in self.uploads.values() if u.name == name), None)

    def _trim(self) -> None:
        total = sum(len(u.data or b"") for u in self.uploads.values())
        while total > self.max_bytes and self.uploads:
            _, oldest = self.uploads.popitem(last=False)
            total -= len(oldest.data or b"")


STORAGE_KEY: web.AppKey[SimStorage] = web.AppKey("sim_storage", SimStorage)


def add_routes(app: web.Application, sim: Any) -> None:
    """Mount the storage routes; `sim` is the `Simulator` (its URL and API key)."""
    state = SimStorage()
    app[STORAGE_KEY] = state

    async def presign(request: web.Request) -> web.Response:
        key = getattr(sim, "api_key", None)
        if key is not None and key not in _keys(request):
            return web.json_response({"detail": "Invalid API key."}, status=401)
        try:
            body = await request.json()
        except ValueError:
            body = None
        state.presigns.append(body if isinstance(body, dict) else {})
        problem = _invalid(body)
        if problem:
            return web.json_response({"detail": problem}, status=422)
        now = time.time()
        upload = Upload(
            id=f"up_{secrets.token_hex(8)}",
            content_type=body["content_type"],
            file_type=body["file_type"],
            signature=secrets.token_hex(16),
            issued=now,
            expires_at=now + float(body["expires_in_seconds"]),
        )
        state.uploads[upload.id] = upload
        return web.json_response(
            {
                "id": upload.id,
                "presigned_url": (
                    f"{sim.url}/storage/put/{upload.id}?X-Amz-Expires={UPLOAD_URL_SECONDS}"
                    f"&X-Amz-Signature={upload.signature}"
                ),
                "public_url": f"{sim.url}/storage/uploads/{upload.name}",
                "expires_at": int(upload.expires_at),
                "required_headers": {"Content-Type": upload.content_type, **REQUIRED},
            }
        )

    async def put(request: web.Request) -> web.Response:
        upload = state.uploads.get(request.match_info["id"])
        refusal = _refuse_put(request, upload)
        if refusal is not None:
            status, reason = refusal
            state.refused.append(refusal)
            return web.Response(status=status, text=f"<Error><Code>{reason}</Code></Error>")
        assert upload is not None
        upload.data = await request.read()
        upload.headers = dict(request.headers)
        state._trim()
        return web.Response(status=200, headers={"ETag": f'"{upload.signature[:8]}"'})

    async def serve(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        upload = next((u for u in state.uploads.values() if u.name == name), None)
        if upload is None or upload.data is None:
            return web.Response(status=404, text="<Error><Code>NoSuchKey</Code></Error>")
        return web.Response(body=upload.data, content_type=upload.content_type)

    app.router.add_post("/eachlabs/v1/upload/presign", presign)
    app.router.add_put("/storage/put/{id}", put)
    app.router.add_get("/storage/uploads/{name}", serve)


def _keys(request: web.Request) -> tuple[str, ...]:
    auth = request.headers.get("Authorization", "")
    bearer = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
    return (bearer, request.headers.get("X-API-Key", ""))


def _invalid(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "a JSON object is required"
    if not isinstance(body.get("content_type"), str) or not body["content_type"]:
        return "content_type is required"
    if body.get("file_type") not in FILE_TYPES:
        return f"file_type must be one of {', '.join(FILE_TYPES)}"
    ttl = body.get("expires_in_seconds")
    if not isinstance(ttl, int) or not 60 <= ttl <= 31_536_000:
        return "expires_in_seconds must be between 60 and 31536000"
    return None


def _refuse_put(request: web.Request, upload: Upload | None) -> tuple[int, str] | None:
    """Why a storage service would refuse this PUT, as (status, S3 error code)."""
    if upload is None or request.query.get("X-Amz-Signature") != upload.signature:
        return 403, "SignatureDoesNotMatch"
    if time.time() - upload.issued > UPLOAD_URL_SECONDS:
        return 403, "AccessDenied"
    if upload.data is not None:
        return 403, "AccessDenied"  # a presigned URL is good for one upload here
    if request.headers.get("Content-Type") != upload.content_type:
        return 403, "SignatureDoesNotMatch"
    for name, value in REQUIRED.items():
        if request.headers.get(name) != value:
            return 403, "SignatureDoesNotMatch"
    if "chunked" in request.headers.get("Transfer-Encoding", "").lower():
        return 501, "NotImplemented"
    if request.content_length is None:
        return 411, "MissingContentLength"
    if request.content_length > MAX_FILE_BYTES:
        return 400, "EntityTooLarge"
    return None
