"""Publishing the answers as they are written: the generation thread hands over changed partial texts at most every
STREAM_INTERVAL_S, and they go to Redis in one round trip, newest text winning (texts that arrive while a round
trip is under way replace older ones instead of queuing behind them)."""

from __future__ import annotations

import asyncio
import logging

from shared.defaults import STREAM_TTL_S
from shared.job_queue import ClaimedJob, JobQueue
from shared.redis_client import REDIS_DOWN_ERRORS

log = logging.getLogger(__name__)


class PartialPublisher:
    def __init__(self, queue: JobQueue, worker_id: str) -> None:
        self._queue = queue
        self._worker_id = worker_id
        self._jobs: dict[str, ClaimedJob] = {}
        self._pending: dict[str, str] = {}
        self._flushing: asyncio.Task[None] | None = None

    def track(self, claimed: ClaimedJob) -> None:
        self._jobs[claimed.job["id"]] = claimed

    def untrack(self, job_id: str) -> None:
        """The job ends: no partial of it is published from now on (its completion supersedes them)."""
        self._jobs.pop(job_id, None)
        self._pending.pop(job_id, None)

    def offer(self, changed: dict[str, str]) -> None:
        """Called in the event loop by the generation thread's callback."""
        self._pending.update((job_id, text) for job_id, text in changed.items() if job_id in self._jobs)
        if self._pending and (self._flushing is None or self._flushing.done()):
            self._flushing = asyncio.create_task(self._flush())

    async def close(self) -> None:
        if self._flushing is not None:
            await asyncio.gather(self._flushing, return_exceptions=True)

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, {}
            partials = [(self._jobs[job_id], text) for job_id, text in batch.items() if job_id in self._jobs]
            try:
                shown = await self._queue.stream(self._worker_id, partials, STREAM_TTL_S)
            except REDIS_DOWN_ERRORS as exc:
                # Partials are a preview: the final answer is completed (and retried) on its own.
                log.warning("Redis unreachable while streaming (%s); partial texts skipped", type(exc).__name__)
                continue
            for (claimed, _), still in zip(partials, shown, strict=True):
                if not still:  # taken back, or its user opted out: nothing more of it is shown
                    self.untrack(claimed.job["id"])
