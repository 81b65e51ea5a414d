"""The reliable job queue: enqueue in lanes, claim by atomic move, complete, fail, reap."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

from redis.asyncio import Redis

from shared import defaults
from shared.conversation_ids import is_shared, job_conversation, job_lane, thread_of
from shared.keys import Keys
from shared.schemas import Job, Response, ResponseKind, Turn, decode_job, encode
from shared.scripts import ScriptCall, Scripts, command_then_script, command_then_scripts, run_pipelined
from shared.settings import Settings

EnqueueStatus = Literal[
    "queued", "pending", "full", "lane_full", "rate_limited", "duplicate", "not_opted_in", "not_shared"
]
ReviseOutcome = Literal["revised", "withdrawn", "started"]
FailOutcome = Literal["retry", "dead", "gone"]

APOLOGY_TEXT = "Sorry, I couldn't answer that message: something went wrong on my side. Please try again later."
"""What a user is told when their message is dead-lettered."""

MAX_DEAD_ENTRIES = 1000
"""Dead letters kept for inspection; older ones are dropped so Redis memory stays bounded."""

STALE_RETRIES = 5
"""Tries of a script whose keys the caller read just before, when what it read changed meanwhile."""


class StaleReadError(RuntimeError):
    """A script's keys, read just before it ran, kept changing under it."""


@dataclass(frozen=True)
class EnqueueResult:
    status: EnqueueStatus
    waiting: int
    """How many messages of the lane are ahead of this one (see enqueue.lua for full and lane_full)."""


@dataclass(frozen=True)
class ClaimedJob:
    """A job held in a runner's processing list; `raw` is the exact payload, needed to finish it."""

    raw: str
    job: Job


class Completion(NamedTuple):
    """A claimed job's answer, and the text of the user's turn to store with it in the conversation."""

    claimed: ClaimedJob
    answer: str
    user_turn: str


