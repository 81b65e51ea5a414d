"""The reliable job queue: enqueue in lanes onto each model's queue, claim by atomic move (and, in
shared/queues/job_endings.py, complete, fail, reap)."""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Literal

from shared.config import defaults
from shared.queues.conversation_ids import is_shared, job_conversation, job_lane, job_model, thread_of
from shared.queues.job_endings import (
    APOLOGY_TEXT,
    ClaimedJob,
    Completion,
    FailOutcome,
    JobEndings,
    exchange,
    notice,
    turns_from,
)
from shared.queues.schemas import Job, Turn, decode_job, encode
from shared.storage.scripts import ScriptCall, command_then_script, command_then_scripts, run_pipelined

__all__ = [
    "APOLOGY_TEXT",
    "ClaimedJob",
    "Completion",
    "EnqueueResult",
    "FailOutcome",
    "JobQueue",
    "exchange",
]

EnqueueStatus = Literal[
    "queued", "pending", "full", "lane_full", "rate_limited", "duplicate", "not_opted_in", "not_shared"
]
ReviseOutcome = Literal["revised", "withdrawn", "started"]


@dataclass(frozen=True)
class EnqueueResult:
    status: EnqueueStatus
    waiting: int
    """How many messages of the lane are ahead of this one (see enqueue.lua for full and lane_full)."""


