"""The fake Discord's CDN: the files of attachments (users' and the bot's) at the URLs their payloads carry, with
the faults a real CDN has (an expired URL answers 404, a URL that never answers) and a record of every fetch, so a
test can assert what was fetched, and that nothing of someone who has not opted in was."""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass, field

from aiohttp import hdrs, web

from tests.fake_discord.state import Payload, World

STALL_SECONDS = 3600.0
"""How long a stalled URL keeps its client waiting: longer than any client's timeout."""


@dataclass(frozen=True)
class Fetch:
    attachment_id: str
    filename: str
    status: int


@dataclass
class Cdn:
    """Which attachments have expired or stall, and every fetch made, in order."""

    expired: set[str] = field(default_factory=set)
    """Attachment ids, or file names (for a file that is to expire before anyone reads it)."""
    stalled: set[str] = field(default_factory=set)
    fetches: list[Fetch] = field(default_factory=list)


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a PNG or GIF from its header, as Discord reports it for images; None for anything else."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return int(width), int(height)
    return None


def attachment_payload(world: World, origin: str, channel_id: str, file: tuple[str, str | None, bytes]) -> Payload:
    """Stores a file and returns its attachment as MESSAGE_CREATE carries it (content_type only when Discord knows
    one; width and height for images)."""
    filename, content_type, data = file
    attachment_id = world.ids.next()
    world.files[attachment_id] = (content_type or "application/octet-stream", data)
    url = f"{origin}/attachments/{channel_id}/{attachment_id}/{filename}"
    attachment: Payload = {"id": attachment_id, "filename": filename, "size": len(data), "url": url, "proxy_url": url}
    if content_type is not None:
        attachment["content_type"] = content_type
    size = image_size(data)
    if size is not None:
        attachment["width"], attachment["height"] = size
    return attachment


async def serve_attachment(world: World, cdn: Cdn, request: web.Request) -> web.StreamResponse:
    """GET /attachments/{channel}/{id}/{filename}: the bytes, 404 once expired (or unknown), or no answer at all."""
    attachment_id, filename = request.match_info["attachment_id"], request.match_info["filename"]
    stored = world.files.get(attachment_id)
    status = 404 if stored is None or cdn.expired & {attachment_id, filename} else 200
    cdn.fetches.append(Fetch(attachment_id, filename, 0 if attachment_id in cdn.stalled else status))
    if attachment_id in cdn.stalled:
        await asyncio.sleep(STALL_SECONDS)
    if stored is None or status == 404:
        raise web.HTTPNotFound()
    content_type, data = stored
    return web.Response(body=data, headers={hdrs.CONTENT_TYPE: content_type})
