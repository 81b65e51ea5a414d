"""Fetching an image from the URL its job carries: asynchronously, within a time limit, and never reading more than
MAX_IMAGE_BYTES (the limit is enforced while reading, whatever the server says the size is)."""

from __future__ import annotations

import asyncio

import aiohttp

from runner.images.seen import ImageRefused
from shared.queues.schemas import Attachment

FETCH_TIMEOUT_S = 15.0
"""Longest one image may take to download, from the request to its last byte."""
CONNECT_TIMEOUT_S = 5.0
CHUNK_BYTES = 64 * 1024
GONE_STATUSES = frozenset({401, 403, 404, 410})
"""What Discord's CDN answers for a URL whose signature expired, or a file deleted since."""


def megabytes(size: int) -> str:
    return f"{size / 1_000_000:g} MB"


async def fetch_image(
    session: aiohttp.ClientSession, attachment: Attachment, *, max_bytes: int, timeout_s: float = FETCH_TIMEOUT_S
) -> bytes:
    """The image's bytes; raises ImageRefused saying why it cannot be had."""
    url = attachment["url"]
    if not url.startswith(("https://", "http://")):
        raise ImageRefused("its link is not a web address")
    if attachment.get("size", 0) > max_bytes:
        raise ImageRefused(f"it is over {megabytes(max_bytes)}")
    try:
        async with asyncio.timeout(timeout_s), session.get(url) as response:
            if response.status in GONE_STATUSES:
                raise ImageRefused(f"its link has expired or the file is gone (HTTP {response.status})")
            if response.status != 200:
                raise ImageRefused(f"Discord would not send it (HTTP {response.status})")
            if (response.content_length or 0) > max_bytes:
                raise ImageRefused(f"it is over {megabytes(max_bytes)}")
            data = bytearray()
            async for chunk in response.content.iter_chunked(CHUNK_BYTES):
                data += chunk
                if len(data) > max_bytes:
                    raise ImageRefused(f"it is over {megabytes(max_bytes)}")
    except TimeoutError:
        raise ImageRefused(f"it did not download within {timeout_s:g} s") from None
    except aiohttp.ClientError as exc:
        raise ImageRefused(f"it could not be downloaded ({type(exc).__name__})") from None
    return bytes(data)


def new_session() -> aiohttp.ClientSession:
    """The session a runner fetches every image with (its connections reused); closed when the runner stops."""
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT_S)
    return aiohttp.ClientSession(timeout=timeout, raise_for_status=False)
