"""Publishing the answers as they are written: the generation thread hands over changed partial texts at most every
STREAM_INTERVAL_S, and they go to Redis in one round trip, newest text winning (texts that arrive while a round
trip is under way replace older ones instead of queuing behind them). Each is shown as runner/answer_forms.py
says: a reasoning model's thinking is never shown, unless SHOW_REASONING shows it as subtext."""

from __future__ import annotations

import asyncio
import logging

from runner.answer_forms import partial_form
from shared.config.defaults import STREAM_TTL_S
from shared.queues.job_queue import ClaimedJob, JobQueue
from shared.queues.notes import with_notes
from shared.storage.client import REDIS_DOWN_ERRORS

log = logging.getLogger(__name__)


class PartialPublisher:
    def __init__(self, queue: JobQueue, worker_id: str, *, show_reasoning: bool = False) -> None:
        self._queue = queue
        self._worker_id = worker_id
        self._show_reasoning = show_reasoning
        self._jobs: dict[str, ClaimedJob] = {}
        self._pending: dict[str, str] = {}
        self._offered: dict[str, str] = {}
        """The last form offered per job: a model that thinks for a while shows "thinking…" once, not every time."""
        self._notes: dict[str, list[str]] = {}
        """Notes shown above a job's text (shared/queues/notes.py), as they will be above its final text."""
        self._flushing: asyncio.Task[None] | None = None

    def track(self, claimed: ClaimedJob) -> None:
        self._jobs[claimed.job["id"]] = claimed

    def untrack(self, job_id: str) -> None:
        """The job ends: no partial of it is published from now on (its completion supersedes them)."""
        self._jobs.pop(job_id, None)
        self._pending.pop(job_id, None)
        self._offered.pop(job_id, None)
        self._notes.pop(job_id, None)

    def note(self, job_id: str, notes: list[str]) -> None:
        """Shows `notes` above the job's partial texts from now on."""
        if notes and job_id in self._jobs:
            self._notes[job_id] = notes

    def offer(self, changed: dict[str, str]) -> None:
        """Called in the event loop by the generation thread's callback, with the engine's texts."""
        for job_id, text in changed.items():
            shown = partial_form(text, self._show_reasoning) if job_id in self._jobs else ""
            if shown and shown != self._offered.get(job_id):
                self._offered[job_id] = shown
                self._pending[job_id] = with_notes(shown, self._notes.get(job_id, ()))
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