class JobQueue(JobEndings):
    """Operations on the job side of Redis; every multi-key change is one Lua script."""

    def queue_of(self, job: Job) -> str:
        """The queue a job waits on: its model's, or the legacy queue for a job that names none."""
        model = job_model(job)
        return self._keys.query(model) if model else self._keys.legacy_query

    async def enqueue(self, job: Job) -> EnqueueResult:
        k, user, conversation, lane = self._keys, job["user_id"], job_conversation(job), job_lane(job)
        keys = [
            k.optin,
            k.inflight(lane),
            k.pending(lane),
            self.queue_of(job),
            k.seen(user),
            k.rate(user),
            k.conversations(user),
            k.models,
            k.forgets(user),
        ]
        if is_shared(conversation):
            keys.append(k.thread(thread_of(conversation)))
        p = self._settings
        status, waiting = await self._scripts.enqueue(
            keys=keys,
            args=[
                user,
                job["id"],
                encode(job),
                time.time(),
                p.max_pending_per_user,
                defaults.DEFAULT_SEEN_TTL_S,
                p.rate_limit_per_minute,
                conversation,
                p.max_pending_per_thread,
                p.history_ttl_s,
                job_model(job) or "",
            ],
        )
        return EnqueueResult(status=status, waiting=int(waiting))

    async def revise(self, lane: str, job_id: str, content: str | None) -> ReviseOutcome:
        """Applies an edit (new content) or a deletion (None) to a message still waiting for its turn."""
        k = self._keys

        async def attempt(names: tuple[str, ...]) -> ReviseOutcome:
            queue_keys, queue_args = self.models.section(names)
            outcome: ReviseOutcome = await self._scripts.revise(
                keys=[k.inflight(lane), k.pending(lane), k.models, *queue_keys],
                args=[job_id, content or "", *queue_args],
            )
            return outcome

        return await self.models.run(attempt, f"message {job_id} was revised")

    async def reroute(self, user_id: str, model: str, unserved: Collection[str]) -> int:
        """Moves the user's messages that wait in their own lane for one of the `unserved` models to `model` (which
        they just chose); returns how many moved."""
        k = self._keys

        async def attempt(names: tuple[str, ...]) -> int | str:
            queue_keys, queue_args = self.models.section(names)
            moved: int | str = await self._scripts.reroute(
                keys=[k.inflight(user_id), k.pending(user_id), k.query(model), k.models, *queue_keys],
                args=[model, *queue_args, *sorted(unserved)],
            )
            return moved

        return int(await self.models.run(attempt, f"the messages of user {user_id} were moved to {model}"))

    async def claim(
        self, runner_id: str, model: str, timeout_s: float = defaults.DEFAULT_BLOCK_TIMEOUT_S
    ) -> ClaimedJob | None:
        """Blocks up to `timeout_s` for the oldest job of the model and moves it into this runner's list."""
        k = self._keys
        raw = await self._redis.blmove(k.query(model), k.processing(runner_id), timeout_s, "RIGHT", "LEFT")
        return None if raw is None else ClaimedJob(raw=raw, job=decode_job(raw))

    async def claim_waiting(self, runner_id: str, model: str, limit: int) -> list[ClaimedJob]:
        """Takes up to `limit` more jobs that are already waiting (the model's, then the legacy queue's), without
        blocking, in one round trip."""
        if limit < 1:
            return []
        moved = await self._scripts.claim_waiting(keys=self._claim_waiting_keys(runner_id, model), args=[limit])
        return [ClaimedJob(raw=raw, job=decode_job(raw)) for raw in moved]

    def _claim_waiting_keys(self, runner_id: str, model: str) -> list[str]:
        k = self._keys
        return [k.query(model), k.processing(runner_id), k.legacy_query]

    async def claim_batch(
        self, runner_id: str, model: str, limit: int, timeout_s: float = defaults.DEFAULT_BLOCK_TIMEOUT_S
    ) -> list[tuple[ClaimedJob, list[Turn]]]:
        """Blocks up to `timeout_s` for the oldest job of the model, then takes up to `limit` - 1 more already
        waiting (the model's, then any on the legacy queue), each with its conversation's history: two round trips
        however many jobs (the claim and the script pipelined, then every history at once).
        """
        k = self._keys
        first, moved = await command_then_script(
            self._redis,
            ("BLMOVE", k.query(model), k.processing(runner_id), "RIGHT", "LEFT", timeout_s),
            self._scripts.claim_waiting,
            (self._claim_waiting_keys(runner_id, model), [limit - 1]),
        )
        raws = ([] if first is None else [first]) + list(moved)
        claimed = [ClaimedJob(raw=raw, job=decode_job(raw)) for raw in raws]
        return list(zip(claimed, await self.start([c.job for c in claimed]), strict=True))

    async def start(self, jobs: Sequence[Job]) -> list[list[Turn]]:
        """Each job's conversation history, read with one command, while the updaters are told (in the same round
        trip) that the jobs have started, so they acknowledge them and show typing."""
        if not jobs:
            return []
        k = self._keys
        calls: list[ScriptCall] = [
            ([k.response, k.optin], [encode(notice(job, "started")), job["user_id"]]) for job in jobs
        ]
        found, _ = await command_then_scripts(
            self._redis, ("MGET", *(k.history(job_conversation(job)) for job in jobs)), self._scripts.started, calls
        )
        return [turns_from(raw) for raw in found]

    async def histories(self, jobs: Sequence[Job]) -> list[list[Turn]]:
        """Each job's conversation history, with one command."""
        if not jobs:
            return []
        found = await self._redis.mget([self._keys.history(job_conversation(job)) for job in jobs])
        return [turns_from(raw) for raw in found]

    async def stream(self, runner_id: str, partials: Sequence[tuple[ClaimedJob, str]], ttl_s: int) -> list[bool]:
        """Replaces each job's partial text (one round trip for all); False for a job no longer to be streamed."""
        k = self._keys
        calls: list[ScriptCall] = []
        for claimed, text in partials:
            job = claimed.job
            calls.append(
                (
                    [k.processing(runner_id), k.stream(job["id"]), k.response, k.optin, k.posted(job["id"])],
                    [
                        claimed.raw,
                        text,
                        encode(notice(job, "partial")),
                        encode(notice(job, "retract")),
                        ttl_s,
                        job["user_id"],
                    ],
                )
            )
        return [outcome == "ok" for outcome in await run_pipelined(self._redis, self._scripts.stream, calls)]

    async def history(self, conversation: str) -> list[Turn]:
        return turns_from(await self._redis.get(self._keys.history(conversation)))
