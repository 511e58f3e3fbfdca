"""Fetch generated media for upload, safely.

Generated files arrive as URLs; the bot re-uploads them so they outlive the link. Fetching a
URL someone else chose is a classic server-side request forgery hole, so every hop obeys one
policy:

- only `https`, no credentials in the URL;
- the host is resolved here and *every* address must be public; the request then goes to one
  of those checked addresses (with the original Host and TLS name), so a second DNS answer
  cannot swap in a private address;
- redirects are followed by hand (at most `MAX_REDIRECTS`) and each target passes the same
  check, so a public link bouncing to 169.254.169.254 is refused;
- the body is streamed to a temporary file with a size cap (Content-Length is checked first,
  then the bytes are counted, since servers omit or misstate it) and an idle read timeout;
- the whole fetch (every hop and the body) has a total deadline (`MEDIA_FETCH_DEADLINE`), so a
  server trickling a byte now and then cannot hold a turn forever.

`allow_insecure` (the `MEDIA_ALLOW_INSECURE` setting, for local testing with the simulator)
also allows `http` and loopback/private addresses. Link-local (cloud metadata), multicast,
unspecified and reserved addresses stay refused even then: no simulator lives there.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import re
import socket
import tempfile
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Literal
from urllib.parse import unquote

import aiohttp
from yarl import URL

from bot.errors import MediaRejected
from bot.i18n import _, ngettext
from bot.models import MediaFile, MediaKind

if TYPE_CHECKING:
    from bot.config import Settings

log = logging.getLogger(__name__)

RefusalReason = Literal["too_big", "insecure", "private", "not_media", "http_error", "network"]
AddressClass = Literal["public", "local", "forbidden"]

MAX_REDIRECTS = 5
CHUNK_SIZE = 64 * 1024
_HEAD_SIZE = 64
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_MAX_FILENAME = 100

# Extension → content type, for files whose server says nothing useful.
_EXTENSIONS: dict[str, str] = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".heic": "image/heic",
    ".bmp": "image/bmp",
    ".mp4": "video/mp4",
    ".m4v": "video/mp4",
    ".mov": "video/quicktime",
    ".webm": "video/webm",
    ".mkv": "video/x-matroska",
    ".mp3": "audio/mpeg",
    ".wav": "audio/wav",
    ".m4a": "audio/mp4",
    ".ogg": "audio/ogg",
    ".flac": "audio/flac",
}
# Content type → the extension a file of that type should carry.
_PREFERRED_EXTENSION: dict[str, str] = {
    "image/jpeg": ".jpg",
    "image/jpg": ".jpg",
    "image/svg+xml": ".svg",
    "video/mp4": ".mp4",
    "audio/mp4": ".m4a",
    "audio/x-wav": ".wav",
    "audio/wave": ".wav",
    "audio/mp3": ".mp3",
    **{ctype: ext for ext, ctype in reversed(list(_EXTENSIONS.items()))},
}
_KIND_PREFIXES: tuple[tuple[str, MediaKind], ...] = (
    ("image/", "image"),
    ("video/", "video"),
    ("audio/", "audio"),
)
# Content types that say "some bytes" rather than what the bytes are.
_GENERIC_TYPES = frozenset(
    {"", "application/octet-stream", "binary/octet-stream", "application/binary"}
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


class MediaRefused(MediaRejected):
    """A refused fetch, with `reason` so the caller can choose: post the link instead (too
    big, network trouble) or say nothing more (private address, not media)."""

    def __init__(self, user_message: str, *, reason: RefusalReason, detail: str = "") -> None:
        super().__init__(user_message, detail=detail)
        self.reason: RefusalReason = reason


class MediaTooSlow(MediaRefused):
    """The fetch did not finish within its total deadline (a `network` refusal: the link
    still works for a person, only not for the bot's wait)."""

    def __init__(self, *, deadline: float, url: str) -> None:
        super().__init__(
            _("The file took too long to download (more than {duration}).").format(
                duration=_duration(deadline)
            ),
            reason="network",
            detail=f"{redact_url(url)}: not fetched within the {deadline:g} s deadline",
        )
        self.deadline = deadline


# --- pure helpers ------------------------------------------------------------------------


def media_kind(*, content_type: str | None, head: bytes, url: str) -> tuple[MediaKind, str]:
    """What a file is, as (kind, content type): the Content-Type header if it names an image,
    video or audio type; else the file's first bytes; else, when the header is missing or
    generic (`application/octet-stream`), the URL's extension. Anything else
    is ("file", its content type) and the fetcher refuses it as not media."""
    declared = (content_type or "").split(";", 1)[0].strip().lower()
    for prefix, kind in _KIND_PREFIXES:
        if declared.startswith(prefix):
            return kind, declared
    sniffed = sniff_content_type(head)
    if sniffed is None and declared in _GENERIC_TYPES:
        # Only a silent server leaves the URL to decide: an HTML error page at `x.png` is
        # still HTML.
        sniffed = _EXTENSIONS.get(_url_suffix(url))
    if sniffed is not None:
        return _kind_of(sniffed), sniffed
    return "file", declared or "application/octet-stream"


def kind_from_url(url: str) -> MediaKind:
    """A file's kind from its URL's extension alone, for links that were not fetched."""
    return _kind_of(_EXTENSIONS.get(_url_suffix(url), ""))


def sniff_content_type(head: bytes) -> str | None:
    """The media type announced by a file's magic bytes, or None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return "audio/wav"
    if head[4:8] == b"ftyp":
        return _iso_media_type(head[8:12])
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/webm" if b"webm" in head else "video/x-matroska"
    if head.startswith(b"ID3") or head[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"):
        return "audio/mpeg"
    if head.startswith(b"OggS"):
        return "audio/ogg"
    if head.startswith(b"fLaC"):
        return "audio/flac"
    return None


def _iso_media_type(brand: bytes) -> str:
    """ISO base media files (`ftyp` box) share one layout; the brand tells them apart."""
    if brand == b"qt  ":
        return "video/quicktime"
    if brand in (b"M4A ", b"M4B "):
        return "audio/mp4"
    if brand in (b"avif", b"avis"):
        return "image/avif"
    if brand in (b"heic", b"heix", b"mif1", b"msf1"):
        return "image/heic"
    return "video/mp4"


def classify_address(address: str) -> AddressClass:
    """Where an IP address points: `public` (fetchable), `local` (loopback, private, shared,
    documentation ranges: fetchable only with `allow_insecure`) or `forbidden` (link-local,
    multicast, unspecified, reserved: never). Addresses embedded in IPv6 (IPv4-mapped, 6to4,
    NAT64) are judged by the IPv4 address inside."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            ip = embedded
    if ip.is_loopback:
        return "local"  # checked first: Python files ::1 under the reserved ::/8 block
    if ip.is_link_local or ip.is_multicast or ip.is_unspecified or ip.is_reserved:
        return "forbidden"
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:
        return "forbidden"
    return "public" if ip.is_global else "local"


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def safe_filename(url: str, content_type: str) -> str:
    """A harmless file name from the URL's last path segment, carrying the extension that
    matches `content_type` (chat clients choose the preview from the extension): a wrong media
    extension is replaced, a missing or unrelated one (`download.php`) gets the right one added.
    """
    segment = unquote(URL(url).path.rsplit("/", 1)[-1])
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", segment).strip("._-") or "media"
    stem, suffix = os.path.splitext(name)
    wanted = _PREFERRED_EXTENSION.get(content_type, "")
    known = _EXTENSIONS.get(suffix.lower())
    if not wanted or known == content_type:
        stem, suffix = name[: len(name) - len(suffix)], suffix
    elif known is not None:
        suffix = wanted
    else:
        stem, suffix = name, wanted
    return f"{stem[: _MAX_FILENAME - len(suffix)] or 'media'}{suffix}"


def format_size(size: int) -> str:
    """Bytes for a person: '312 MB', '1.5 MB', '800 KB'."""
    mib = size / (1024 * 1024)
    if mib >= 10:
        return f"{mib:.0f} MB"
    if mib >= 1:
        return f"{mib:.1f}".removesuffix(".0") + " MB"
    return f"{max(1, round(size / 1024))} KB"


def redact_url(url: URL | str) -> str:
    """The URL without query, fragment or credentials: signed links carry tokens in the query
    and must never reach a log. A URL yarl cannot parse is cut by hand the same way."""
    try:
        parsed = URL(url) if isinstance(url, str) else url
        return str(parsed.with_query(None).with_fragment(None).with_user(None))
    except ValueError:
        text = re.sub(r"[?#].*", "", str(url), flags=re.S)
        return re.sub(r"(//)[^/]*@", r"\1", text, count=1)[:200]


def redact_urls(text: str) -> str:
    """`text` (an exception's message, say) with every URL in it redacted."""
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)


