"""A job's images, fetched and prepared when a runner starts it (so a retried job fetches them again): the message
replied to's first, then the message's own, at most MAX_IMAGES of each; one note for each image left out."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import aiohttp

from runner.images.fetch import FETCH_TIMEOUT_S, fetch_image
from runner.images.notes import left_out_text, too_many_text
from runner.images.prepare import prepare_image
from runner.images.seen import ImageRefused, SeenImage
from shared.queues.schemas import Attachment, Job

log = logging.getLogger(__name__)


@dataclass
class GatheredImages:
    images: list[SeenImage] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def quoted_images(job: Job) -> list[Attachment]:
    """The images of the message the job replies to."""
    quoted = job.get("quoted")
    return quoted.get("images", []) if quoted is not None else []


def job_images(job: Job) -> list[Attachment]:
    """Every image the job carries: the message replied to's, then its own."""
    return [*quoted_images(job), *job.get("images", [])]


async def gather_images(
    job: Job,
    session: aiohttp.ClientSession,
    *,
    max_images: int,
    max_bytes: int,
    max_side: int,
    timeout_s: float = FETCH_TIMEOUT_S,
) -> GatheredImages:
    """The job's images a model can be shown, in order, and a note for each one left out (never raises for a bad
    image: the job is answered without it)."""
    gathered = GatheredImages()
    wanted: list[Attachment] = []
    for images in (quoted_images(job), job.get("images", [])):
        wanted += images[:max_images]
        if len(images) > max_images:
            gathered.notes.append(too_many_text(max_images, images[max_images:]))

    async def one(attachment: Attachment) -> SeenImage | str:
        try:
            data = await fetch_image(session, attachment, max_bytes=max_bytes, timeout_s=timeout_s)
            return await asyncio.to_thread(prepare_image, data, attachment["filename"], max_side)
        except ImageRefused as exc:
            log.info("job %s: an image was left out (%s)", job["id"], exc)
            return left_out_text(attachment["filename"], str(exc))

    for result in await asyncio.gather(*(one(attachment) for attachment in wanted)):
        if isinstance(result, str):
            gathered.notes.append(result)
        else:
            gathered.images.append(result)
    return gathered
