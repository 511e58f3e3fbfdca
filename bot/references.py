"""Reference images a person attached: checked, then re-hosted for each::sense.

each::sense takes up to 4 reference images per turn as public https URLs that stay valid
while it works, JPEG, PNG, WebP or GIF, up to 20 MB each. What people attach is none of
that: a Discord attachment URL is signed and expires in about a day, a Slack file URL needs
the bot token, a shell path is local. So every image is

1. checked against what the platform declared (count, type, size) before anything is
   downloaded, so the common mistakes are answered at once;
2. downloaded to a temporary file under the media policy (`bot.media`: https and public
   addresses, a size cap counted as the bytes arrive), with the platform's headers;
3. checked by its magic bytes (the declared type is only a hint: a login page served as
   `cat.png` is not an image);
4. uploaded to each::storage (`bot.eachstorage`), streamed from the file, and handed on as
   its public URL.

Every refusal is an `InputError` whose sentence names the image and says what to change.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path

from bot.eachstorage import StorageClient
from bot.errors import BotError, InputError
from bot.media import MediaFetcher, MediaRefused, format_size, sniff_content_type
from bot.models import ImageRef

log = logging.getLogger(__name__)

MAX_IMAGES = 4
MAX_IMAGE_BYTES = 20_000_000  # each::sense: "up to 20 MB" (decimal, to stay on the safe side)
ALLOWED_TYPES = frozenset({"image/jpeg", "image/png", "image/webp", "image/gif"})
_GENERIC = frozenset({"", "application/octet-stream", "binary/octet-stream"})
_HEAD = 16
KINDS = "a JPEG, PNG, WebP or GIF image"
IMAGE_ONLY_PROMPT = "Here is an image for you to use as a reference."


def not_an_image(ref: ImageRef) -> InputError:
    return InputError(f"{_quoted(ref)} is not {KINDS}, so I can't use it as a reference.")


def too_big(ref: ImageRef, size: int) -> InputError:
    return InputError(
        f"{_quoted(ref)} is {format_size(size)}; a reference image can be at most 20 MB."
    )


def _quoted(ref: ImageRef) -> str:
    name = " ".join(ref.name.split())[:80]
    return f"“{name}”" if ref.filename or ref.path else "The image"


class References:
    """Checks and re-hosts reference images; one per process."""

    def __init__(
        self, media: MediaFetcher, storage: StorageClient, *, ttl: int = 30 * 24 * 3600
    ) -> None:
        self._media = media
        self._storage = storage
        self._ttl = ttl

    def precheck(self, images: Sequence[ImageRef]) -> None:
        """Refuse what the platform's own description already rules out (no I/O)."""
        if len(images) > MAX_IMAGES:
            raise InputError(
                f"That is {len(images)} images; each::sense takes at most {MAX_IMAGES} "
                "per message. Please send at most 4."
            )
        for ref in images:
            declared = (ref.content_type or "").split(";", 1)[0].strip().lower()
            if declared not in _GENERIC and declared not in ALLOWED_TYPES:
                raise not_an_image(ref)
            if ref.size is not None and ref.size > MAX_IMAGE_BYTES:
                raise too_big(ref, ref.size)

    async def host(self, images: Sequence[ImageRef]) -> tuple[str, ...]:
        """The images' public URLs, in order; `InputError` (or another `BotError`) with a
        sentence when one cannot be used. Uploads run side by side; the first failure
        cancels the rest."""
        if not images:
            return ()
        self.precheck(images)
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(self._host(ref)) for ref in images]
        except BaseExceptionGroup as grouped:
            raise _first_bot_error(grouped) from grouped
        return tuple(task.result() for task in tasks)

    async def _host(self, ref: ImageRef) -> str:
        if ref.path is not None:
            return await self._host_file(ref, ref.path)
        try:
            async with self._media.fetch(
                ref.url, max_bytes=MAX_IMAGE_BYTES, headers=dict(ref.headers)
            ) as fetched:
                return await self._host_file(ref, fetched.path)
        except MediaRefused as err:
            if err.reason == "too_big":
                raise too_big(ref, _size_in(err) or MAX_IMAGE_BYTES + 1) from err
            if err.reason == "not_media":
                raise not_an_image(ref) from err
            raise InputError(
                f"I could not download {_quoted(ref)}: {err.user_message}", detail=err.detail
            ) from err

    async def _host_file(self, ref: ImageRef, path: Path) -> str:
        size, head = await asyncio.to_thread(_size_and_head, path)
        if size > MAX_IMAGE_BYTES:
            raise too_big(ref, size)
        content_type = sniff_content_type(head)
        if content_type not in ALLOWED_TYPES:
            raise not_an_image(ref)
        assert content_type is not None
        return await self._storage.upload(
            path, content_type=content_type, file_type="image", expires_in=self._ttl
        )


def _size_and_head(path: Path) -> tuple[int, bytes]:
    try:
        with path.open("rb") as handle:
            return path.stat().st_size, handle.read(_HEAD)
    except OSError as exc:
        raise InputError(
            f"I could not read “{path.name}”: {exc.strerror or 'unreadable'}.", detail=repr(exc)
        ) from exc


def _size_in(err: MediaRefused) -> int | None:
    """The size a too-big refusal counted (`... N bytes > cap M`), when it says."""
    head = err.detail.rsplit(": ", 1)[-1].split(" ", 1)[0]
    return int(head) if head.isdigit() else None


def _first_bot_error(grouped: BaseExceptionGroup) -> BaseException:
    """The error to report from a failed group: a `BotError` first (its sentence is for
    people), else whatever failed."""
    errors = list(_leaves(grouped))
    for err in errors:
        if isinstance(err, BotError):
            return err
    return errors[0]


def _leaves(grouped: BaseExceptionGroup) -> list[BaseException]:
    out: list[BaseException] = []
    for err in grouped.exceptions:
        out.extend(_leaves(err) if isinstance(err, BaseExceptionGroup) else [err])
    return out