class JobQueue:
    """Operations on the job side of Redis; every multi-key change is one Lua script."""

    def __init__(self, redis: Redis, keys: Keys, settings: Settings) -> None:
        self._redis = redis
        self._keys = keys
        self._settings = settings
        self._scripts = Scripts.register(redis)

    async def enqueue(self, job: Job) -> EnqueueResult:
        k, user, conversation, lane = self._keys, job["user_id"], job_conversation(job), job_lane(job)
        keys = [
            k.optin,
            k.inflight(lane),
            k.pending(lane),
            k.query,
            k.seen(user),
            k.rate(user),
            k.conversations(user),
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
            ],
        )
        return EnqueueResult(status=status, waiting=int(waiting))

    async def revise(self, lane: str, job_id: str, content: str | None) -> ReviseOutcome:
        """Applies an edit (new content) or a deletion (None) to a message still waiting for its turn."""
        k = self._keys
        outcome: ReviseOutcome = await self._scripts.revise(
            keys=[k.inflight(lane), k.pending(lane), k.query], args=[job_id, content or ""]
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
        moved = await self._scripts.claim_waiting(keys=[k.query, k.processing(runner_id)], args=[limit])
        return [ClaimedJob(raw=raw, job=decode_job(raw)) for raw in moved]

    async def claim_batch(
        self, runner_id: str, limit: int, timeout_s: float = defaults.DEFAULT_BLOCK_TIMEOUT_S
    ) -> list[tuple[ClaimedJob, list[Turn]]]:
        """Blocks up to `timeout_s` for the oldest job, then takes up to `limit` - 1 more already waiting, each
        with its conversation's history: two round trips however many jobs (the claim and the script pipelined,
        then every history at once).
        """
        k = self._keys
        first, moved = await command_then_script(
            self._redis,
            ("BLMOVE", k.query, k.processing(runner_id), "RIGHT", "LEFT", timeout_s),
            self._scripts.claim_waiting,
            ([k.query, k.processing(runner_id)], [limit - 1]),
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
        return [_turns(raw) for raw in found]

    async def histories(self, jobs: Sequence[Job]) -> list[list[Turn]]:
        """Each job's conversation history, with one command."""
        if not jobs:
            return []
        found = await self._redis.mget([self._keys.history(job_conversation(job)) for job in jobs])
        return [_turns(raw) for raw in found]

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
        user, conversation, lane = job["user_id"], job_conversation(job), job_lane(job)
        now = time.time()
        response: Response = {
            "job_id": job["id"],
            "user_id": user,
            "channel_id": job["channel_id"],
            "kind": "answer",
            "content": completion.answer,
            "enqueued_at": job["enqueued_at"],
            "completed_at": now,
            "lane": lane,
            "fresh": True,
        }
        user_turn, answer_turn = exchange(job, completion.user_turn, completion.answer)
        keys = [
            k.processing(runner_id),
            k.inflight(lane),
            k.pending(lane),
            k.query,
            k.response,
            k.history(conversation),
            k.optin,
            k.conversations(user),
            k.stream(job["id"]),
            k.posted(job["id"]),
            k.posting_lock(job["id"]),
        ]
        args: list[str | int | float] = [
            completion.claimed.raw,
            job["id"],
            user,
            encode(response),
            encode(user_turn),
            encode(answer_turn),
            self._max_turns(conversation),
            self._settings.history_ttl_s,
            now,
            conversation,
            encode(notice(job, "retract")),
        ]
        return keys, args

    def _max_turns(self, conversation: str) -> int:
        return self._settings.thread_max_turns if is_shared(conversation) else self._settings.history_max_turns

    async def fail(self, runner_id: str, claimed: ClaimedJob, reason: str) -> FailOutcome:
        """Counts a failed try: the job is retried later, or dead-lettered with an apology."""
        k, lane = self._keys, job_lane(claimed.job)
        outcome: FailOutcome = await self._scripts.fail(
            keys=[k.processing(runner_id), k.query, k.dead, k.response, k.inflight(lane), k.pending(lane), k.optin],
            args=[claimed.raw, self._settings.max_attempts, reason, APOLOGY_TEXT, time.time(), MAX_DEAD_ENTRIES],
        )
        return outcome

    async def reap(self, runner_id: str) -> tuple[int, int] | None:
        """Requeues a dead runner's jobs; None if it is alive, else (requeued, dead-lettered)."""
        k = self._keys
        for _ in range(STALE_RETRIES):
            # The lanes of the jobs in its list, whose keys the script needs to dead-letter one.
            lanes = sorted({job_lane(decode_job(raw)) for raw in await self.held(runner_id)})
            result = await self._scripts.reap_runner(
                keys=[
                    k.heartbeat("runner", runner_id),
                    k.processing(runner_id),
                    k.workers("runner"),
                    k.query,
                    k.dead,
                    k.response,
                    k.optin,
                    *(key for lane in lanes for key in (k.inflight(lane), k.pending(lane))),
                ],
                args=[runner_id, self._settings.max_attempts, time.time(), APOLOGY_TEXT, MAX_DEAD_ENTRIES, *lanes],
            )
            if result == -1:
                return None
            if result != -2:
                return int(result[0]), int(result[1])
        raise StaleReadError(f"the list of runner {runner_id} kept changing while it was reaped")

    async def release(self, runner_id: str) -> int:
        """Gives back, untried, every job this runner holds (on shutdown)."""
        k = self._keys
        return int(
            await self._scripts.release(
                keys=[k.processing(runner_id), k.query, k.heartbeat("runner", runner_id), k.workers("runner")],
                args=[runner_id, "0"],
            )
        )

    async def held(self, runner_id: str) -> list[str]:
        """The payloads of the jobs in this runner's list, as Redis has them."""
        return list(await self._redis.lrange(self._keys.processing(runner_id), 0, -1))

    async def history(self, conversation: str) -> list[Turn]:
        return _turns(await self._redis.get(self._keys.history(conversation)))


def notice(job: Job, kind: ResponseKind) -> Response:
    """A response that carries no text of its own: partial (read stream:{job}), started, retract."""
    return {
        "job_id": job["id"],
        "user_id": job["user_id"],
        "channel_id": job["channel_id"],
        "kind": kind,
        "content": "",
        "enqueued_at": job["enqueued_at"],
        "completed_at": time.time(),
        "lane": job_lane(job),
    }


def exchange(job: Job, question: str, answer: str) -> tuple[Turn, Turn]:
    """The two turns a completed job adds to its conversation; in a shared one, both name the user they are about
    (so that `!forget` and `!optout` find them) and the question its speaker."""
    if not is_shared(job_conversation(job)):
        return {"role": "user", "content": question}, {"role": "assistant", "content": answer}
    user = job["user_id"]
    asked: Turn = {"role": "user", "content": question, "user_id": user, "name": job.get("author_name") or "someone"}
    return asked, {"role": "assistant", "content": answer, "user_id": user}


def _turns(raw: str | None) -> list[Turn]:
    if not raw:
        return []
    turns: list[Turn] = json.loads(raw)
    return turns
