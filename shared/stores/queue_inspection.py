"""What operators see and do: queue figures, dead letters, and putting a dead job back in line."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Literal

from redis.asyncio import Redis

from shared.config.defaults import STALE_RETRIES
from shared.errors import StaleReadError
from shared.queues.conversation_ids import job_lane, job_model
from shared.queues.schemas import Job, decode_job
from shared.queues.served_models import KnownModels, live_runner_beats, runners_per_model
from shared.storage.keys import Keys
from shared.storage.scripts import Scripts

ReplayOutcome = Literal["queued", "pending", "not_found", "not_opted_in"]


@dataclass(frozen=True)
class QueueStats:
    waiting: int
    """Jobs on the queues, ready for a runner."""
    waiting_per_model: dict[str, int]
    """Jobs on each model's queue that holds any ("" for the legacy queue, whose jobs name no model)."""
    processing: int
    """Jobs claimed by runners."""
    runners: int
    """Runners with a live heartbeat."""
    runners_per_model: dict[str, int]
    """Live runners serving each model."""
    responses: int
    """Answers waiting for an updater."""
    dead: int
    opted_in: int
    updaters: int = 0
    """Updaters with a live heartbeat."""
    queue_lengths: dict[str, int] = field(default_factory=dict)
    """Every known model's queue ("" for the legacy queue), empty ones included: what the metrics gauges show."""


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
        self._models = KnownModels(redis, keys)

    async def stats(self) -> QueueStats:
        k = self._keys
        runner_ids = sorted(await self._redis.smembers(k.workers("runner")))
        updater_ids = sorted(await self._redis.smembers(k.workers("updater")))
        models = await self._models.refresh()
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.llen(k.response)
            pipe.llen(k.dead)
            pipe.scard(k.optin)
            pipe.llen(k.legacy_query)
            for model in models:
                pipe.llen(k.query(model))
            for runner_id in runner_ids:
                pipe.llen(k.processing(runner_id))
            for updater_id in updater_ids:
                pipe.exists(k.heartbeat("updater", updater_id))
            responses, dead, opted_in, *lengths = await pipe.execute()
        updaters_alive = sum(lengths[len(lengths) - len(updater_ids) :])
        lengths = lengths[: len(lengths) - len(updater_ids)]
        queued = dict(zip(("", *models), lengths[: len(models) + 1], strict=True))
        beats = await live_runner_beats(self._redis, k)
        return QueueStats(
            waiting=sum(queued.values()),
            waiting_per_model={model: n for model, n in queued.items() if n},
            processing=sum(lengths[len(models) + 1 :]),
            runners=len(beats),
            runners_per_model=runners_per_model(beats),
            responses=responses,
            dead=dead,
            opted_in=opted_in,
            updaters=updaters_alive,
            queue_lengths=queued,
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
            job = await self._dead(job_id)
            if job is None:
                return "not_found"
            lane, model = job_lane(job), job_model(job)
            outcome: ReplayOutcome | Literal["stale"] = await self._scripts.replay(
                keys=[k.dead, k.optin, k.query(model) if model else k.legacy_query, k.inflight(lane), k.pending(lane)],
                args=[job_id, guild_id or "", lane, model or ""],
            )
            if outcome != "stale":
                return outcome
        raise StaleReadError(f"dead letter {job_id} kept changing while it was replayed")

    async def _dead(self, job_id: str) -> Job | None:
        """The dead letter with this id, whose lane's and model's keys the replay script needs."""
        for raw in await self._redis.lrange(self._keys.dead, 0, -1):
            job = decode_job(raw)
            if job["id"] == job_id:
                return job
        return None