def _duration(seconds: float) -> str:
    if seconds >= 60:
        minutes = round(seconds / 60)
        return ngettext("{count} minute", "{count} minutes", minutes).format(count=minutes)
    return ngettext("{count} second", "{count} seconds", 1 if seconds == 1 else 2).format(
        count=f"{seconds:g}"
    )


def _url_suffix(url: str) -> str:
    try:
        return Path(URL(url).path).suffix.lower()
    except ValueError:
        return ""


def _kind_of(content_type: str) -> MediaKind:
    for prefix, kind in _KIND_PREFIXES:
        if content_type.startswith(prefix):
            return kind
    return "file"


def _too_big(size: int, cap: int, url: URL) -> MediaRefused:
    return MediaRefused(
        _("That file is too big to upload here ({size}; the limit is {limit}).").format(
            size=format_size(size), limit=format_size(cap)
        ),
        reason="too_big",
        detail=f"{redact_url(url)}: {size} bytes > cap {cap}",
    )


# --- the fetcher -------------------------------------------------------------------------


class MediaFetcher:
    """Downloads generated media into temporary files under the policy above.

    `async with fetcher.fetch(url, max_bytes=surface.limits.max_upload_bytes) as media:`
    yields a `MediaFile`; the temporary file is deleted when the block exits, however it exits.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        max_bytes: int,
        allow_insecure: bool = False,
        timeout: float = 120.0,
        deadline: float = 300.0,
        tmp_dir: str | None = None,
    ) -> None:
        self._session = session
        self._max_bytes = max_bytes
        self._allow_insecure = allow_insecure
        # `timeout` is an idle timeout (no byte for that long); `deadline` caps the whole fetch.
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=min(timeout, 30.0), sock_read=timeout
        )
        self._deadline = deadline
        self._tmp_dir = tmp_dir

    @classmethod
    def from_settings(cls, session: aiohttp.ClientSession, settings: Settings) -> MediaFetcher:
        return cls(
            session,
            max_bytes=settings.media_max_bytes,
            allow_insecure=settings.media_allow_insecure,
            timeout=settings.media_fetch_timeout,
            deadline=settings.media_fetch_deadline,
        )

    def fetch(
        self,
        url: str,
        *,
        max_bytes: int | None = None,
        headers: Mapping[str, str] | None = None,
        any_file: bool = False,
    ) -> AbstractAsyncContextManager[MediaFile]:
        """Fetch `url` (cap: the smaller of this fetcher's and `max_bytes`). Raises
        `MediaRefused` (a `MediaRejected`) on entry for every refusal. `headers` (a bot
        token for a platform's private file URL, say) go to `url`'s own origin only: a
        redirect to another host never sees them. `any_file` also takes files that are not
        images, videos or audio (a generated 3D model, an archive), as kind `file`; a web
        page is still refused (it is an error page far more often than an output)."""
        cap = self._max_bytes if max_bytes is None else min(self._max_bytes, max_bytes)
        return self._fetch(url, _Ask(cap, dict(headers or {}), any_file))

    @contextlib.asynccontextmanager
    async def _fetch(self, url: str, ask: _Ask) -> AsyncIterator[MediaFile]:
        fd, tmp_name = tempfile.mkstemp(prefix="eachsense-media-", dir=self._tmp_dir)
        path = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as sink:
                media = await self._download(url, ask, sink, path)
            yield media
        finally:
            _remove(path)

    async def _download(self, url: str, ask: _Ask, sink: BinaryIO, path: Path) -> MediaFile:
        deadline = asyncio.timeout(self._deadline)
        try:
            async with deadline:
                return await self._download_now(url, ask, sink, path)
        except TimeoutError as exc:
            if not deadline.expired():
                raise
            raise MediaTooSlow(deadline=self._deadline, url=url) from exc

    async def _download_now(self, url: str, ask: _Ask, sink: BinaryIO, path: Path) -> MediaFile:
        try:
            response = await self._follow(url, ask.headers)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise _network(url, exc) from exc
        final_url = str(response.url_for_log)
        async with response.raw:
            try:
                return await self._store_body(response, ask, sink, path)
            except (TimeoutError, aiohttp.ClientError) as exc:
                raise _network(final_url, exc) from exc

    async def _follow(self, url: str, headers: dict[str, str]) -> _Response:
        """GET `url`, following redirects by hand so every hop passes the policy."""
        current = self._parse(url)
        origin = current.origin()
        for _hop in range(MAX_REDIRECTS + 1):
            # credentials stay with the origin they were meant for
            raw = await self._request(current, headers if current.origin() == origin else {})
            if raw.status not in _REDIRECTS:
                return _Response(raw, current)
            location = raw.headers.get("Location", "")
            raw.release()
            if not location:
                raise MediaRefused(
                    _("The file could not be downloaded (a redirect without a target)."),
                    reason="http_error",
                    detail=f"{redact_url(current)}: HTTP {raw.status} without Location",
                )
            try:
                current = self._parse(current.join(URL(location)))
            except ValueError as exc:
                raise _not_valid(location) from exc
            log.debug("media redirect to %s", redact_url(current))
        raise MediaRefused(
            _("The file could not be downloaded (too many redirects)."),
            reason="http_error",
            detail=f"more than {MAX_REDIRECTS} redirects, last {redact_url(current)}",
        )

    def _parse(self, url: str | URL) -> URL:
        """Check the parts of a URL that need no network: scheme, credentials, host."""
        try:
            parsed = URL(url) if isinstance(url, str) else url
        except ValueError as exc:
            raise _not_valid(str(url)) from exc
        allowed = ("https", "http") if self._allow_insecure else ("https",)
        if parsed.scheme not in allowed:
            raise MediaRefused(
                _("Only https links can be fetched."),
                reason="insecure",
                detail=f"scheme {parsed.scheme!r} refused: {redact_url(parsed)}",
            )
        if parsed.user is not None or parsed.password is not None:
            raise MediaRefused(
                _("Links with a user name or password cannot be fetched."),
                reason="insecure",
                detail=f"credentials in URL refused: {redact_url(parsed)}",
            )
        if not parsed.host:
            raise _not_valid(str(parsed))
        return parsed

    async def _request(self, url: URL, extra: dict[str, str]) -> aiohttp.ClientResponse:
        """Resolve and check the host, then connect to a checked address (trying each in turn),
        keeping the real host name for the Host header and TLS."""
        host = url.raw_host or ""
        addresses = await self._checked_addresses(url)
        headers = {
            **extra,
            "Host": url.host_port_subcomponent or host,
            "Accept-Encoding": "identity",
        }
        server_hostname = host if url.scheme == "https" else None
        last_error: aiohttp.ClientConnectorError | None = None
        for address in addresses:
            target = url if address == host else url.with_host(address)
            try:
                return await self._session.get(
                    target,
                    headers=headers,
                    allow_redirects=False,
                    raise_for_status=False,
                    timeout=self._timeout,
                    server_hostname=server_hostname,
                )
            except aiohttp.ClientConnectorError as exc:
                last_error = exc
                log.debug("media connect to %s failed: %s", address, redact_urls(str(exc)))
        assert last_error is not None  # addresses is never empty
        raise last_error

    async def _checked_addresses(self, url: URL) -> list[str]:
        host = url.raw_host or ""
        port = url.port or (443 if url.scheme == "https" else 80)
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._timeout.sock_connect):
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise MediaRefused(
                _("The file could not be downloaded (the host name did not resolve)."),
                reason="network",
                detail=f"resolving {host!r} failed: {exc}",
            ) from exc
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        if not addresses:
            raise _network(str(url), OSError("no addresses"))
        for address in addresses:
            verdict = classify_address(address)
            if verdict == "public" or (verdict == "local" and self._allow_insecure):
                continue
            raise MediaRefused(
                _("That address is not public."),
                reason="private",
                detail=f"{redact_url(url)} resolves to {verdict} address {address}",
            )
        return addresses

    async def _store_body(
        self, response: _Response, ask: _Ask, sink: BinaryIO, path: Path
    ) -> MediaFile:
        raw, cap = response.raw, ask.cap
        if not 200 <= raw.status < 300:
            raise MediaRefused(
                _("The file could not be downloaded (HTTP {status}).").format(status=raw.status),
                reason="http_error",
                detail=f"{response.url_for_log}: HTTP {raw.status}",
            )
        if raw.content_length is not None and raw.content_length > cap:
            raise _too_big(raw.content_length, cap, response.url)
        size = 0
        head = b""
        kind_and_type: tuple[MediaKind, str] | None = None
        async for chunk in raw.content.iter_chunked(CHUNK_SIZE):
            size += len(chunk)
            if size > cap:
                raise _too_big(size, cap, response.url)
            if kind_and_type is None:
                head += chunk[: _HEAD_SIZE - len(head)]
                if len(head) >= _HEAD_SIZE:
                    kind_and_type = self._kind(raw, head, response.url, ask.any_file)
            sink.write(chunk)
        if kind_and_type is None:
            kind_and_type = self._kind(raw, head, response.url, ask.any_file)
        sink.flush()
        kind, content_type = kind_and_type
        log.debug("fetched %s (%d bytes, %s)", response.url_for_log, size, content_type)
        return MediaFile(
            url=str(response.url),
            path=path,
            filename=safe_filename(str(response.url), content_type),
            content_type=content_type,
            kind=kind,
            size=size,
        )

    @staticmethod
    def _kind(
        raw: aiohttp.ClientResponse, head: bytes, url: URL, any_file: bool
    ) -> tuple[MediaKind, str]:
        header = raw.headers.get("Content-Type")
        kind, content_type = media_kind(content_type=header, head=head, url=str(url))
        if kind == "file" and any_file and not _looks_like_a_page(content_type, head):
            return kind, content_type
        if kind == "file":
            raise MediaRefused(
                _("That link did not return an image or video."),
                reason="not_media",
                detail=f"{redact_url(url)}: content type {header!r}, not media",
            )
        return kind, content_type


@dataclass(frozen=True, slots=True)
class _Ask:
    """What one fetch asked for: its size cap, its headers, whether any file will do."""

    cap: int
    headers: dict[str, str]
    any_file: bool = False


def _looks_like_a_page(content_type: str, head: bytes) -> bool:
    start = head.lstrip().lower()
    return content_type in ("text/html", "application/xhtml+xml") or start.startswith(
        (b"<!doctype html", b"<html")
    )


class _Response:
    """A response together with the URL it was asked for (the request went to an address)."""

    def __init__(self, raw: aiohttp.ClientResponse, url: URL) -> None:
        self.raw = raw
        self.url = url

    @property
    def url_for_log(self) -> str:
        return redact_url(self.url)


def _remove(path: Path) -> None:
    """Delete a temporary file synchronously: an `await` here could be cancelled and leak it."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _network(url: str, exc: BaseException) -> MediaRefused:
    what = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
    return MediaRefused(
        _("The file could not be downloaded (network error)."),
        reason="network",
        detail=f"{redact_url(url)}: {what}: {redact_urls(str(exc))}",
    )


def _not_valid(url: str) -> MediaRefused:
    return MediaRefused(
        _("That link is not valid."), reason="insecure", detail=f"invalid URL {redact_url(url)}"
    )
