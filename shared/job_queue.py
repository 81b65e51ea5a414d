"""The reliable job queue: enqueue with per-user order, claim by atomic move, complete, fail, reap."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

from redis.asyncio import Redis

from shared import defaults
from shared.keys import Keys
from shared.schemas import Job, Response, Turn, decode_job, encode
from shared.scripts import ScriptCall, Scripts, command_then_script, run_pipelined
from shared.settings import Settings

EnqueueStatus = Literal["queued", "pending", "full", "rate_limited", "duplicate", "not_opted_in"]
ReviseOutcome = Literal["revised", "withdrawn", "started"]
FailOutcome = Literal["retry", "dead", "gone"]

APOLOGY_TEXT = "Sorry, I couldn't answer that message: something went wrong on my side. Please try again later."
"""What a user is told when their message is dead-lettered."""

MAX_DEAD_ENTRIES = 1000
"""Dead letters kept for inspection; older ones are dropped so Redis memory stays bounded."""


@dataclass(frozen=True)
class EnqueueResult:
    status: EnqueueStatus
    waiting: int
    """How many of the user's earlier messages are ahead of this one."""


@dataclass(frozen=True)
class ClaimedJob:
    """A job held in a runner's processing list; `raw` is the exact payload, needed to finish it."""

    raw: str
    job: Job


class Completion(NamedTuple):
    """A claimed job's answer, and the user's turn to store with it in their history."""

    claimed: ClaimedJob
    answer: str
    user_turn: str


@dataclass(frozen=True)
class QueuePolicy:
    max_pending_per_user: int = defaults.DEFAULT_MAX_PENDING_PER_USER
    max_attempts: int = defaults.DEFAULT_MAX_ATTEMPTS
    history_max_turns: int = defaults.DEFAULT_HISTORY_MAX_TURNS
    history_ttl_s: int = int(defaults.DEFAULT_HISTORY_TTL_DAYS * 86400)
    seen_ttl_s: int = defaults.DEFAULT_SEEN_TTL_S
    rate_limit_per_minute: int = defaults.DEFAULT_RATE_LIMIT_PER_MINUTE

    @classmethod
    def from_settings(cls, settings: Settings) -> QueuePolicy:
        return cls(
            max_pending_per_user=settings.max_pending_per_user,
            max_attempts=settings.max_attempts,
            history_max_turns=settings.history_max_turns,
            history_ttl_s=settings.history_ttl_s,
            rate_limit_per_minute=settings.rate_limit_per_minute,
        )


