"""The runner's Redis loop: claims jobs while the batch has room, generates them in the generation thread (a
job claimed while others generate joins their batch), and completes or fails each one as soon as it ends."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from redis.asyncio import Redis

from runner.answer_forms import final_form
from runner.batched_completions import BatchedCompletions
from runner.conversation import model_view
from runner.engines.choice import served_model_name
from runner.engines.protocol import Engine, GenerationRequest, GenerationResult
from runner.generation_thread import GenerationThread
from runner.images.gather import job_images
from runner.images.notes import with_placeholders
from runner.images.seen import SeenImage
from runner.images.stage import ImageStage
from runner.partials import PartialPublisher
from shared.config.settings import Settings
from shared.queues.job_queue import ClaimedJob, Completion, JobQueue
from shared.queues.schemas import Turn, decode_job
from shared.runtime.observability.metrics import (
    BATCH_ROWS,
    GENERATED_TOKENS,
    GENERATION_SECONDS,
    JOBS,
    QUEUE_WAIT_SECONDS,
)
from shared.storage.client import REDIS_DOWN_ERRORS, Backoff
from shared.storage.heartbeat import Heartbeat
from shared.storage.keys import Keys

log = logging.getLogger(__name__)
T = TypeVar("T")

NOT_ACCEPTING_POLL_S = 0.25
"""How often a runner whose engine takes no jobs (its inference server is away) looks again."""


@dataclass
class RunnerStats:
    answered: int = 0
    failed: int = 0
    new_tokens: int = 0
    started_at: float = field(default_factory=time.monotonic)
    recent: deque[float] = field(default_factory=deque)
    """When the answers of the last minute were completed: the pace `!status` estimates waits from."""

    def answered_last_minute(self) -> int:
        while self.recent and self.recent[0] < time.monotonic() - 60:
            self.recent.popleft()
        return len(self.recent)


class Runner:
    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        redis: Redis,
        worker_id: str,
        generation: GenerationThread | None = None,
    ) -> None:
        """`generation`: the thread the engine was loaded on, which then steps it (a new one if None)."""
        self.settings = settings
        self.engine = engine
        self.worker_id = worker_id
        self.model = served_model_name(settings)
        """The name this runner serves its model under: it claims that model's jobs (and legacy ones) only."""
        keys = Keys()
        self.queue = JobQueue(redis, keys, settings)
        self.heartbeat = Heartbeat(
            redis,
            keys,
            "runner",
            worker_id,
            settings.heartbeat_ttl_s,
            details=self.heartbeat_details,
            registers=[(keys.models, self.model)],
        )
        self.stats = RunnerStats()
        # This runner's series, exported from the start (at 0) so that rates and sums have a first point.
        self.rows = BATCH_ROWS.labels(self.model)
        self.tokens = GENERATED_TOKENS.labels(self.model)
        self.generation_seconds = GENERATION_SECONDS.labels(self.model)
        self.partials = PartialPublisher(self.queue, worker_id, show_reasoning=settings.show_reasoning)
        self.generation = generation if generation is not None else GenerationThread()
        self.generation.use(engine, stream_interval_s=settings.stream_interval_s, on_partials=self.partials.offer)
        self.completions = BatchedCompletions(
            lambda batch: self._retry(lambda: self.queue.complete_many(self.worker_id, batch))
        )
        self.images = ImageStage(settings, engine, redis, self.model)
        self.in_flight: set[asyncio.Task[None]] = set()
        """One task per job claimed and not yet completed or failed: BATCH_SIZE at most."""
        self.holding: set[str] = set()
        """The payloads of those jobs: what this runner knows it has in its list."""
        self._strays: set[str] = set()
        """Payloads seen in this runner's list, at the last check, that no claim had returned."""
        self.job_error: BaseException | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Serves jobs until `stop` is set; the jobs in hand are finished first."""
        await self._retry(self.heartbeat.beat)
        self.generation.start()
        served = asyncio.Event()
        beating = asyncio.create_task(self._keep_alive(stop, served))
        try:
            await self._serve(stop)
        finally:
            served.set()
            await self.generation.stop()
            await self.partials.close()
            await self.images.close()
            beating.cancel()
            await asyncio.gather(beating, return_exceptions=True)
            try:
                returned = await self.queue.release(self.worker_id)
            except REDIS_DOWN_ERRORS:
                returned = 0  # what we hold stays in our list; the reaper returns it once our heartbeat expires
            elapsed = time.monotonic() - self.stats.started_at
            log.info(
                "runner %s stopped: answered=%d failed=%d returned=%d new_tokens=%d uptime_s=%.0f",
                self.worker_id,
                self.stats.answered,
                self.stats.failed,
                returned,
                self.stats.new_tokens,
                elapsed,
            )

    async def _serve(self, stop: asyncio.Event) -> None:
        backoff = Backoff()
        paused = False
        try:
            while not stop.is_set():
                if self.job_error is not None:
                    raise self.job_error
                # An inference server that went away: the jobs in hand wait for it, and new ones stay queued
                # for runners that can answer them.
                if not self.engine.accepting:
                    if not paused:
                        log.warning("runner %s: its engine cannot take jobs now; claiming none", self.worker_id)
                        paused = True
                    await asyncio.sleep(NOT_ACCEPTING_POLL_S)
                    continue
                if paused:
                    log.info("runner %s: its engine takes jobs again; claiming", self.worker_id)
                    paused = False
                room = self.settings.batch_size - len(self.in_flight)
                if room <= 0:
                    await asyncio.wait(self.in_flight, return_when=asyncio.FIRST_COMPLETED)
                    continue
                try:
                    batch = await self.claim_batch(room)
                except REDIS_DOWN_ERRORS as exc:
                    log.warning("Redis unreachable while claiming (%s); retrying", type(exc).__name__)
                    await backoff.sleep()
                    continue
                backoff.reset()
                self.start_jobs(batch)
        finally:
            if self.in_flight:
                await asyncio.gather(*self.in_flight)

    async def claim_batch(self, limit: int | None = None) -> list[tuple[ClaimedJob, list[Turn]]]:
        """The oldest job (waiting up to ~2 s for one) and every other one waiting, up to `limit` (the free
        places in the batch), each with its conversation's history.

        A job that finds the runner idle starts at once, with whatever arrived alongside it, rather than wait
        for company: those arriving while it generates join it between two decoding steps. The queue holds one
        job per user at a time, so a batch never holds two messages of the same user.
        """
        return await self.queue.claim_batch(self.worker_id, self.model, limit or self.settings.batch_size)

    def start_jobs(self, batch: list[tuple[ClaimedJob, list[Turn]]]) -> list[asyncio.Task[None]]:
        """Hands the jobs to the generation thread together (they join the batch in the same step), and starts
        one task per job that completes or fails it when its result comes. A job with images is handed over alone
        once they are fetched, the others going on meanwhile."""
        plain = [(claimed, history) for claimed, history in batch if not job_images(claimed.job)]
        results = iter(self.generation.submit([self.request_for(claimed, history) for claimed, history in plain]))
        submitted_at, now = time.monotonic(), time.time()
        tasks = []
        for claimed, history in batch:
            job = claimed.job
            log.info("job %s of user %s claimed (attempt %d)", job["id"], job["user_id"], job["attempts"] + 1)
            QUEUE_WAIT_SECONDS.observe(max(0.0, now - job["enqueued_at"]))
            self.holding.add(claimed.raw)
            self.partials.track(claimed)
            notes: list[str] = []
            if job_images(job):
                generated = self._with_images(claimed, history, notes)
            else:
                generated = self._timed(next(results), submitted_at)
            task = asyncio.create_task(self.answer_job(claimed, generated, notes))
            self.in_flight.add(task)
            task.add_done_callback(self._job_done)
            tasks.append(task)
        self.rows.set(len(self.in_flight))
        return tasks

    async def _timed(self, generated: Awaitable[GenerationResult], submitted_at: float) -> GenerationResult:
        """The result, once the engine gives it, its generation time observed (from submission: waiting for a place
        in the batch included)."""
        result = await generated
        self.generation_seconds.observe(time.monotonic() - submitted_at)
        return result

    async def _with_images(self, claimed: ClaimedJob, history: list[Turn], notes: list[str]) -> GenerationResult:
        """Fetches the job's images (fetched again if it is retried), adds a note for each one its model is not
        shown, then hands it to the generation thread."""
        gathered = await self.images.gather(claimed.job)
        notes += gathered.notes
        self.partials.note(claimed.job["id"], notes)
        [result] = self.generation.submit([self.request_for(claimed, history, gathered.images)])
        return await self._timed(result, time.monotonic())

    def _job_done(self, task: asyncio.Task[None]) -> None:
        self.in_flight.discard(task)
        self.rows.set(len(self.in_flight))
        # Not a failed job (those are recorded as failures) but a broken runner, e.g. a crashed engine: stop.
        if not task.cancelled() and task.exception() is not None and self.job_error is None:
            self.job_error = task.exception()

    async def answer_job(
        self, claimed: ClaimedJob, generated: Awaitable[GenerationResult], notes: Sequence[str] = ()
    ) -> None:
        """Completes or fails one job once its generation ends (the others in flight go on meanwhile); `notes` are
        shown above its answer (filled in before its generation starts)."""
        job = claimed.job
        try:
            result = await generated
            self.partials.untrack(job["id"])
            if result.text is None:
                await self._retry(functools.partial(self.record_failure, claimed, result))
                return
            # History keeps the answer alone: a reasoning model's thinking is at most shown (SHOW_REASONING).
            answer = final_form(result.text, self.settings.show_reasoning)
            # History keeps a placeholder for each image (`[image: cat.png]`), never the image.
            asked = with_placeholders(job["content"], job.get("images", []))
            completion = Completion(claimed, answer.stored, asked, answer.shown, notes=notes)
            completed = await self.completions.complete(completion)
            self.record_answer(claimed, result, completed)
        finally:
            self.partials.untrack(job["id"])
            self.holding.discard(claimed.raw)

    def request_for(
        self, claimed: ClaimedJob, history: list[Turn], images: Sequence[SeenImage] = ()
    ) -> GenerationRequest:
        job = claimed.job
        system_prompt, turns, message = model_view(job, history, self.settings.system_prompt)
        if not self.engine.sees_images:
            message = with_placeholders(message, job.get("images", []))
        return GenerationRequest(
            job_id=job["id"],
            history=turns,
            message=message,
            system_prompt=None if system_prompt == self.settings.system_prompt else system_prompt,
            max_new_tokens=job.get("max_new_tokens", self.settings.max_new_tokens),
            temperature=job.get("temperature", self.settings.temperature),
            top_p=self.settings.top_p,
            repetition_penalty=self.settings.repetition_penalty,
            min_new_tokens=job.get("min_new_tokens", 0),
            images=tuple(images),
        )

    async def record_failure(self, claimed: ClaimedJob, result: GenerationResult) -> None:
        job = claimed.job
        outcome = await self.queue.fail(self.worker_id, claimed, result.error or "generation failed")
        JOBS.labels({"retry": "failed", "dead": "dead_lettered", "gone": "dropped_late"}[outcome]).inc()
        self.stats.failed += 1
        log.warning("job %s of user %s failed (%s): %s", job["id"], job["user_id"], result.error, outcome)

    def record_answer(self, claimed: ClaimedJob, result: GenerationResult, completed: bool) -> None:
        job = claimed.job
        if not completed:
            JOBS.labels("dropped_late").inc()
            log.warning("job %s was taken back from this runner before it finished; answer dropped", job["id"])
            return
        JOBS.labels("answered").inc()
        self.tokens.inc(result.new_tokens)
        self.stats.answered += 1
        self.stats.recent.append(time.monotonic())
        self.stats.new_tokens += result.new_tokens
        log.info(
            "job %s of user %s answered: %d new tokens, %.3f s after it was queued",
            job["id"],
            job["user_id"],
            result.new_tokens,
            time.time() - job["enqueued_at"],
        )

    def heartbeat_details(self) -> dict[str, object]:
        """The model served (what `!models` counts runners by), the recent pace (what `!status` estimates from) and
        whether its model sees images (what `!models` shows, and runners whose model does not, name)."""
        return {
            "model": self.model,
            "answered_last_minute": self.stats.answered_last_minute(),
            "sees_images": self.engine.sees_images,
        }

    async def _keep_alive(self, stop: asyncio.Event, served: asyncio.Event) -> None:
        """Heartbeats, and returns the jobs of runners whose heartbeat has expired (every runner does this), until
        the runner has `served`: one told to `stop` beats on while it finishes the jobs in hand, or its peers would
        take them back as a dead runner's (and its answers would be dropped). Not until cancelled: a cancellation
        that lands in a Redis call can come out as a timeout, which is retried here."""
        while not served.is_set():
            try:
                await self.heartbeat.beat_and_reap(self._reap)
                if not stop.is_set():
                    await self.adopt_strays()
            except REDIS_DOWN_ERRORS as exc:
                log.warning("Redis unreachable during heartbeat (%s)", type(exc).__name__)
            await asyncio.sleep(self.heartbeat.interval_s)

    async def adopt_strays(self) -> None:
        """Answers the jobs in this runner's list that no claim returned to it.

        A claim whose reply is lost (the connection drops after Redis moved the job; redis-py then sends
        the claim again, or raises) leaves a job in our list that we do not know about, and since this runner
        is alive no reaper ever looks there. A payload still unknown at the next check, a heartbeat later, is
        such a stray (a claim's reply takes milliseconds, not seconds): we generate it as if just claimed.
        """
        unknown = {raw for raw in await self.queue.held(self.worker_id) if raw not in self.holding}
        strays, self._strays = unknown & self._strays, unknown - self._strays
        if not strays:
            return
        log.warning(
            "runner %s: %d jobs in its list were never handed to it (a lost reply); answering them",
            self.worker_id,
            len(strays),
        )
        claimed = [ClaimedJob(raw=raw, job=decode_job(raw)) for raw in strays]
        histories = await self.queue.start([c.job for c in claimed])
        self.start_jobs(list(zip(claimed, histories, strict=True)))

    async def _reap(self, peer: str) -> None:
        reaped = await self.queue.reap(peer)
        if reaped is not None:
            JOBS.labels("dead_lettered").inc(reaped[1])
            log.warning("runner %s is gone: requeued %d jobs, dead-lettered %d", peer, *reaped)

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
