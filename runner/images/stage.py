"""What a runner does with a job's images before it hands the job to its engine: fetches and prepares them for a
model that sees (on the event loop and in worker threads, never on the generation thread), or, for one that does
not, notes which served models could have seen them (from the runners' heartbeats)."""

from __future__ import annotations

import logging

import aiohttp
from redis.asyncio import Redis

from runner.engines.protocol import Engine
from runner.images.fetch import FETCH_TIMEOUT_S, new_session
from runner.images.gather import GatheredImages, gather_images, job_images
from runner.images.notes import not_seen_text
from shared.config.settings import Settings
from shared.queues.schemas import Job
from shared.queues.served_models import LiveModels
from shared.storage.client import REDIS_DOWN_ERRORS
from shared.storage.keys import Keys

log = logging.getLogger(__name__)


class ImageStage:
    def __init__(self, settings: Settings, engine: Engine, redis: Redis, model: str) -> None:
        self.settings = settings
        self.engine = engine
        self.model = model
        self.live = LiveModels(redis, Keys())
        self.fetch_timeout_s = FETCH_TIMEOUT_S
        self._session: aiohttp.ClientSession | None = None

    async def gather(self, job: Job) -> GatheredImages:
        """The job's images the engine is shown, and a note for each one it is not (or one for all of them)."""
        wanted = job_images(job)
        if not wanted:
            return GatheredImages()
        if not self.engine.sees_images:
            return GatheredImages(notes=[await self._not_seen(len(wanted))])
        if self._session is None:
            self._session = new_session()
        settings = self.settings
        return await gather_images(
            job,
            self._session,
            max_images=settings.max_images,
            max_bytes=settings.max_image_bytes,
            max_side=self.engine.max_image_side,
            timeout_s=self.fetch_timeout_s,
        )

    async def _not_seen(self, images: int) -> str:
        try:
            await self.live.cached()
            seeing: list[str] | None = [name for name in self.live.seeing if name != self.model]
        except REDIS_DOWN_ERRORS as exc:
            log.warning("Redis unreachable reading which models see images (%s)", type(exc).__name__)
            seeing = None
        return not_seen_text(self.model, images, seeing, self.settings.command_prefix)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