class JobQueue:
    """Operations on the job side of Redis; every multi-key change is one Lua script."""

    def __init__(self, redis: Redis, keys: Keys, policy: QueuePolicy) -> None:
        self._redis = redis
        self._keys = keys
        self._policy = policy
        self._scripts = Scripts.register(redis)

    async def enqueue(self, job: Job) -> EnqueueResult:
        k, user = self._keys, job["user_id"]
        status, waiting = await self._scripts.enqueue(
            keys=[k.optin, k.inflight(user), k.pending(user), k.query, k.seen(user), k.rate(user)],
            args=[
                user,
                job["id"],
                encode(job),
                time.time(),
                self._policy.max_pending_per_user,
                self._policy.seen_ttl_s,
                self._policy.rate_limit_per_minute,
            ],
        )
        return EnqueueResult(status=status, waiting=int(waiting))

    async def revise(self, user_id: str, job_id: str, content: str | None) -> ReviseOutcome:
        """Applies an edit (new content) or a deletion (None) to a message still waiting for its turn."""
        k = self._keys
        outcome: ReviseOutcome = await self._scripts.revise(
            keys=[k.inflight(user_id), k.pending(user_id), k.query], args=[job_id, content or ""]
        )
        return outcome

    async def claim(self, runner_id: str, timeout_s: float = defaults.DEFAULT_BLOCK_TIMEOUT_S) -> ClaimedJob | None:
        """Blocks up to `timeout_s` for the oldest job and moves it into this runner's list."""
        raw = await self._redis.blmove(self._keys.query, self._keys.processing(runner_id), timeout_s, "RIGHT", "LEFT")
        return None if raw is None else ClaimedJob(raw=raw, job=decode_job(raw))

    async def claim_waiting(self, runner_id: str, limit: int) -> list[ClaimedJob]:
        """Takes up to `limit` more jobs that are already waiting, without blocking, in one round trip."""
        if limit < 1:
            return []
        k = self._keys
        flat = await self._scripts.claim_waiting(keys=[k.query, k.processing(runner_id)], args=[limit, "", ""])
        return [claimed for claimed, _ in _claimed_with_turns(flat)]

    async def claim_batch(
        self, runner_id: str, limit: int, timeout_s: float = defaults.DEFAULT_BLOCK_TIMEOUT_S
    ) -> list[tuple[ClaimedJob, list[Turn]]]:
        """Blocks up to `timeout_s` for the oldest job, then takes up to `limit` - 1 more already waiting; each
        with its user's history. One round trip, however many jobs: the claim and the script go pipelined.
        """
        k = self._keys
        first, flat = await command_then_script(
            self._redis,
            ("BLMOVE", k.query, k.processing(runner_id), "RIGHT", "LEFT", timeout_s),
            self._scripts.claim_waiting,
            ([k.query, k.processing(runner_id)], [limit - 1, k.history_prefix, "1"]),
        )
        head, head_turns, more = flat[0], flat[1], _claimed_with_turns(flat[2:])
        if first is None:
            return more  # BLMOVE timed out: the head of our list, if any, is not a job it moved
        claimed = ClaimedJob(raw=first, job=decode_job(first))
        # Only this runner adds to its list, so the head is the job BLMOVE moved; checked all the same.
        turns = _turns(head_turns) if head == first else await self.history(claimed.job["user_id"])
        return [(claimed, turns), *more]

    async def complete(self, runner_id: str, claimed: ClaimedJob, answer: str, user_turn: str) -> bool:
        """Publishes the answer and records the exchange; False if the job was no longer this runner's."""
        keys, args = self._complete_call(runner_id, Completion(claimed, answer, user_turn))
        return bool(await self._scripts.complete(keys=keys, args=args))

    async def complete_many(self, runner_id: str, completions: Sequence[Completion]) -> list[bool]:
        """complete() for a whole batch in one round trip; each job's completion is still atomic on its own."""
        calls = [self._complete_call(runner_id, completion) for completion in completions]
        return [bool(done) for done in await run_pipelined(self._redis, self._scripts.complete, calls)]

    def _complete_call(self, runner_id: str, completion: Completion) -> ScriptCall:
        k, job = self._keys, completion.claimed.job
        user = job["user_id"]
        now = time.time()
        response: Response = {
            "job_id": job["id"],
            "user_id": user,
            "channel_id": job["channel_id"],
            "kind": "answer",
            "content": completion.answer,
            "enqueued_at": job["enqueued_at"],
            "completed_at": now,
        }
        keys = [
            k.processing(runner_id),
            k.inflight(user),
            k.pending(user),
            k.query,
            k.response,
            k.history(user),
            k.optin,
        ]
        args: list[str | int | float] = [
            completion.claimed.raw,
            job["id"],
            user,
            encode(response),
            completion.user_turn,
            completion.answer,
            self._policy.history_max_turns,
            self._policy.history_ttl_s,
            now,
        ]
        return keys, args

    async def fail(self, runner_id: str, claimed: ClaimedJob, reason: str) -> FailOutcome:
        """Counts a failed try: the job is retried later, or dead-lettered with an apology."""
        k, user = self._keys, claimed.job["user_id"]
        outcome: FailOutcome = await self._scripts.fail(
            keys=[k.processing(runner_id), k.query, k.dead, k.response, k.inflight(user), k.pending(user), k.optin],
            args=[claimed.raw, self._policy.max_attempts, reason, APOLOGY_TEXT, time.time(), MAX_DEAD_ENTRIES],
        )
        return outcome

    async def reap(self, runner_id: str) -> tuple[int, int] | None:
        """Requeues a dead runner's jobs; None if it is alive, else (requeued, dead-lettered)."""
        k = self._keys
        result = await self._scripts.reap_runner(
            keys=[
                k.heartbeat("runner", runner_id),
                k.processing(runner_id),
                k.workers("runner"),
                k.query,
                k.dead,
                k.response,
                k.optin,
            ],
            args=[
                runner_id,
                self._policy.max_attempts,
                k.inflight_prefix,
                k.pending_prefix,
                time.time(),
                APOLOGY_TEXT,
                MAX_DEAD_ENTRIES,
            ],
        )
        if result == -1:
            return None
        return int(result[0]), int(result[1])

    async def release(self, runner_id: str) -> int:
        """Gives back, untried, every job this runner holds (on shutdown)."""
        k = self._keys
        return int(
            await self._scripts.release(
                keys=[k.processing(runner_id), k.query, k.heartbeat("runner", runner_id), k.workers("runner")],
                args=[runner_id],
            )
        )

    async def held(self, runner_id: str) -> list[str]:
        """The payloads of the jobs in this runner's list, as Redis has them."""
        return list(await self._redis.lrange(self._keys.processing(runner_id), 0, -1))

    async def history(self, user_id: str) -> list[Turn]:
        return _turns(await self._redis.hget(self._keys.history(user_id), "turns"))


def _claimed_with_turns(flat: list[str]) -> list[tuple[ClaimedJob, list[Turn]]]:
    """Pairs the claim_waiting script's flat {job, turns, ...} answer."""
    pairs = zip(flat[::2], flat[1::2], strict=True)
    return [(ClaimedJob(raw=raw, job=decode_job(raw)), _turns(turns)) for raw, turns in pairs]


def _turns(raw: str | None) -> list[Turn]:
    if not raw:
        return []
    turns: list[Turn] = json.loads(raw)
    return turns
