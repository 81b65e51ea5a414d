"""Images for models that see, without a model: the type read from the bytes, decoding and scaling, fetching within
the size and time limits (against a small HTTP server), a job's images gathered with a note for each one left out,
and the notes as Discord subtext."""

from __future__ import annotations

import asyncio
import io
import struct
import zlib
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from PIL import Image

from runner.images.fetch import fetch_image
from runner.images.gather import gather_images
from runner.images.kinds import image_kind
from runner.images.notes import not_seen_text, with_placeholders
from runner.images.prepare import prepare_image
from runner.images.seen import ImageRefused
from shared.queues.notes import NOTE_MAX_CHARS, NOTES_MAX, with_notes
from shared.queues.schemas import Attachment, Job
from tests.redis_server import free_port

ELF = b"\x7fELF\x02\x01\x01\x00" + bytes(200)
"""The start of a Linux executable: what a file named cat.png may really be."""


def encoded(
    kind: str, size: tuple[int, int] = (40, 30), color: tuple[int, ...] = (200, 20, 20), mode: str = "RGB"
) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, color).save(out, format=kind)
    return out.getvalue()


def two_frame_gif() -> bytes:
    frames = [Image.new("RGB", (20, 20), (255, 0, 0)), Image.new("RGB", (20, 20), (0, 0, 255))]
    out = io.BytesIO()
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:])
    return out.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims a huge image (a few hundred bytes on the wire)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(1000)))


def test_the_kind_is_read_from_the_bytes_not_the_name() -> None:
    assert [image_kind(encoded(kind)) for kind in ("PNG", "JPEG", "GIF", "WEBP")] == ["png", "jpeg", "gif", "webp"]
    assert image_kind(ELF) is None
    assert image_kind(b"<html>not an image</html>") is None
    assert image_kind(encoded("BMP")) is None


def test_an_image_is_decoded_scaled_down_and_kept_or_reencoded_as_png_or_jpeg() -> None:
    small = encoded("PNG")
    kept = prepare_image(small, "cat.png", max_side=64)
    assert (kept.mime, kept.data, kept.image.size, kept.image.mode) == ("image/png", small, (40, 30), "RGB")
    big = prepare_image(encoded("JPEG", (800, 400)), "big.jpg", max_side=100)
    assert big.image.size == (100, 50) and big.mime == "image/jpeg"
    assert Image.open(io.BytesIO(big.data)).size == (100, 50)
    webp = prepare_image(encoded("WEBP"), "x.webp", max_side=64)
    assert webp.mime == "image/png" and Image.open(io.BytesIO(webp.data)).format == "PNG"
    first = prepare_image(two_frame_gif(), "blink.gif", max_side=64)
    assert first.mime == "image/png" and first.image.getpixel((5, 5)) == (255, 0, 0), "a GIF is its first frame"
    clear = prepare_image(encoded("PNG", mode="RGBA", color=(0, 0, 0, 0)), "clear.png", max_side=64)
    assert clear.image.getpixel((1, 1)) == (255, 255, 255), "transparency is laid on white"
    assert kept.data_url.startswith("data:image/png;base64,iVBORw0KGgo")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (ELF, "it isn't a PNG, JPEG, WebP or GIF image"),
        (encoded("PNG", (300, 300))[:400], "it is damaged or cut short"),
        (encoded("JPEG", (300, 300))[:300], "it is damaged or cut short"),
        (png_claiming(20_000, 20_000), "it is too large in pixels"),
        (png_claiming(10_000, 6_000), "it is too large (10000×6000 pixels)"),
    ],
    ids=["executable", "truncated-png", "truncated-jpeg", "decompression-bomb", "over-50-megapixels"],
)
def test_what_is_not_a_whole_image_is_refused_saying_why(data: bytes, reason: str) -> None:
    with pytest.raises(ImageRefused) as refused:
        prepare_image(data, "cat.png", max_side=64)
    assert str(refused.value) == reason


class Files:
    """A small HTTP server standing in for Discord's CDN: fixed bodies, statuses, a stall, and what it sent."""

    def __init__(self) -> None:
        self.port = free_port()
        self.bodies: dict[str, bytes] = {}
        self.statuses: dict[str, int] = {}
        self.stalled: set[str] = set()
        self.sent: dict[str, int] = {}
        self.requests: list[str] = []

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        self.requests.append(name)
        if name in self.stalled:
            await asyncio.sleep(3600)
        if name in self.statuses:
            return web.Response(status=self.statuses[name])
        # Chunked, with no Content-Length: the limit must hold while reading.
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        body = self.bodies[name]
        try:
            for start in range(0, len(body), 65536):
                await response.write(body[start : start + 65536])
                self.sent[name] = start + 65536
        except ConnectionError:
            pass
        return response


