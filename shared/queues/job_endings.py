"""How a claimed job leaves a runner's list: completed, failed (retried or dead-lettered), taken back from a dead
runner, or given back by one shutting down; each is one script, given every job queue (a lane's next message moves
onto its own model's queue)."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

from redis.asyncio import Redis

from shared.config.defaults import STALE_RETRIES
from shared.config.settings import Settings
from shared.errors import StaleReadError
from shared.queues.conversation_ids import is_shared, job_conversation, job_lane
from shared.queues.schemas import Job, Response, ResponseKind, Turn, decode_job, encode
from shared.queues.served_models import KnownModels, is_stale
from shared.storage.keys import Keys
from shared.storage.scripts import ScriptCall, Scripts, run_pipelined

FailOutcome = Literal["retry", "dead", "gone"]

APOLOGY_TEXT = "Sorry, I couldn't answer that message: something went wrong on my side. Please try again later."
"""What a user is told when their message is dead-lettered."""

MAX_DEAD_ENTRIES = 1000
"""Dead letters kept for inspection; older ones are dropped so Redis memory stays bounded."""


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
    shown: str | None = None
    """What the answer's messages show where it differs from the answer stored (a reasoning model's thinking shown
    above it); None: the answer itself."""
    notes: Sequence[str] = ()
    """One-line notes shown above the answer (images not seen, and why): shared/queues/notes.py."""


class JobEndings:
    """The end of a claimed job's stay in a runner's list (JobQueue adds how jobs get there)."""

    def __init__(self, redis: Redis, keys: Keys, settings: Settings) -> None:
        self._redis = redis
        self._keys = keys
        self._settings = settings
        self._scripts = Scripts.register(redis)
        self.models = KnownModels(redis, keys)

    async def complete(self, runner_id: str, claimed: ClaimedJob, answer: str, user_turn: str) -> bool:
        """Publishes the answer and records the exchange; False if the job was no longer this runner's."""
        [completed] = await self.complete_many(runner_id, [Completion(claimed, answer, user_turn)])
        return completed

    async def complete_many(self, runner_id: str, completions: Sequence[Completion]) -> list[bool]:
        """complete() for a whole batch in one round trip; each job's completion is still atomic on its own."""
        names = await self.models.names()
        calls = [self._complete_call(runner_id, completion, names) for completion in completions]
        results = await run_pipelined(self._redis, self._scripts.complete, calls)
        done = []
        for completion, result in zip(completions, results, strict=True):
            outcome = result
            if is_stale(result):  # a model appeared since this process read the models set
                attempt = functools.partial(self._complete_one, runner_id, completion)
                outcome = await self.models.run(attempt, f"job {completion.claimed.job['id']} was completed")
            done.append(bool(outcome))
        return done

    async def _complete_one(self, runner_id: str, completion: Completion, names: Sequence[str]) -> object:
        keys, args = self._complete_call(runner_id, completion, names)
        return await self._scripts.complete(keys=keys, args=args)

    def _complete_call(self, runner_id: str, completion: Completion, names: Sequence[str]) -> ScriptCall:
        k, job = self._keys, completion.claimed.job
        user, conversation, lane = job["user_id"], job_conversation(job), job_lane(job)
        now = time.time()
        response: Response = {
            "job_id": job["id"],
            "user_id": user,
            "channel_id": job["channel_id"],
            "kind": "answer",
            "content": completion.answer if completion.shown is None else completion.shown,
            "enqueued_at": job["enqueued_at"],
            "completed_at": now,
            "lane": lane,
            "fresh": True,
        }
        if "interaction" in job:
            response["interaction"] = job["interaction"]
        if completion.notes:
            response["notes"] = list(completion.notes)
        user_turn, answer_turn = exchange(job, completion.user_turn, completion.answer)
        queue_keys, queue_args = self.models.section(names)
        keys = [
            k.processing(runner_id),
            k.inflight(lane),
            k.pending(lane),
            k.response,
            k.history(conversation),
            k.optin,
            k.conversations(user),
            k.stream(job["id"]),
            k.posted(job["id"]),
            k.posting_lock(job["id"]),
            k.models,
            k.forgets(user),
            *queue_keys,
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
            job.get("forgets", 0),
            *queue_args,
        ]
        return keys, args

    def _max_turns(self, conversation: str) -> int:
        return self._settings.thread_max_turns if is_shared(conversation) else self._settings.history_max_turns

    async def fail(self, runner_id: str, claimed: ClaimedJob, reason: str) -> FailOutcome:
        """Counts a failed try: the job is retried later, or dead-lettered with an apology."""
        k, lane = self._keys, job_lane(claimed.job)

        async def attempt(names: tuple[str, ...]) -> FailOutcome:
            queue_keys, queue_args = self.models.section(names)
            outcome: FailOutcome = await self._scripts.fail(
                keys=[
                    k.processing(runner_id),
                    k.dead,
                    k.response,
                    k.inflight(lane),
                    k.pending(lane),
                    k.optin,
                    k.models,
                    *queue_keys,
                ],
                args=[
                    claimed.raw,
                    self._settings.max_attempts,
                    reason,
                    APOLOGY_TEXT,
                    time.time(),
                    MAX_DEAD_ENTRIES,
                    *queue_args,
                ],
            )
            return outcome

        return await self.models.run(attempt, f"job {claimed.job['id']} failed")

    async def reap(self, runner_id: str) -> tuple[int, int] | None:
        """Requeues a dead runner's jobs; None if it is alive, else (requeued, dead-lettered)."""
        k = self._keys
        names = await self.models.names()
        for _ in range(STALE_RETRIES):
            # The lanes of the jobs in its list, whose keys the script needs to dead-letter one.
            lanes = sorted({job_lane(decode_job(raw)) for raw in await self.held(runner_id)})
            queue_keys, queue_args = self.models.section(names)
            result = await self._scripts.reap_runner(
                keys=[
                    k.heartbeat("runner", runner_id),
                    k.processing(runner_id),
                    k.workers("runner"),
                    k.dead,
                    k.response,
                    k.optin,
                    k.models,
                    *queue_keys,
                    *(key for lane in lanes for key in (k.inflight(lane), k.pending(lane))),
                ],
                args=[
                    runner_id,
                    self._settings.max_attempts,
                    time.time(),
                    APOLOGY_TEXT,
                    MAX_DEAD_ENTRIES,
                    *queue_args,
                    *lanes,
                ],
            )
            if result == -1:
                return None
            if is_stale(result):
                names = await self.models.refresh()
            elif result != -2:
                return int(result[0]), int(result[1])
        raise StaleReadError(f"the list of runner {runner_id} kept changing while it was reaped")

    async def release(self, runner_id: str) -> int:
        """Gives back, untried, every job this runner holds (on shutdown), each to its model's queue."""
        k = self._keys

        async def attempt(names: tuple[str, ...]) -> int | str:
            queue_keys, queue_args = self.models.section(names)
            moved: int | str = await self._scripts.release_runner(
                keys=[
                    k.processing(runner_id),
                    k.heartbeat("runner", runner_id),
                    k.workers("runner"),
                    k.models,
                    *queue_keys,
                ],
                args=[runner_id, *queue_args],
            )
            return moved

        return int(await self.models.run(attempt, f"runner {runner_id} gave its jobs back"))

    async def held(self, runner_id: str) -> list[str]:
        """The payloads of the jobs in this runner's list, as Redis has them."""
        return list(await self._redis.lrange(self._keys.processing(runner_id), 0, -1))


def notice(job: Job, kind: ResponseKind) -> Response:
    """A response that carries no text of its own: partial (read stream:{job}), started, retract."""
    response: Response = {
        "job_id": job["id"],
        "user_id": job["user_id"],
        "channel_id": job["channel_id"],
        "kind": kind,
        "content": "",
        "enqueued_at": job["enqueued_at"],
        "completed_at": time.time(),
        "lane": job_lane(job),
    }
    if "interaction" in job:
        response["interaction"] = job["interaction"]
    return response


def exchange(job: Job, question: str, answer: str) -> tuple[Turn, Turn]:
    """The two turns a completed job adds to its conversation; in a shared one, both name the user they are about
    (so that `!forget` and `!optout` find them) and the question its speaker."""
    if not is_shared(job_conversation(job)):
        return {"role": "user", "content": question}, {"role": "assistant", "content": answer}
    user = job["user_id"]
    asked: Turn = {"role": "user", "content": question, "user_id": user, "name": job.get("author_name") or "someone"}
    return asked, {"role": "assistant", "content": answer, "user_id": user}


def turns_from(raw: str | None) -> list[Turn]:
    """A history as stored (one JSON string), or none."""
    if not raw:
        return []
    turns: list[Turn] = json.loads(raw)
    return turns
