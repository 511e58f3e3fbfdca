"""MediaFetcher against a real HTTP server on 127.0.0.1, plus the pure helpers."""

from __future__ import annotations

import asyncio
import logging
import tracemalloc
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from bot.config import Settings
from bot.errors import MediaRejected
from bot.media import (
    MediaFetcher,
    MediaRefused,
    MediaTooSlow,
    classify_address,
    format_size,
    media_kind,
    redact_url,
    safe_filename,
    sniff_content_type,
)

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(256)) * 4
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(200)
MP4 = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + bytes(300)
MOV = b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00" + bytes(100)
WEBM = b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01webm" + bytes(50)
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + bytes(50)
WAV = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(50)
GIF = b"GIF89a" + bytes(50)
MP3 = b"ID3\x04\x00\x00\x00\x00\x00\x00" + bytes(50)
FIVE_MB = PNG + bytes(5 * 1024 * 1024 - len(PNG))


@dataclass
class Server:
    base: str
    port: int
    seen: list[str] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)
    auths: list[str] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)


def _app(server: Server) -> web.Application:
    async def record(request: web.Request, handler):  # type: ignore[no-untyped-def]
        server.seen.append(request.path)
        server.hosts.append(request.headers.get("Host", ""))
        server.auths.append(request.headers.get("Authorization", ""))
        return await handler(request)

    def static(body: bytes, content_type: str) -> object:
        async def handler(request: web.Request) -> web.Response:
            return web.Response(body=body, headers={"Content-Type": content_type})

        return handler

    def redirect(location: str, status: int = 302) -> object:
        async def handler(request: web.Request) -> web.Response:
            return web.Response(status=status, headers={"Location": location})

        return handler

    async def declared_huge(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "video/mp4"})
        response.content_length = 300 * 1024 * 1024
        await response.prepare(request)
        await server.release.wait()  # never sends a body: reading it would hang
        return response

    async def chunked(request: web.Request) -> web.StreamResponse:
        total = int(request.query["total"])
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(PNG)
        sent = len(PNG)
        try:
            while sent < total:
                piece = bytes(min(32 * 1024, total - sent))
                await response.write(piece)
                sent += len(piece)
            await response.write_eof()
        except ConnectionError:
            pass
        return response

    async def five_mb(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        response.content_length = len(FIVE_MB)
        await response.prepare(request)
        view = memoryview(FIVE_MB)
        for start in range(0, len(FIVE_MB), 64 * 1024):
            await response.write(view[start : start + 64 * 1024])
        await response.write_eof()
        return response

    async def trickle(request: web.Request) -> web.StreamResponse:
        """A byte every 20 ms of a file that claims 10 MB: never idle, never done."""
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        response.content_length = 10 * 1024 * 1024
        await response.prepare(request)
        await response.write(PNG[:64])
        try:
            while not server.release.is_set():
                await response.write(b"\x00")
                await asyncio.sleep(0.02)
        except ConnectionError:
            pass
        return response

    async def stall(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        response.content_length = 10_000
        await response.prepare(request)
        await response.write(PNG[:100])
        await server.release.wait()
        return response

    app = web.Application(middlewares=[web.middleware(record)])
    routes = {
        "/img.png": static(PNG, "image/png; charset=binary"),
        "/blob": static(MP4, "application/octet-stream"),
        "/noext": static(JPEG, "binary/octet-stream"),
        "/clip.webm": static(b"no magic here" * 10, "application/octet-stream"),
        "/tiny": static(GIF[:8], ""),
        "/page.png": static(b"<!doctype html><html><body>hi</body></html>", "text/html"),
        "/missing.png": static(b"gone", "text/plain"),
        "/hop": redirect("/img.png"),
        "/hop-abs": redirect(f"{server.base}/blob", 307),
        "/hop-away": redirect(f"http://localhost:{server.port}/img.png"),
        "/to-metadata": redirect("http://169.254.169.254/latest/meta-data/"),
        "/to-file": redirect("file:///etc/passwd"),
        "/loop": redirect("/loop"),
        "/empty-redirect": redirect(""),
        "/huge": declared_huge,
        "/chunked": chunked,
        "/five": five_mb,
        "/stall": stall,
        "/trickle": trickle,
    }
    for path, handler in routes.items():
        app.router.add_get(path, handler)  # type: ignore[arg-type]

    async def not_found(request: web.Request) -> web.Response:
        return web.Response(status=404, text="nope")

    app.router.add_get("/missing", not_found)
    return app


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    placeholder = Server(base="", port=0)
    runner = web.AppRunner(web.Application())
    # Bind first so the routes can know their own base URL.
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    await runner.cleanup()

    placeholder = Server(base=f"http://127.0.0.1:{port}", port=port)
    runner = web.AppRunner(_app(placeholder), shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    yield placeholder
    placeholder.release.set()
    await runner.cleanup()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def _fetcher(
    session: aiohttp.ClientSession,
    tmp_path: Path,
    *,
    insecure: bool = True,
    max_bytes: int = 50 * 1024 * 1024,
    timeout: float = 10.0,
) -> MediaFetcher:
    return MediaFetcher(
        session,
        max_bytes=max_bytes,
        allow_insecure=insecure,
        timeout=timeout,
        tmp_dir=str(tmp_path),
    )


def _leftovers(directory: Path) -> list[Path]:
    return list(directory.iterdir())


async def _refusal(fetcher: MediaFetcher, url: str, **kwargs: int) -> MediaRefused:
    with pytest.raises(MediaRefused) as caught:
        async with fetcher.fetch(url, **kwargs):
            pytest.fail("fetch should have been refused")
    assert isinstance(caught.value, MediaRejected)
    return caught.value


# --- happy paths -------------------------------------------------------------------------


async def test_fetch_by_content_type_bytes_equal_and_file_deleted(
    server: Server, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    fetcher = _fetcher(session, tmp_path)
    async with fetcher.fetch(f"{server.base}/img.png?sig=secret") as media:
        assert media.path.read_bytes() == PNG
        assert (media.kind, media.content_type, media.size) == ("image", "image/png", len(PNG))
        assert media.filename == "img.png"
        assert media.path.parent == tmp_path
        path = media.path
    assert not path.exists()
    assert _leftovers(tmp_path) == []


async def test_temp_file_deleted_when_body_raises(
    server: Server, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    fetcher = _fetcher(session, tmp_path)
    paths: list[Path] = []
    with pytest.raises(RuntimeError):
        async with fetcher.fetch(f"{server.base}/img.png") as media:
            paths.append(media.path)
            assert media.path.exists()
            raise RuntimeError("upload failed")
    assert paths and not paths[0].exists()
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("path", "kind", "content_type", "filename", "body"),
    [
        ("/blob", "video", "video/mp4", "blob.mp4", MP4),  # magic under octet-stream
        ("/noext", "image", "image/jpeg", "noext.jpg", JPEG),
        ("/clip.webm", "video", "video/webm", "clip.webm", b"no magic here" * 10),  # extension
        ("/tiny", "image", "image/gif", "tiny.gif", GIF[:8]),  # shorter than the sniff window
    ],
)
async def test_kind_detection(
    server: Server,
    session: aiohttp.ClientSession,
    tmp_path: Path,
    path: str,
    kind: str,
    content_type: str,
    filename: str,
    body: bytes,
) -> None:
    async with _fetcher(session, tmp_path).fetch(server.base + path) as media:
        assert (media.kind, media.content_type, media.filename) == (kind, content_type, filename)
        assert media.path.read_bytes() == body


async def test_redirects_followed(
    server: Server, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    fetcher = _fetcher(session, tmp_path)
    async with fetcher.fetch(f"{server.base}/hop") as media:
        assert media.path.read_bytes() == PNG
        assert media.url == f"{server.base}/img.png"
    async with fetcher.fetch(f"{server.base}/hop-abs") as media:
        assert media.kind == "video"
    assert server.seen == ["/hop", "/img.png", "/hop-abs", "/blob"]


async def test_headers_go_to_the_urls_own_origin_only(
    server: Server, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """A private file URL needs the bot token; a redirect to another host must not get it."""
    fetcher = _fetcher(session, tmp_path)
    token = {"Authorization": "Bearer xoxb-secret"}
    async with fetcher.fetch(f"{server.base}/hop", headers=token) as media:
        assert media.path.read_bytes() == PNG
    async with fetcher.fetch(f"{server.base}/hop-away", headers=token) as media:
        assert media.path.read_bytes() == PNG
    assert server.seen == ["/hop", "/img.png", "/hop-away", "/img.png"]
    assert server.auths == ["Bearer xoxb-secret"] * 3 + [""]


async def test_host_name_resolved_and_pinned_with_original_host_header(
    server: Server, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    # "localhost" may resolve to ::1 first, where nothing listens: the next address is tried.
    async with _fetcher(session, tmp_path).fetch(f"http://localhost:{server.port}/img.png") as m:
        assert m.path.read_bytes() == PNG
    assert server.hosts == [f"localhost:{server.port}"]


async def test_five_megabytes_stream_with_small_peak_memory(
    server: Server, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    fetcher = _fetcher(session, tmp_path)
    async with fetcher.fetch(f"{server.base}/img.png"):
        pass  # warm up: one-off costs (connection pool, lazy imports) are not per-file memory
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        async with fetcher.fetch(f"{server.base}/five") as media:
            _, peak = tracemalloc.get_traced_memory()
            size = media.size
            same = media.path.read_bytes() == FIVE_MB
    finally:
        tracemalloc.stop()
    assert size == len(FIVE_MB) and same
    assert peak < 1024 * 1024, f"peak {peak} bytes"


# --- policy: scheme and address ----------------------------------------------------------


async def test_http_refused_when_not_insecure(
    server: Server, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    error = await _refusal(_fetcher(session, tmp_path, insecure=False), f"{server.base}/img.png")
    assert error.reason == "insecure"
    assert error.user_message == "Only https links can be fetched."
    assert server.seen == []
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/a.png",
        "file:///etc/passwd",
        "data:image/png;base64,iVBORw0KGgo=",
        "https://user:pw@example.com/a.png",
        "https:///nohost.png",
    ],
)
async def test_bad_urls_refused_as_insecure(
    session: aiohttp.ClientSession, tmp_path: Path, url: str
) -> None:
    error = await _refusal(_fetcher(session, tmp_path, insecure=True), url)
    assert error.reason == "insecure"
    assert "pw" not in error.detail


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1:{port}",
        "localhost:{port}",
        "10.1.2.3",
        "192.168.0.10",
        "[::1]:{port}",
        "[::ffff:127.0.0.1]:{port}",
        "169.254.169.254",
        "[fe80::1]",
        "0.0.0.0:{port}",
        "224.0.0.1",
        "[fd00::5]",
    ],
)
async def test_private_addresses_refused_without_a_request(
    server: Server, session: aiohttp.ClientSession, tmp_path: Path, host: str
) -> None:
    fetcher = _fetcher(session, tmp_path, insecure=False, timeout=1.0)
    error = await _refusal(fetcher, f"https://{host.format(port=server.port)}/img.png")
    assert error.reason == "private"
    assert error.user_message == "That address is not public."
    assert server.seen == []


async def test_insecure_mode_still_refuses_link_local(
    session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    error = await _refusal(_fetcher(session, tmp_path), "http://169.254.169.254/latest/")
    assert error.reason == "private"


async def test_redirect_to_metadata_address_refused(
    server: Server, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    error = await _refusal(_fetcher(session, tmp_path), f"{server.base}/to-metadata")
    assert error.reason == "private"
    assert server.seen == ["/to-metadata"]  # the first hop only; nothing went to 169.254
    assert _leftovers(tmp_path) == []


async def test_redirect_to_file_scheme_refused(
    server: Server, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    error = await _refusal(_fetcher(session, tmp_path), f"{server.base}/to-file")
    assert error.reason == "insecure"


async def test_redirect_loop_and_empty_location_refused(
    server: Server, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    fetcher = _fetcher(session, tmp_path)
    error = await _refusal(fetcher, f"{server.base}/loop")
    assert error.reason == "http_error"
    assert server.seen == ["/loop"] * 6  # the original request and five redirects
    error = await _refusal(fetcher, f"{server.base}/empty-redirect")
    assert error.reason == "http_error"


# --- policy: size, type, status, network -------------------------------------------------


async def test_too_big_by_content_length_refused_before_the_body(
    server: Server, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    # The server never sends the body, so reading it would end in a timeout, not too_big.
    fetcher = _fetcher(session, tmp_path, max_bytes=25 * 1024 * 1024, timeout=5.0)
    error = await _refusal(fetcher, f"{server.base}/huge")
    assert error.reason == "too_big"
    assert error.user_message == (
        "That file is too big to upload here (300 MB; the limit is 25 MB)."
    )


async def test_too_big_while_streaming_without_content_length(
    server: Server, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    fetcher = _fetcher(session, tmp_path, max_bytes=10 * 1024 * 1024)
    url = f"{server.base}/chunked?total={5 * 1024 * 1024}"
    error = await _refusal(fetcher, url, max_bytes=200_000)  # the smaller cap wins
    assert error.reason == "too_big"
    assert _leftovers(tmp_path) == []
    async with fetcher.fetch(f"{server.base}/chunked?total=150000", max_bytes=200_000) as media:
        assert media.size == 150_000 and media.kind == "image"


async def test_fetcher_cap_wins_over_larger_argument(
    server: Server, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    fetcher = _fetcher(session, tmp_path, max_bytes=100_000)
    error = await _refusal(fetcher, f"{server.base}/chunked?total=300000", max_bytes=10**12)
    assert error.reason == "too_big"


async def test_not_media_refused(
    server: Server, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    error = await _refusal(_fetcher(session, tmp_path), f"{server.base}/page.png")
    assert error.reason == "not_media"
    assert error.user_message == "That link did not return an image or video."
    assert _leftovers(tmp_path) == []


async def test_http_error_status(
    server: Server, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    error = await _refusal(_fetcher(session, tmp_path), f"{server.base}/missing")
    assert error.reason == "http_error"
    assert error.user_message == "The file could not be downloaded (HTTP 404)."


async def test_idle_timeout_is_a_network_refusal(
    server: Server, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    error = await _refusal(_fetcher(session, tmp_path, timeout=0.3), f"{server.base}/stall")
    assert error.reason == "network"
    assert _leftovers(tmp_path) == []


async def test_a_trickling_server_meets_the_total_deadline(
    server: Server, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        media_allow_insecure=True,
        media_fetch_timeout=5.0,  # the idle timeout alone would never fire
        media_fetch_deadline=0.3,
    )
    fetcher = MediaFetcher.from_settings(session, settings)
    fetcher._tmp_dir = str(tmp_path)
    started = asyncio.get_running_loop().time()
    with pytest.raises(MediaTooSlow) as caught:
        async with asyncio.timeout(5):  # without a deadline the fetch would run forever
            async with fetcher.fetch(f"{server.base}/trickle?sig=SECRET"):
                pytest.fail("fetch should have been refused")
    assert asyncio.get_running_loop().time() - started < 3
    error = caught.value
    assert isinstance(error, MediaRejected) and error.reason == "network"
    assert error.user_message == "The file took too long to download (more than 0.3 seconds)."
    assert "SECRET" not in error.detail and "0.3 s deadline" in error.detail
    assert _leftovers(tmp_path) == []
    assert Settings(_env_file=None).media_fetch_deadline == 300.0  # type: ignore[call-arg]
    assert "5 minutes" in MediaTooSlow(deadline=300.0, url="https://x.example/a").user_message


async def test_connection_refused_is_a_network_refusal(
    server: Server, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    listener = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    listener.close()
    await listener.wait_closed()
    error = await _refusal(_fetcher(session, tmp_path), f"http://127.0.0.1:{port}/x.png")
    assert error.reason == "network"


SIGNATURE = "X-Amz-Signature=TOPSECRET"


async def test_signed_urls_never_reach_a_log_or_an_error(
    server: Server,
    session: aiohttp.ClientSession,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    fetcher = _fetcher(session, tmp_path, max_bytes=1000)
    listener = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    closed = listener.sockets[0].getsockname()[1]
    listener.close()
    await listener.wait_closed()
    urls = [
        f"{server.base}/missing?{SIGNATURE}",  # HTTP 404
        f"{server.base}/page.png?{SIGNATURE}",  # not media
        f"{server.base}/chunked?total=5000&{SIGNATURE}",  # too big
        f"{server.base}/hop?{SIGNATURE}#{SIGNATURE}",  # redirect, then too big
        f"{server.base}/to-metadata?{SIGNATURE}",  # redirect to a forbidden address
        f"http://127.0.0.1:{closed}/x.png?{SIGNATURE}",  # connection refused
        f"http://127.0.0.1:99999/x.png?{SIGNATURE}",  # a URL yarl cannot parse
        f"http://[::1/x.png?{SIGNATURE}",
        f"http://user:TOPSECRET@127.0.0.1:{server.port}/img.png",  # credentials
    ]
    for url in urls:
        error = await _refusal(fetcher, url)
        for text in (error.detail, str(error), error.user_message):
            assert "TOPSECRET" not in text, (url, text)
    async with fetcher.fetch(f"{server.base}/tiny?{SIGNATURE}") as media:
        assert media.kind == "image"
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("bot"))
    assert "fetched" in ours and "media redirect" in ours  # (the test server's log is not ours)
    assert "TOPSECRET" not in ours


def test_redaction_of_unparseable_urls_and_of_text() -> None:
    from bot.media import redact_urls

    assert redact_url("http://127.0.0.1:99999/a.png?sig=S#f") == "http://127.0.0.1:99999/a.png"
    assert redact_url("https://u:p@[::1/a?sig=S") == "https://[::1/a"
    assert redact_urls("GET https://cdn.example/a.png?sig=S failed; see http://x.example/?t=1") == (
        "GET https://cdn.example/a.png failed; see http://x.example/"
    )
    assert redact_urls("no url here") == "no url here"


async def test_from_settings(session: aiohttp.ClientSession, tmp_path: Path) -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        media_allow_insecure=False,
        media_max_bytes=1234,
        media_fetch_timeout=7.0,
    )
    fetcher = MediaFetcher.from_settings(session, settings)
    error = await _refusal(fetcher, "http://example.com/a.png")
    assert error.reason == "insecure"


# --- pure helpers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "head", "url", "expected"),
    [
        ("image/png", b"", "https://x/a", ("image", "image/png")),
        ("Video/MP4; codecs=avc1", b"", "https://x/a", ("video", "video/mp4")),
        ("audio/mpeg", b"", "https://x/a", ("audio", "audio/mpeg")),
        ("application/octet-stream", PNG, "https://x/a.txt", ("image", "image/png")),
        (None, JPEG, "https://x/a", ("image", "image/jpeg")),
        (None, GIF, "https://x/a", ("image", "image/gif")),
        (None, WEBP, "https://x/a", ("image", "image/webp")),
        (None, MP4, "https://x/a", ("video", "video/mp4")),
        (None, MOV, "https://x/a", ("video", "video/quicktime")),
        (None, WEBM, "https://x/a", ("video", "video/webm")),
        (None, MP3, "https://x/a", ("audio", "audio/mpeg")),
        (None, WAV, "https://x/a", ("audio", "audio/wav")),
        ("text/html", PNG, "https://x/a", ("image", "image/png")),
        (
            "application/octet-stream",
            b"zz",
            "https://x/v/clip.MOV?x=1",
            ("video", "video/quicktime"),
        ),
        (None, b"", "https://x/a.jpeg", ("image", "image/jpeg")),
        ("text/html", b"<html>", "https://x/a", ("file", "text/html")),
        ("text/html", b"<html>", "https://x/a.png", ("file", "text/html")),
        ("binary/octet-stream", b"", "https://x/a.mp3", ("audio", "audio/mpeg")),
        (None, b"", "https://x/a", ("file", "application/octet-stream")),
        ("application/json", b"{}", "https://x/a.json", ("file", "application/json")),
    ],
)
def test_media_kind(
    content_type: str | None, head: bytes, url: str, expected: tuple[str, str]
) -> None:
    assert media_kind(content_type=content_type, head=head, url=url) == expected


def test_sniff_rejects_riff_that_is_neither_webp_nor_wav() -> None:
    assert sniff_content_type(b"RIFF\x00\x00\x00\x00AVI LIST") is None


@pytest.mark.parametrize(
    ("address", "verdict"),
    [
        ("93.184.216.34", "public"),
        ("2606:2800:220:1:248:1893:25c8:1946", "public"),
        ("127.0.0.1", "local"),
        ("10.0.0.1", "local"),
        ("172.16.5.4", "local"),
        ("192.168.1.1", "local"),
        ("100.64.0.1", "local"),
        ("::1", "local"),
        ("fd12::1", "local"),
        ("::ffff:10.0.0.1", "local"),
        ("::ffff:8.8.8.8", "public"),
        ("169.254.169.254", "forbidden"),
        ("fe80::1%eth0", "forbidden"),
        ("::ffff:169.254.169.254", "forbidden"),
        ("64:ff9b::a9fe:a9fe", "forbidden"),
        ("2002:a9fe:a9fe::1", "forbidden"),
        ("0.0.0.0", "forbidden"),
        ("::", "forbidden"),
        ("224.0.0.1", "forbidden"),
        ("ff02::1", "forbidden"),
        ("240.0.0.1", "forbidden"),
    ],
)
def test_classify_address(address: str, verdict: str) -> None:
    assert classify_address(address) == verdict


@pytest.mark.parametrize(
    ("url", "content_type", "name"),
    [
        ("https://cdn/a/cat.png", "image/png", "cat.png"),
        ("https://cdn/a/cat.png", "image/jpeg", "cat.jpg"),
        ("https://cdn/dl.php?id=1", "image/png", "dl.php.png"),
        ("https://cdn/", "video/mp4", "media.mp4"),
        ("https://cdn/x/..%2F..%2Fetc%2Fpasswd", "image/png", "passwd.png"),
        ("https://cdn/my%20clip%3F.MOV", "video/quicktime", "my_clip_.MOV"),
        ("https://cdn/" + "y" * 300 + ".mp4", "video/mp4", "y" * 96 + ".mp4"),
    ],
)
def test_safe_filename(url: str, content_type: str, name: str) -> None:
    assert safe_filename(url, content_type) == name


def test_format_size_and_redaction() -> None:
    assert format_size(312 * 1024 * 1024) == "312 MB"
    assert format_size(25 * 1024 * 1024) == "25 MB"
    assert format_size(1536 * 1024) == "1.5 MB"
    assert format_size(800 * 1024) == "800 KB"
    redacted = redact_url("https://u:p@cdn.example/a.png?X-Amz-Signature=abc#frag")
    assert redacted == "https://cdn.example/a.png"


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("https://cdn.example/a/b.MP4?sig=x", "video"),
        ("https://cdn.example/b.webp", "image"),
        ("https://cdn.example/c.m4a#t", "audio"),
        ("https://cdn.example/d", "file"),
        ("https://cdn.example/e.html", "file"),
    ],
)
def test_kind_from_url_reads_only_the_path_extension(url: str, kind: str) -> None:
    from bot.media import kind_from_url

    assert kind_from_url(url) == kind
