"""Reference images end to end against the simulator's each::storage: presign, a streamed PUT
with exactly the headers asked for, the public URL serving the same bytes; and every
refusal as a sentence."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bot.eachstorage import StorageClient, parse_presign
from bot.errors import BotError, InputError
from bot.media import MediaFetcher
from bot.models import ImageRef
from bot.references import References
from simulator import Simulator, png_bytes

PNG = png_bytes("ref")
GIF = b"GIF89a" + bytes(40)
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + bytes(40)
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(40)


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(speed=1000, api_key="k") as simulator:
        yield simulator


@pytest.fixture
async def refs(sim: Simulator, tmp_path: Path) -> AsyncIterator[References]:
    async with aiohttp.ClientSession() as session:
        media = MediaFetcher(
            session, max_bytes=50_000_000, allow_insecure=True, tmp_dir=str(tmp_path)
        )
        storage = StorageClient(session, api_key="k", base_url=sim.url + "/eachlabs/v1")
        yield References(media, storage, ttl=3600)


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


async def read(url: str) -> tuple[int, str, bytes]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return response.status, response.content_type, await response.read()


async def test_a_local_file_and_a_link_are_re_hosted_with_their_exact_bytes(
    refs: References, sim: Simulator, tmp_path: Path
) -> None:
    local = ImageRef(path=write(tmp_path, "cat.png", PNG))
    linked = ImageRef(url=sim.media_url("dog-0.png"), filename="dog.png", content_type="image/png")
    urls = await refs.host([local, linked])
    assert len(urls) == 2 and all(u.startswith(sim.url + "/storage/uploads/") for u in urls)
    assert await read(urls[0]) == (200, "image/png", PNG)
    status, ctype, body = await read(urls[1])
    assert (status, ctype, body) == (200, "image/png", png_bytes("dog-0.png"))
    # the presign asked for an image kept as long as configured; the PUT carried exactly the
    # presigned headers and a Content-Length (no chunked upload)
    assert sim.storage.presigns[0] == {
        "content_type": "image/png",
        "file_type": "image",
        "expires_in_seconds": 3600,
    }
    [first, _] = sim.storage.stored()
    assert first.headers["x-amz-acl"] == "public-read"
    assert first.headers["Content-Length"] == str(len(PNG))
    assert "Transfer-Encoding" not in first.headers and not sim.storage.refused


@pytest.mark.parametrize(
    ("data", "content_type"),
    [(GIF, "image/gif"), (WEBP, "image/webp"), (JPEG, "image/jpeg")],
)
async def test_every_allowed_kind_is_known_by_its_magic_bytes(
    refs: References, sim: Simulator, tmp_path: Path, data: bytes, content_type: str
) -> None:
    # the name says .png: the bytes decide
    [url] = await refs.host([ImageRef(path=write(tmp_path, "x.png", data))])
    assert await read(url) == (200, content_type, data)


async def refusal(refs: References, images: list[ImageRef]) -> str:
    """The sentence `host` refuses `images` with (what the person reads)."""
    with pytest.raises(InputError) as refused:
        await refs.host(images)
    return refused.value.user_message


async def test_refusals_are_sentences_that_name_the_image(
    refs: References, sim: Simulator, tmp_path: Path
) -> None:
    five = [ImageRef(path=write(tmp_path, f"{n}.png", PNG)) for n in range(5)]
    assert "at most 4" in await refusal(refs, five)
    pdf = ImageRef(url="https://x.test/a", filename="notes.pdf", content_type="application/pdf")
    assert await refusal(refs, [pdf]) == (
        "“notes.pdf” is not a JPEG, PNG, WebP or GIF image, so I can't use it as a reference."
    )
    big = ImageRef(url="https://x.test/b", filename="big.png", size=25 * 1024**2)
    assert await refusal(refs, [big]) == (
        "“big.png” is 25 MB; a reference image can be at most 20 MB."
    )
    # declared as an image, but a web page (what a file host answers without permission)
    page = write(tmp_path, "login.png", b"<!doctype html><html>sign in</html>")
    assert (await refusal(refs, [ImageRef(path=page)])).startswith("“login.png” is not a JPEG")
    clip = ImageRef(url=sim.media_url("t-0.mp4"), filename="clip.mp4")
    assert (await refusal(refs, [clip])).startswith("“clip.mp4” is not a JPEG")
    gone = ImageRef(url=sim.url + "/media/nothing.txt", filename="gone.png")
    assert await refusal(refs, [gone]) == (
        "I could not download “gone.png”: The file could not be downloaded (HTTP 404)."
    )
    huge = write(tmp_path, "huge.png", PNG + bytes(20_000_001))
    assert (await refusal(refs, [ImageRef(path=huge)])).startswith("“huge.png” is 19 MB")
    assert not sim.storage.stored(), "nothing refused was uploaded"


async def test_a_rejected_key_and_a_refused_upload_are_errors_with_sentences(
    sim: Simulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    path = write(tmp_path, "cat.png", PNG)
    async with aiohttp.ClientSession() as session:
        media = MediaFetcher(session, max_bytes=1000, allow_insecure=True)
        wrong = StorageClient(session, api_key="nope", base_url=sim.url + "/eachlabs/v1")
        with pytest.raises(BotError) as rejected:
            await References(media, wrong).host([ImageRef(path=path)])
        assert "API key" in rejected.value.user_message
        # a presign whose required headers are not sent back is refused by the storage
        storage = StorageClient(session, api_key="k", base_url=sim.url + "/eachlabs/v1")
        presigned = await storage.presign(
            content_type="image/png", file_type="image", expires_in=60
        )
        stripped = parse_presign(
            {"presigned_url": presigned.upload_url, "public_url": presigned.public_url}
        )
        with pytest.raises(BotError) as refused:
            await storage.put(stripped, path, content_type="image/png")
        assert refused.value.user_message.startswith("I could not store the image")
        assert "X-Amz-Signature" not in refused.value.detail
    assert sim.storage.refused == [(403, "SignatureDoesNotMatch")]
    signature = presigned.upload_url.split("X-Amz-Signature=")[1]
    assert signature not in caplog.text and "nope" not in caplog.text
    assert "Presigned(id=" in repr(presigned) and signature not in repr(presigned)