@pytest.fixture
async def files() -> AsyncIterator[Files]:
    server = Files()
    app = web.Application()
    app.router.add_get("/{name}", server.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", server.port).start()
    yield server
    await runner.cleanup()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def attachment(url: str, filename: str = "cat.png", size: int = 100) -> Attachment:
    return {"url": url, "filename": filename, "content_type": "image/png", "size": size}


async def test_fetching_enforces_the_size_while_reading_and_refuses_gone_or_stalled_urls(
    files: Files, session: aiohttp.ClientSession
) -> None:
    files.bodies["cat.png"] = encoded("PNG")
    assert await fetch_image(session, attachment(files.url("cat.png")), max_bytes=10_000) == files.bodies["cat.png"]
    # Discord said 100 bytes; the server sends 50 MB: reading stops past the limit.
    files.bodies["huge.png"] = b"\x89PNG\r\n\x1a\n" + bytes(50_000_000)
    with pytest.raises(ImageRefused, match=r"^it is over 1 MB$"):
        await fetch_image(session, attachment(files.url("huge.png")), max_bytes=1_000_000)
    assert files.sent.get("huge.png", 0) < 20_000_000, "the 50 MB were not all sent: the fetch stopped early"
    with pytest.raises(ImageRefused, match=r"^it is over 1 MB$"):
        await fetch_image(session, attachment(files.url("never.png"), size=2_000_000), max_bytes=1_000_000)
    assert "never.png" not in files.requests, "an image Discord says is too large is not fetched at all"
    files.statuses["old.png"] = 404
    with pytest.raises(ImageRefused, match=r"link has expired or the file is gone \(HTTP 404\)"):
        await fetch_image(session, attachment(files.url("old.png")), max_bytes=10_000)
    files.stalled.add("stuck.png")
    started = asyncio.get_running_loop().time()
    with pytest.raises(ImageRefused, match=r"^it did not download within 0.3 s$"):
        await fetch_image(session, attachment(files.url("stuck.png")), max_bytes=10_000, timeout_s=0.3)
    assert asyncio.get_running_loop().time() - started < 2
    with pytest.raises(ImageRefused, match="could not be downloaded"):
        await fetch_image(session, attachment(f"http://127.0.0.1:{free_port()}/x.png"), max_bytes=10_000)


def job_with(images: list[Attachment], quoted: list[Attachment] | None = None) -> Job:
    job: Job = {
        "id": "1",
        "user_id": "2",
        "channel_id": "3",
        "guild_id": None,
        "content": "what is this?",
        "enqueued_at": 0.0,
        "attempts": 0,
        "images": images,
    }
    if quoted is not None:
        job["quoted"] = {"author": "bob", "by_bot": False, "content": "look", "images": quoted}
    return job


async def test_a_jobs_images_are_gathered_in_order_with_a_note_for_each_left_out(
    files: Files, session: aiohttp.ClientSession
) -> None:
    files.bodies.update({"a.png": encoded("PNG"), "b.gif": two_frame_gif(), "q.jpg": encoded("JPEG"), "evil.png": ELF})
    files.statuses["gone.png"] = 404
    files.stalled.add("slow.png")
    own = [attachment(files.url(name), name) for name in ("a.png", "evil.png", "gone.png", "slow.png", "b.gif")]
    job = job_with(own, quoted=[attachment(files.url("q.jpg"), "q.jpg")])
    gathered = await gather_images(job, session, max_images=4, max_bytes=10_000, max_side=64, timeout_s=0.5)
    assert [image.filename for image in gathered.images] == ["q.jpg", "a.png"], "the quoted message's come first"
    assert gathered.notes == [
        "I look at 4 images of a message at most, so I left out `b.gif`.",
        "I couldn't see `evil.png`: it isn't a PNG, JPEG, WebP or GIF image, so I answered without it.",
        "I couldn't see `gone.png`: its link has expired or the file is gone (HTTP 404), so I answered without it.",
        "I couldn't see `slow.png`: it did not download within 0.5 s, so I answered without it.",
    ]
    assert "b.gif" not in files.requests


def test_notes_are_subtext_lines_above_the_text_each_on_one_line_and_bounded() -> None:
    assert with_notes("answer", []) == "answer"
    assert with_notes("answer", ["one", "two\nlines @everyone"]) == "-# one\n-# two lines @everyone\nanswer"
    many = with_notes("answer", ["x" * 1000] * 20)
    lines = many.splitlines()
    assert len(lines) == NOTES_MAX + 2 and lines[-2] == f"-# …and {20 - NOTES_MAX} more like these."
    assert all(len(line) <= NOTE_MAX_CHARS + 3 for line in lines)
    assert len(many) < 1500, "the notes leave room for the answer in its first message"


def test_the_not_seen_note_names_the_models_that_see_and_history_keeps_placeholders() -> None:
    assert not_seen_text("parrot", 1, ["seer"], "!") == (
        "`parrot` can't see images, so I answered from the words alone, without the image. "
        "`!model seer` picks a model that can."
    )
    assert not_seen_text("parrot", 2, [], "!").endswith("without the 2 images. No model served right now can see them.")
    assert not_seen_text("parrot", 2, None, "?").endswith("`?models` says which models can.")
    images = [attachment("u", "cat.png"), attachment("u", "a\nb`.png")]
    assert with_placeholders("look", images) == "look\n[image: cat.png] [image: a b`.png]"
    assert with_placeholders("", images[:1]) == "[image: cat.png]"
