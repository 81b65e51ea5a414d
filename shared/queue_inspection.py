"""What operators see and do: queue figures, dead letters, and putting a dead job back in line."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from redis.asyncio import Redis

from shared.conversation_ids import job_lane
from shared.job_queue import STALE_RETRIES, StaleReadError
from shared.keys import Keys
from shared.schemas import decode_job
from shared.scripts import Scripts

ReplayOutcome = Literal["queued", "pending", "not_found", "not_opted_in"]


@dataclass(frozen=True)
class QueueStats:
    waiting: int
    """Jobs on the queue, ready for a runner."""
    processing: int
    """Jobs claimed by runners."""
    runners: int
    """Runners with a live heartbeat."""
    responses: int
    """Answers waiting for an updater."""
    dead: int
    opted_in: int


@dataclass(frozen=True)
class DeadLetter:
    job_id: str
    user_id: str
    guild_id: str | None
    attempts: int
    error: str


class QueueInspection:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys
        self._scripts = Scripts.register(redis)

    async def stats(self) -> QueueStats:
        k = self._keys
        runner_ids = sorted(await self._redis.smembers(k.workers("runner")))
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.llen(k.query)
            pipe.llen(k.response)
            pipe.llen(k.dead)
            pipe.scard(k.optin)
            for runner_id in runner_ids:
                pipe.llen(k.processing(runner_id))
                pipe.exists(k.heartbeat("runner", runner_id))
            waiting, responses, dead, opted_in, *per_runner = await pipe.execute()
        return QueueStats(
            waiting=waiting,
            processing=sum(per_runner[0::2]),
            runners=sum(per_runner[1::2]),
            responses=responses,
            dead=dead,
            opted_in=opted_in,
        )

    async def dead_letters(self, guild_id: str | None, limit: int = 10) -> list[DeadLetter]:
        """The newest dead letters, only those of `guild_id` unless it is None (a bot-wide operator)."""
        letters = []
        for raw in await self._redis.lrange(self._keys.dead, 0, -1):
            job = json.loads(raw)
            if guild_id is not None and job.get("guild_id") != guild_id:
                continue
            letters.append(
                DeadLetter(
                    job_id=job["id"],
                    user_id=job["user_id"],
                    guild_id=job.get("guild_id"),
                    attempts=int(job.get("attempts", 0)),
                    error=str(job.get("error", "")),
                )
            )
            if len(letters) == limit:
                break
        return letters

    async def replay(self, job_id: str, guild_id: str | None) -> ReplayOutcome:
        """Requeues a dead job with fresh attempts; a guild's admin may only replay that guild's jobs."""
        k = self._keys
        for _ in range(STALE_RETRIES):
            lane = await self._lane_of_dead(job_id)
            if lane is None:
                return "not_found"
            outcome: ReplayOutcome | Literal["stale"] = await self._scripts.replay(
                keys=[k.dead, k.optin, k.query, k.inflight(lane), k.pending(lane)],
                args=[job_id, guild_id or "", lane],
            )
            if outcome != "stale":
                return outcome
        raise StaleReadError(f"dead letter {job_id} kept changing while it was replayed")

    async def _lane_of_dead(self, job_id: str) -> str | None:
        """The lane of the dead letter with this id, whose keys the replay script needs."""
        for raw in await self._redis.lrange(self._keys.dead, 0, -1):
            job = decode_job(raw)
            if job["id"] == job_id:
                return job_lane(job)
        return None
