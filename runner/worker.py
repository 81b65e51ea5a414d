"""The runner's Redis loop: claim a batch, generate it off the event loop, complete or fail each job."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from redis.asyncio import Redis

from runner.engine import Engine, GenerationRequest, GenerationResult
from shared.heartbeat import Heartbeat
from shared.job_queue import ClaimedJob, Completion, JobQueue, QueuePolicy
from shared.keys import Keys
from shared.redis_client import REDIS_DOWN_ERRORS, Backoff
from shared.schemas import Turn
from shared.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

EMPTY_ANSWER_TEXT = "I don't have an answer to that."
"""Posted when the model's answer is empty, since Discord refuses empty messages."""


@dataclass
class RunnerStats:
    answered: int = 0
    failed: int = 0
    new_tokens: int = 0
    started_at: float = field(default_factory=time.monotonic)


class Runner:
    def __init__(self, settings: Settings, engine: Engine, redis: Redis, worker_id: str) -> None:
        self.settings = settings
        self.engine = engine
        self.worker_id = worker_id
        keys = Keys()
        self.queue = JobQueue(redis, keys, QueuePolicy.from_settings(settings))
        self.heartbeat = Heartbeat(redis, keys, "runner", worker_id, settings.heartbeat_ttl_s)
        self.stats = RunnerStats()

    async def run(self, stop: asyncio.Event) -> None:
        """Serves jobs until `stop` is set; the batch in hand is finished first."""
        await self._retry(self.heartbeat.beat)
        beating = asyncio.create_task(self._keep_alive(stop))
        try:
            await self._serve(stop)
        finally:
            beating.cancel()
            await asyncio.gather(beating, return_exceptions=True)
            try:
                returned = await self.queue.release(self.worker_id)
            except REDIS_DOWN_ERRORS:
                returned = 0  # what we hold stays in our list; the reaper returns it once our heartbeat expires
            elapsed = time.monotonic() - self.stats.started_at
            log.info("runner %s stopped: answered=%d failed=%d returned=%d new_tokens=%d uptime_s=%.0f",
                     self.worker_id, self.stats.answered, self.stats.failed, returned, self.stats.new_tokens, elapsed)

    async def _serve(self, stop: asyncio.Event) -> None:
        backoff = Backoff()
        while not stop.is_set():
            try:
                batch = await self.claim_batch()
            except REDIS_DOWN_ERRORS as exc:
                log.warning("Redis unreachable while claiming (%s); retrying", type(exc).__name__)
                await backoff.sleep()
                continue
            backoff.reset()
            if batch:
                await self.answer_batch(batch)

    async def claim_batch(self) -> list[tuple[ClaimedJob, list[Turn]]]:
        """The oldest job (waiting up to ~2 s for one) and every other one waiting, up to the batch size.

        A job that finds the runner idle starts at once, with whatever arrived alongside it, rather than
        wait for company: those arriving while it runs make up the next batch.
        """
        return await self.queue.claim_batch(self.worker_id, self.settings.batch_size)

    async def answer_batch(self, batch: list[tuple[ClaimedJob, list[Turn]]]) -> None:
        """Generates a batch; its answers are stored in one round trip (each job's completion still atomic)."""
        for claimed, _ in batch:
            log.info("job %s of user %s claimed (attempt %d)", claimed.job["id"], claimed.job["user_id"],
                     claimed.job["attempts"] + 1)
        results = await asyncio.to_thread(self.engine.generate, [self.request_for(c, h) for c, h in batch])
        jobs = [claimed for claimed, _ in batch]
        answered = [(c, r) for c, r in zip(jobs, results, strict=True) if r.text is not None]
        for claimed, result in zip(jobs, results, strict=True):
            if result.text is None:
                await self._retry(functools.partial(self.record_failure, claimed, result))
        completions = [
            Completion(c, (r.text or "").strip() or EMPTY_ANSWER_TEXT, c.job["content"]) for c, r in answered
        ]
        done = await self._retry(lambda: self.queue.complete_many(self.worker_id, completions))
        for (claimed, result), completed in zip(answered, done, strict=True):
            self.record_answer(claimed, result, completed)

    def request_for(self, claimed: ClaimedJob, history: list[Turn]) -> GenerationRequest:
        job = claimed.job
        return GenerationRequest(
            job_id=job["id"],
            history=history,
            message=job["content"],
            max_new_tokens=job.get("max_new_tokens", self.settings.max_new_tokens),
            temperature=job.get("temperature", self.settings.temperature),
            top_p=self.settings.top_p,
            repetition_penalty=self.settings.repetition_penalty,
        )

    async def record_failure(self, claimed: ClaimedJob, result: GenerationResult) -> None:
        job = claimed.job
        outcome = await self.queue.fail(self.worker_id, claimed, result.error or "generation failed")
        self.stats.failed += 1
        log.warning("job %s of user %s failed (%s): %s", job["id"], job["user_id"], result.error, outcome)

    def record_answer(self, claimed: ClaimedJob, result: GenerationResult, completed: bool) -> None:
        job = claimed.job
        if not completed:
            log.warning("job %s was taken back from this runner before it finished; answer dropped", job["id"])
            return
        self.stats.answered += 1
        self.stats.new_tokens += result.new_tokens
        log.info("job %s of user %s answered: %d new tokens, %.3f s after it was queued",
                 job["id"], job["user_id"], result.new_tokens, time.time() - job["enqueued_at"])

    async def _keep_alive(self, stop: asyncio.Event) -> None:
        """Heartbeats, and returns the jobs of runners whose heartbeat has expired (every runner does this)."""
        while not stop.is_set():
            try:
                await self.heartbeat.beat()
                for peer in await self.heartbeat.silent_peers():
                    reaped = await self.queue.reap(peer)
                    if reaped is not None:
                        log.warning("runner %s is gone: requeued %d jobs, dead-lettered %d", peer, *reaped)
            except REDIS_DOWN_ERRORS as exc:
                log.warning("Redis unreachable during heartbeat (%s)", type(exc).__name__)
            await asyncio.sleep(self.heartbeat.interval_s)

    async def _retry(self, call: Callable[[], Awaitable[T]]) -> T:
        """Retries a Redis call through an outage: the runner never drops a job it holds.

        On SIGTERM during an outage the process is killed with the job still in its list in Redis,
        where the reaper finds it, so waiting here forever loses nothing.
        """
        backoff = Backoff()
        while True:
            try:
                return await call()
            except REDIS_DOWN_ERRORS as exc:
                log.warning("Redis unreachable (%s); retrying", type(exc).__name__)
                await backoff.sleep()
